// Races between processes on the azure backend: see races.ts.
import { raceTests } from './races.js'

raceTests('azure')
