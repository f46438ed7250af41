// Races between processes on the file backend: see races.ts.
import { raceTests } from './races.js'

raceTests('file')
