// Writers killed with SIGKILL at random points on the azure backend: see crashes.ts.
import { crashTest } from './crashes.js'

crashTest('azure')
