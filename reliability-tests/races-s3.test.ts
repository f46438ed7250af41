// Races between processes on the s3 backend: see races.ts.
import { raceTests } from './races.js'

raceTests('s3')
