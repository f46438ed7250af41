/**
 * Races between processes, as between workers on separate hosts, on every backend (races-<backend>.test.ts):
 * - 8 processes each add 1, 100 times, to a number in one shared file and to a count in one job, by
 *   compare-and-swap (`ifVersion`), retrying on ConcurrentFileModificationError: both end at exactly 800.
 * - 2 processes read stats messages in rounds while a third writes more: every message is handed out exactly
 *   once.
 * (16 processes creating the same job, exactly one winner, is in the conformance suite: atomicity-tests.ts.)
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { newJobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { record } from './figures.js'
import { runWorker } from '../conformance-tests/processes.js'
import { TARGETS, type BackendName } from './targets.js'

const PROCESSES = 8
const INCREMENTS = 100
const READERS = 2
const MESSAGES_BEFORE = 200
const MESSAGES_DURING = 300
/** A worker runs this long at most (8 processes on two cores, on a service's emulator). */
const RUN_TIMEOUT_MS = 600_000

async function text(stream: AsyncIterable<unknown>): Promise<string> {
  let out = ''
  for await (const part of stream) out += Buffer.isBuffer(part) ? part.toString('utf8') : String(part)
  return out
}

/** Registers the race tests of one backend (races-<backend>.test.ts: one file per backend, run in parallel). */
export function raceTests(name: BackendName): void {
  describe(`races: ${name}`, () => {
    it(`${PROCESSES} processes × ${INCREMENTS} compare-and-swap increments of one shared file and one job end at exactly ${PROCESSES * INCREMENTS}`, { timeout: 900_000 }, async () => {
      const target = TARGETS[name]
      const locator = target.newLocator()
      const store = await openJobStore(locator, target.options)
      await store.initialize()
      onTestFinished(() => store.destroy())
      await store.writeSharedFileStream('counter', (w) => void w.end('0'))
      const job = newJobDescription({ jobName: 'counter', extra: { count: 0 } })
      store.assignID(job)
      await store.create(job)

      // Node and the SDK take a moment to start: the processes begin together, a few seconds from now.
      const startAt = Date.now() + 6000
      const results = await Promise.all(
        Array.from({ length: PROCESSES }, () =>
          runWorker({ scenario: 'increment', locator, options: target.options, args: { shared: 'counter', job: job.jobStoreID, count: INCREMENTS, startAt } }, { timeoutMs: RUN_TIMEOUT_MS }),
        ),
      )
      let sharedConflicts = 0
      let jobConflicts = 0
      for (const result of results) {
        expect(result.code, result.stderr).toBe(0)
        const line = result.lines.find((l) => l.startsWith('conflicts ')) as string
        const [, shared, jobs] = line.split(' ')
        sharedConflicts += Number(shared)
        jobConflicts += Number(jobs)
      }
      const other = await openJobStore(locator, target.options)
      await other.resume()
      const counter = await text(await other.readSharedFileStream('counter'))
      const loaded = await other.load(job.jobStoreID as string)
      record(`races-increments-${name}`, {
        backend: name,
        processes: PROCESSES,
        incrementsPerProcess: INCREMENTS,
        sharedFile: Number(counter),
        job: loaded.extra['count'],
        jobVersion: loaded.version,
        conflictsRetried: { sharedFile: sharedConflicts, job: jobConflicts },
      })
      expect(counter).toBe(String(PROCESSES * INCREMENTS))
      expect(loaded.extra['count']).toBe(PROCESSES * INCREMENTS)
      expect(loaded.version).toBe(PROCESSES * INCREMENTS + 1)
    })

    it(`${READERS} reader processes and a writer: each of ${MESSAGES_BEFORE + MESSAGES_DURING} stats messages handed out exactly once`, { timeout: 900_000 }, async () => {
      const target = TARGETS[name]
      const locator = target.newLocator()
      const store = await openJobStore(locator, target.options)
      await store.initialize()
      onTestFinished(() => store.destroy())
      const before = Array.from({ length: MESSAGES_BEFORE }, (_, i) => `before-${i}`)
      for (let i = 0; i < before.length; i += 50) await Promise.all(before.slice(i, i + 50).map((m) => store.writeStatsAndLogging(m)))
      const startAt = Date.now() + 6000
      const [writer, ...readers] = await Promise.all([
        runWorker({ scenario: 'write-stats', locator, options: target.options, args: { count: MESSAGES_DURING, prefix: 'during-', startAt } }, { timeoutMs: RUN_TIMEOUT_MS }),
        ...Array.from({ length: READERS }, () =>
          runWorker({ scenario: 'read-stats', locator, options: target.options, args: { startAt, untilWriterDone: true } }, { timeoutMs: RUN_TIMEOUT_MS }),
        ),
      ])
      expect(writer?.code, writer?.stderr).toBe(0)
      const handed = new Map<string, number>()
      const perReader: number[] = []
      const rounds: number[] = []
      for (const reader of readers) {
        expect(reader.code, reader.stderr).toBe(0)
        const messages = reader.lines.filter((l) => l.startsWith('msg ')).map((l) => l.slice(4))
        perReader.push(messages.length)
        rounds.push(Number(reader.lines.find((l) => l.startsWith('rounds '))?.slice(7)))
        for (const m of messages) handed.set(m, (handed.get(m) ?? 0) + 1)
      }
      const all = [...before, ...Array.from({ length: MESSAGES_DURING }, (_, i) => `during-${i}`)]
      const twice = [...handed].filter(([, n]) => n > 1).map(([m]) => m)
      const missing = all.filter((m) => !handed.has(m))
      record(`races-stats-${name}`, { backend: name, readers: READERS, messages: all.length, perReader, rounds, handedTwice: twice.length, missing: missing.length })
      expect(twice).toEqual([])
      expect(missing).toEqual([])
      expect(handed.size).toBe(all.length)
    })
  })
}
