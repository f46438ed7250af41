// Faults between the SDK and the server on the gcs backend: see faults.ts.
import { faultTests } from './faults.js'

faultTests('gcs')
