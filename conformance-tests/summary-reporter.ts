/**
 * A vitest reporter that ends the run with one plain line, `N passed, N failed, N skipped`, which CI reads (vitest's
 * own summary is not in a format CI knows). Before it, one line per reason tests were skipped with (`skip(note)`: a
 * capability a harness declares unsupported, with its reason), and how many: a gap is visible, never a plain ✓.
 */
import { relative } from 'node:path'
import type { Reporter, TestModule } from 'vitest/node'

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0
    let failed = 0
    let skipped = 0
    const notes = new Map<string, number>()
    for (const module of testModules) {
      let failedHere = 0
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') failedHere++
        else {
          skipped++
          const result = test.result()
          if (result.state === 'skipped' && result.note !== undefined) {
            const key = `${relative(process.cwd(), module.moduleId)}: ${result.note}`
            notes.set(key, (notes.get(key) ?? 0) + 1)
          }
        }
      }
      // A module that failed without a failed test (a hook or an import threw, and its tests count as skipped)
      // is a failure too: never report such a run as "0 failed".
      if (module.state() === 'failed' && failedHere === 0) failedHere = 1
      failed += failedHere
    }
    const gaps = [...notes].map(([note, count]) => `skipped ${count} (${note})\n`).join('')
    process.stdout.write(`\n${gaps}${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
