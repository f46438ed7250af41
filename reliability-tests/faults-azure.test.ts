// Faults between the SDK and the server on the azure backend: see faults.ts.
import { faultTests } from './faults.js'

faultTests('azure')
