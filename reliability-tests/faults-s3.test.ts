// Faults between the SDK and the server on the s3 backend: see faults.ts.
import { faultTests } from './faults.js'

faultTests('s3')
