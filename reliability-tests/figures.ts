/**
 * The figures of a reliability run (operations, faults injected, kills, cases…): printed, and written as JSON to
 * `JOBSTORE_RELIABILITY_FIGURES` (default `node_modules/.cache/jobstore-reliability/figures/`), one file per
 * test, for docs/reliability.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const FIGURES_DIR =
  process.env['JOBSTORE_RELIABILITY_FIGURES'] ?? fileURLToPath(new URL('../node_modules/.cache/jobstore-reliability/figures/', import.meta.url))

export function record(name: string, figures: Record<string, unknown>): void {
  const text = JSON.stringify(figures)
  console.log(`[reliability] ${name} ${text}`)
  mkdirSync(FIGURES_DIR, { recursive: true })
  writeFileSync(join(FIGURES_DIR, `${name}.json`), `${JSON.stringify(figures, null, 2)}\n`)
}
