// Writers killed with SIGKILL at random points on the s3 backend: see crashes.ts.
import { crashTest } from './crashes.js'

crashTest('s3')
