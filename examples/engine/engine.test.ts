/**
 * The reference engine end to end, in real processes: a run of several workers killed mid-way (the whole
 * process group, SIGKILL) and started again resumes through clean(), without redoing finished jobs or losing
 * their outputs, and computes the right answer.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { openJobStore } from '../../src/index.js'
import type { JsonValue } from '../../src/job-description.js'
import { snapshot } from './engine.js'
import { sampleText } from './sample-text.js'

const runner = fileURLToPath(new URL('../run-example.ts', import.meta.url))
const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true })
})

function startRun(args: string[]): { pid: number; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  // Its own process group, so that killing the group kills the runner and its workers at once, as a crash would.
  const child = spawn(process.execPath, ['--import', 'tsx', runner, ...args], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return {
    pid: child.pid as number,
    done: new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr }))),
  }
}

function expectedCount(): { words: number; distinct: number } {
  const counts = new Map<string, number>()
  for (const word of sampleText().toLowerCase().match(/[a-z']+/g) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1)
  return { words: [...counts.values()].reduce((a, b) => a + b, 0), distinct: counts.size }
}

describe('reference engine', () => {
  it('a run killed mid-way resumes without redoing finished jobs or losing outputs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-engine-'))
    dirs.push(dir)
    const locator = `file:${join(dir, 'store')}`
    const args = [locator, '--workers', '3', '--chunks', '10', '--delay-ms', '300']

    const first = startRun(args)
    const store = await openJobStore(locator)
    // Wait until some, but not all, jobs are done, then crash everything.
    let doneBefore = new Map<string, JsonValue>()
    for (let polls = 0; polls < 600; polls++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      try {
        await store.resume()
      } catch {
        continue // not initialized yet
      }
      const state = await snapshot(store)
      const done = [...state.jobs.values()].filter((d) => d.extra['state'] === 'done')
      if (done.length >= 4 && !state.finished) {
        process.kill(-first.pid, 'SIGKILL')
        break
      }
    }
    const killed = await first.done
    expect(killed.code, 'the first run was meant to be killed before it finished').toBe(null)
    const killedAt = Date.now()
    const before = await snapshot(store)
    doneBefore = new Map(
      [...before.jobs.values()].filter((d) => d.extra['state'] === 'done').map((d) => [d.jobStoreID as string, d.extra['output'] as JsonValue]),
    )
    expect(doneBefore.size).toBeGreaterThanOrEqual(4)
    expect(before.finished).toBe(false)

    const second = await startRun(args).done
    expect(second.code, second.stderr).toBe(0)
    expect(second.stderr).toMatch(/resumed the workflow/)
    const result = JSON.parse(second.stdout) as { result: { words: number; distinct: number } }
    expect(result.result).toMatchObject(expectedCount())

    const after = await snapshot(store)
    expect(after.finished).toBe(true)
    expect(after.failed).toEqual([])
    // Finished jobs kept their outputs, and no worker of the second run ran them again.
    const traces: { job: string; result: string; at: number }[] = []
    await store.readStatsAndLogging((text) => void traces.push(JSON.parse(text)), true)
    for (const [id, output] of doneBefore) {
      expect(after.jobs.get(id)?.extra['output']).toEqual(output)
      const rerun = traces.filter((t) => t.job === id && t.result === 'success' && t.at > killedAt)
      expect(rerun, `job ${id} was run again after the restart`).toEqual([])
    }
  })
})
