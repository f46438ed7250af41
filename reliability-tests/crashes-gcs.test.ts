// Writers killed with SIGKILL at random points on the gcs backend: see crashes.ts.
import { crashTest } from './crashes.js'

crashTest('gcs')
