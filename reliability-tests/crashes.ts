/**
 * The crash test (crashes-<backend>.test.ts registers it for each backend): writers killed with SIGKILL at random
 * points, 200 times per backend, spread evenly over five kinds of writes:
 * `writeFile` of local files, `writeFileStream`/`updateFileStream`, `writeSharedFileStream` (protected or not),
 * job `update()`s and `batch()` creates. Sizes go from 100 bytes to over two upload parts, so kills land in single
 * requests, multipart/block/resumable uploads and their commits.
 *
 * Each writer is a separate node process (conformance-tests/worker.ts, started by conformance-tests/processes.ts)
 * that writes in a loop and announces every write before it starts and once it is done; the parent kills it after
 * a random delay and then checks, through its own instance of the store:
 * - no partial object is visible: every file, shared file and job in the store verifies itself
 *   (conformance-tests/payloads.ts);
 * - every completed write is intact, and an object being written when the writer died holds its old or its new
 *   content, nothing else; a killed batch() left whole jobs or none;
 * - at the end, `clean()` removes every leftover of the killed writes (temporary files, multipart uploads,
 *   uncommitted blocks) that the service can list.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, it, onTestFinished } from 'vitest'
import type { AbstractJobStore } from '../src/abstract-job-store.js'
import { newJobDescription, type JobDescription } from '../src/job-description.js'
import { NoSuchFileError, NoSuchJobError } from '../src/errors.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { record } from './figures.js'
import { checkSelf, fillJob, jobTag, selfChecking } from '../conformance-tests/payloads.js'
import { startWorker } from '../conformance-tests/processes.js'
import { TARGETS, type BackendName, type Target } from './targets.js'

const KILLS = 200
const LANES = 5
const SCENARIOS = ['file-writes', 'stream-writes', 'shared-writes', 'job-updates', 'batch'] as const
type Scenario = (typeof SCENARIOS)[number]
/** A worker is killed this long after it is ready, uniformly at random. */
const MAX_KILL_DELAY_MS = 700

interface KillFigures {
  kills: number
  /** Kills that landed while a write was in flight (the others between two writes). */
  midWrite: number
  /** Writes completed before the kills, and checked intact afterwards. */
  completedWrites: number
  /** In-flight writes whose new content was visible afterwards (the others left the old content or nothing). */
  inFlightLanded: number
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const part of stream) parts.push(part as Buffer)
  return Buffer.concat(parts)
}

/** One lane: a store of its own, and writers started and killed one after the other. */
class Lane {
  readonly files: string[] = []
  readonly shared = ['state-a', 'state-b', 'state-c']
  readonly jobs: JobDescription[] = []
  /** The content each update target holds (digest or job tag). */
  readonly current = new Map<string, string>()
  /**
   * Writes in flight when their writer was killed: the server may still complete a request it had received, so
   * their content may appear later too (target or, for new files, '' → contents).
   */
  readonly #mayStillLand = new Map<string, Set<string>>()
  readonly figures = Object.fromEntries(
    SCENARIOS.map((s) => [s, { kills: 0, midWrite: 0, completedWrites: 0, inFlightLanded: 0 } satisfies KillFigures]),
  ) as Record<Scenario, KillFigures>

  constructor(
    readonly target: Target,
    readonly locator: string,
    readonly store: AbstractJobStore,
  ) {}

  static async open(target: Target, keyPath: string): Promise<Lane> {
    const locator = target.newLocator()
    const store = await openJobStore(locator, target.options)
    await store.initialize({ encryptionKeyPath: keyPath })
    onTestFinished(() => store.destroy())
    const lane = new Lane(target, locator, store)
    for (let i = 0; i < 3; i++) {
      const { data, digest } = selfChecking(1000 * (i + 1))
      const id = await store.writeFileStream((w) => void w.end(data))
      lane.files.push(id)
      lane.current.set(id, digest)
    }
    for (const name of lane.shared) {
      const { data, digest } = selfChecking(500)
      await store.writeSharedFileStream(name, (w) => void w.end(data))
      lane.current.set(name, digest)
    }
    for (let i = 0; i < 3; i++) {
      const desc = newJobDescription({ jobName: `updated-${i}` })
      store.assignID(desc)
      lane.current.set(desc.jobStoreID as string, fillJob(desc, 2000))
      await store.create(desc)
      lane.jobs.push(desc)
    }
    // The updated jobs hang off the root, so that clean() keeps them.
    const root = newJobDescription({ jobName: 'root', children: lane.jobs.map((j) => j.jobStoreID as string) })
    store.assignID(root)
    await store.createRootJob(root)
    return lane
  }

  async kill(scenario: Scenario): Promise<void> {
    const worker = startWorker({
      scenario,
      locator: this.locator,
      options: this.target.options,
      args: { partSize: this.target.partSize, files: this.files, names: this.shared, jobs: this.jobs.map((j) => j.jobStoreID) },
    })
    await worker.waitForLine('ready', 120_000)
    await new Promise((resolve) => setTimeout(resolve, Math.random() * MAX_KILL_DELAY_MS))
    worker.kill()
    const result = await worker.done
    // A killed worker cannot remove its scratch folder (its local input files): it named it.
    for (const line of result.lines) if (line.startsWith('scratch ')) await rm(line.slice('scratch '.length), { recursive: true, force: true })
    expect(result.signal, `${scenario} worker ended by itself:\n${result.stderr}`).toBe('SIGKILL')
    const figures = this.figures[scenario]
    figures.kills++
    // The writes announced: done ones, and the one in flight (a start with no done after it).
    const lines = result.lines.filter((line) => line.startsWith('start ') || line.startsWith('done '))
    const last = lines[lines.length - 1]
    const inFlight = last?.startsWith('start ') ? last.split(' ') : undefined
    if (inFlight !== undefined) figures.midWrite++
    const done = lines.filter((line) => line.startsWith('done ')).map((line) => line.split(' '))
    figures.completedWrites += done.length
    await this.check(scenario, lines, inFlight, figures)
  }

  /**
   * Checks the store after a kill (see the file's comment): the kinds of objects the scenario writes, or all of
   * them with `everything`; then removes the new files and jobs it made.
   */
  async check(scenario: Scenario, lines: string[], inFlight: string[] | undefined, figures: KillFigures, everything = false): Promise<void> {
    const store = this.store
    const files = everything || scenario === 'file-writes' || scenario === 'stream-writes'
    const shared = everything || scenario === 'shared-writes'
    const jobs = everything || scenario === 'job-updates' || scenario === 'batch'
    // Update targets hold their last completed content, or the in-flight one.
    const lastDone = new Map(this.current)
    for (const line of lines) {
      const [word, kind, target, content] = line.split(' ') as [string, string, string, string]
      if (word === 'done' && (kind === 'update' || kind === 'shared' || kind === 'job')) lastDone.set(target, content)
    }
    const allowed = (target: string): Set<string> => {
      const set = new Set<string>([lastDone.get(target) as string, ...(this.#mayStillLand.get(target) ?? [])])
      if (inFlight !== undefined && inFlight[2] === target) set.add(inFlight[3] as string)
      return set
    }
    if (inFlight !== undefined) {
      const target = inFlight[1] === 'file' || inFlight[1] === 'stream' ? '' : (inFlight[2] as string)
      const set = this.#mayStillLand.get(target) ?? new Set<string>()
      set.add(inFlight[3] as string)
      this.#mayStillLand.set(target, set)
    }
    const landed = (target: string, content: string): void => {
      if (inFlight !== undefined && inFlight[2] === target && content === inFlight[3] && content !== lastDone.get(target)) figures.inFlightLanded++
      this.current.set(target, content)
    }

    // Every file in the store is whole; update targets hold an allowed content; completed new files are intact.
    const contents = new Map<string, string>()
    if (files) for await (const { fileID } of store.files()) {
      const digest = checkSelf(await readAll(await store.readFileStream(fileID)))
      expect(digest, `file ${fileID} is partial after a killed ${scenario}`).toBeDefined()
      contents.set(fileID, digest as string)
    }
    if (files) for (const id of this.files) {
      expect(allowed(id), `file ${id} after a killed ${scenario}`).toContain(contents.get(id))
      landed(id, contents.get(id) as string)
    }
    for (const line of lines) {
      const [word, kind, id, digest] = line.split(' ') as [string, string, string, string]
      if (word === 'done' && kind === 'file') expect(contents.get(id), `completed writeFile ${id}`).toBe(digest)
    }
    // writeFileStream announces its ID when it starts: a completed one is intact.
    for (const [i, line] of lines.entries()) {
      const [word, kind, id, digest] = line.split(' ') as [string, string, string, string]
      if (word === 'start' && kind === 'stream' && lines[i + 1]?.startsWith('done stream')) {
        expect(contents.get(id), `completed writeFileStream ${id}`).toBe(digest)
      }
    }
    if (files) {
      const news = [...contents.keys()].filter((id) => !this.files.includes(id))
      const announced = new Set(lines.filter((l) => l.startsWith('done file')).map((l) => l.split(' ')[2]))
      for (const [i, line] of lines.entries()) {
        if (line.startsWith('start stream') && lines[i + 1]?.startsWith('done stream')) announced.add(line.split(' ')[2])
      }
      // New files nobody announced as done: writes in flight at a kill (this one, or an earlier one whose request
      // the server completed late), whole (checked above) and with the content being written.
      const inFlightFiles = this.#mayStillLand.get('') ?? new Set<string>()
      for (const id of news.filter((id) => !announced.has(id))) {
        expect(inFlightFiles, `unannounced file ${id} after a killed ${scenario}`).toContain(contents.get(id))
        figures.inFlightLanded++
      }
    }

    if (shared) for (const name of this.shared) {
      let digest: string | undefined
      try {
        digest = checkSelf(await readAll(await store.readSharedFileStream(name)))
      } catch (err) {
        if (err instanceof NoSuchFileError) throw new Error(`shared file ${name} vanished after a killed ${scenario}`)
        throw err
      }
      expect(allowed(name), `shared file ${name} after a killed ${scenario}`).toContain(digest)
      landed(name, digest as string)
    }

    if (jobs) await this.#checkJobs(scenario, lines, inFlight, figures, allowed, landed)
    // Keep the store small: the new files go.
    const fresh = [...contents.keys()].filter((id) => !this.files.includes(id))
    await Promise.all(fresh.map((id) => store.deleteFile(id)))
  }

  async #checkJobs(
    scenario: Scenario,
    lines: string[],
    inFlight: string[] | undefined,
    figures: KillFigures,
    allowed: (target: string) => Set<string>,
    landed: (target: string, content: string) => void,
  ): Promise<void> {
    const store = this.store
    // Jobs: every job in the store decodes and verifies itself; updated jobs hold an allowed version.
    const corrupt: string[] = []
    const listed = new Map<string, JobDescription>()
    for await (const desc of store.jobs({ onCorruptRecord: (err) => corrupt.push(err.message) })) listed.set(desc.jobStoreID as string, desc)
    expect(corrupt, `damaged job records after a killed ${scenario}`).toEqual([])
    for (const desc of listed.values()) {
      if (desc.jobName === 'root') continue
      expect(jobTag(desc), `job ${desc.jobStoreID} (${desc.jobName}) is partial after a killed ${scenario}`).toBeDefined()
    }
    for (const job of this.jobs) {
      const desc = listed.get(job.jobStoreID as string)
      expect(desc, `job ${job.jobStoreID} vanished after a killed ${scenario}`).toBeDefined()
      const tag = jobTag(desc as JobDescription) as string
      expect(allowed(job.jobStoreID as string), `job ${job.jobStoreID} after a killed ${scenario}`).toContain(tag)
      landed(job.jobStoreID as string, tag)
    }
    // batch(): the jobs of completed batches all exist; of the one in flight, each exists whole or not at all.
    for (const [i, line] of lines.entries()) {
      if (!line.startsWith('start batch')) continue
      const ids = (line.split(' ')[3] ?? '').split(',')
      const completed = lines[i + 1]?.startsWith('done batch') === true
      const present = ids.filter((id) => listed.has(id))
      if (completed) expect(present.length, `completed batch ${line.split(' ')[2]}`).toBe(ids.length)
      else if (present.length > 0) figures.inFlightLanded++
    }

    // Keep the store small: the batched jobs go.
    const keep = new Set(this.jobs.map((j) => j.jobStoreID as string))
    await Promise.all(
      [...listed.values()].filter((d) => d.jobName !== 'root' && !keep.has(d.jobStoreID as string)).map((d) => store.delete(d.jobStoreID as string)),
    )
    for (const job of this.jobs) {
      const there = await store.load(job.jobStoreID as string).catch((err: unknown) => {
        if (err instanceof NoSuchJobError) throw new Error(`job ${job.jobStoreID} vanished`)
        throw err
      })
      // Equal to what the listing showed, or a write in flight at an earlier kill that the server completed since
      // (Azurite finished a Put Blob of a killed writer between the listing and this load once, under CI load).
      const id = job.jobStoreID as string
      const tag = jobTag(there) as string
      if (tag !== this.current.get(id)) {
        expect(this.#mayStillLand.get(id) ?? new Set(), `job ${id} loaded after its listing`).toContain(tag)
        figures.inFlightLanded++
        this.current.set(id, tag)
      }
    }
  }
}

/** Registers the crash test of one backend (one file per backend, so that they run in parallel). */
export function crashTest(name: BackendName): void {
  it(`crashes: ${name}: ${KILLS} writers killed with SIGKILL at random points: nothing partial, completed writes intact, clean() removes the leftovers`, { timeout: 1_200_000 }, async () => {
    const target = TARGETS[name]
    const dir = await mkdtemp(join(tmpdir(), 'jobstore-crashes-'))
    onTestFinished(() => rm(dir, { recursive: true, force: true }))
    const keyPath = join(dir, 'key')
    await writeFile(keyPath, Buffer.alloc(32, 9))
    const lanes = await Promise.all(Array.from({ length: LANES }, () => Lane.open(target, keyPath)))
    const perLane = KILLS / LANES
    await Promise.all(
      lanes.map(async (lane, l) => {
        for (let i = 0; i < perLane; i++) await lane.kill(SCENARIOS[(i + l) % SCENARIOS.length] as Scenario)
        // And once more everything, whatever the last scenario wrote.
        await lane.check('file-writes', [], undefined, { kills: 0, midWrite: 0, completedWrites: 0, inFlightLanded: 0 }, true)
      }),
    )

    // Leftovers of the killed writes, then clean() with its default age (the file backend removes the temporary
    // files of dead local writers at once), then with age 0 (uploads of any age).
    const leftovers: Record<string, unknown> = {}
    let removed = 0
    // Requests a writer had sent before it was killed may still complete on the server (a multipart upload
    // created a moment later). (The file backend's per-key locks held by a killed writer of this host are stale at
    // once: their holder is gone.)
    await new Promise((resolve) => setTimeout(resolve, 2000))
    for (const [phase, options] of [['before clean()', undefined], ['after clean()', {}], ['after clean({ leftoverAgeMs: 0 })', { leftoverAgeMs: 0 }]] as const) {
      if (options !== undefined) {
        for (const lane of lanes) {
          await lane.store.clean(undefined, { ...options, onReport: (report) => void (removed += report.leftoversRemoved) })
        }
      }
      leftovers[phase] =
        target.countLeftovers === undefined
          ? target.uncountableLeftovers
          : (await Promise.all(lanes.map((lane) => (target.countLeftovers as (l: string) => Promise<number>)(lane.locator)))).reduce((a, b) => a + b, 0)
    }
    // A request the server received before the kill may complete after this clean() listed the uploads (on a
    // loaded machine it can queue for seconds): clean() again, a few times at most, until nothing is left.
    let extraCleanRounds = 0
    const count = async (): Promise<number> =>
      (await Promise.all(lanes.map((lane) => (target.countLeftovers as (l: string) => Promise<number>)(lane.locator)))).reduce((a, b) => a + b, 0)
    while (target.countLeftovers !== undefined && (leftovers['after clean({ leftoverAgeMs: 0 })'] as number) > 0 && extraCleanRounds < 5) {
      extraCleanRounds++
      await new Promise((resolve) => setTimeout(resolve, 2000))
      for (const lane of lanes) await lane.store.clean(undefined, { leftoverAgeMs: 0, onReport: (report) => void (removed += report.leftoversRemoved) })
      leftovers['after clean({ leftoverAgeMs: 0 })'] = await count()
    }
    if (target.describeLeftovers !== undefined && (leftovers['after clean({ leftoverAgeMs: 0 })'] as number) > 0) {
      for (const lane of lanes) for (const line of await target.describeLeftovers(lane.locator)) console.error(`[crashes] left over: ${line}`)
    }
    const locks = name === 'file' ? (await Promise.all(lanes.map((lane) => lockFolders(lane.locator.slice('file:'.length))))).flat() : []

    const byScenario = Object.fromEntries(
      SCENARIOS.map((s) => {
        const sum: KillFigures = { kills: 0, midWrite: 0, completedWrites: 0, inFlightLanded: 0 }
        for (const lane of lanes) for (const key of Object.keys(sum) as (keyof KillFigures)[]) sum[key] += lane.figures[s][key]
        return [s, sum]
      }),
    ) as Record<Scenario, KillFigures>
    const total = Object.values(byScenario).reduce((sum, f) => sum + f.kills, 0)
    record(`crashes-${name}`, { backend: name, kills: total, byScenario, leftovers, leftoversRemovedByClean: removed, extraCleanRounds })
    if (name === 'file') {
      expect(leftovers['after clean()']).toBe(0)
      // Nor are lock folders of killed writers left anywhere.
      expect(locks).toEqual([])
    }
    if (target.countLeftovers !== undefined) expect(leftovers['after clean({ leftoverAgeMs: 0 })']).toBe(0)
    expect(total).toBe(KILLS)
    for (const scenario of SCENARIOS) {
      expect(byScenario[scenario].kills).toBe(KILLS / SCENARIOS.length)
      // The writers write back to back: most kills land mid-write.
      expect(byScenario[scenario].midWrite, scenario).toBeGreaterThan(byScenario[scenario].kills / 2)
    }
  })
}

/** The file backend's per-key locks (`~lock`, `~lock~break`: symlinks; folders of releases before) under a store folder. */
export async function lockFolders(root: string): Promise<string[]> {
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.name.endsWith('~lock') || entry.name.endsWith('~lock~break')) found.push(join(dir, entry.name))
      else if (entry.isDirectory()) await walk(join(dir, entry.name))
    }
  }
  await walk(root)
  return found
}
