// Writers killed with SIGKILL at random points on the file backend: see crashes.ts.
import { crashTest } from './crashes.js'

crashTest('file')
