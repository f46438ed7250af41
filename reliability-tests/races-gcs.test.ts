// Races between processes on the gcs backend: see races.ts.
import { raceTests } from './races.js'

raceTests('gcs')
