/**
 * `JobDescription`: what the store keeps about a job. It relates jobs to each other (children, follow-ons,
 * services), carries the retry budget and the files to delete, and holds engine-owned data in `extra`.
 * On the wire it is JSON with a `schemaVersion`, so stores written by one release are read by the next.
 */
import { CorruptRecordError, InvalidArgumentError } from './errors.js'
import { checkJobId, isFileId } from './ids.js'

function isJobId(id: string): boolean {
  try {
    checkJobId(id)
    return true
  } catch {
    return false
  }
}

/** Version of the JSON encoding of a job description. */
export const JOB_SCHEMA_VERSION = 1

/** JSON values, for engine-owned data. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }
/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue }

/** An accelerator a job needs (kind such as `gpu`, a count, optional model/brand/API). */
export interface AcceleratorRequirement {
  kind: string
  count: number
  model?: string
  brand?: string
  api?: string
}

/** Resources a job needs. Memory and disk in bytes. */
export interface JobRequirements {
  memory: number
  cores: number
  disk: number
  preemptible: boolean
  accelerators: AcceleratorRequirement[]
}

/** A job as stored. */
export interface JobDescription {
  /** Assigned by `assignID()`; required by `create()`. */
  jobStoreID?: string
  jobName: string
  unitName?: string
  displayName?: string
  command?: string
  requirements: JobRequirements
  /** IDs of jobs to run after this one, in parallel. */
  children: string[]
  /** IDs of jobs to run after this one and all its children (and their successors). */
  followOns: string[]
  /** IDs of service jobs this job runs. */
  services: string[]
  /** Tries left; `create()` sets it to `config.retryCount + 1` when absent, `clean()` resets it. */
  remainingTryCount?: number
  /** File IDs to delete when the job's update is next cleaned. */
  filesToDelete: string[]
  /** Job IDs to delete when the job's update is next cleaned. */
  jobsToDelete: string[]
  /** A file holding the job's log, if it failed and logged. */
  logJobStoreFileID?: string
  /** Bumped by every `create()` and `update()`; the token of `update(desc, { ifVersion })`. 0 before creation. */
  version: number
  /** Engine-owned JSON: inputs, outputs, metadata, function and arguments… */
  extra: JsonObject
}

/** Fields of a new job description; everything but `jobName` has a default. */
export type JobDescriptionInit = Partial<Omit<JobDescription, 'requirements'>> & {
  jobName: string
  requirements?: Partial<JobRequirements>
}

/** Default requirements: 2 GiB of memory, 1 core, 2 GiB of disk, preemptible, no accelerators (as in Toil). */
export const DEFAULT_REQUIREMENTS: Readonly<JobRequirements> = Object.freeze({
  memory: 2 * 1024 ** 3,
  cores: 1,
  disk: 2 * 1024 ** 3,
  preemptible: true,
  accelerators: [],
})

/** Builds a job description with defaults filled in. It has no ID until `store.assignID()`. */
export function newJobDescription(init: JobDescriptionInit): JobDescription {
  if (typeof init.jobName !== 'string' || init.jobName === '') {
    throw new InvalidArgumentError('a job description needs a non-empty jobName')
  }
  const { requirements, ...rest } = init
  return {
    children: [],
    followOns: [],
    services: [],
    filesToDelete: [],
    jobsToDelete: [],
    version: 0,
    extra: {},
    ...rest,
    requirements: { ...DEFAULT_REQUIREMENTS, accelerators: [], ...requirements },
  }
}

/** Encodes a job description as stored bytes. */
export function encodeJob(desc: JobDescription): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: JOB_SCHEMA_VERSION, ...desc }), 'utf8')
}

/** Deepest nesting accepted in a job description (`extra` included): far past any real use, well inside JSON.stringify's. */
export const MAX_JOB_NESTING = 512

/** The fields whose type the schema fixes; any other top-level field is engine data and must be a JSON value. */
const JOB_ID_LISTS = ['children', 'followOns', 'services', 'jobsToDelete'] as const
const OPTIONAL_STRINGS = ['unitName', 'displayName', 'command'] as const

function shown(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
  if (typeof value === 'bigint') return `the BigInt ${String(value)}`
  if (typeof value === 'symbol') return 'a symbol'
  if (typeof value === 'function') return 'a function'
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value)
  if (value === undefined || value === null || typeof value === 'boolean') return String(value)
  if (Array.isArray(value)) return 'a list'
  const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name
  return typeof name === 'string' && name !== 'Object' ? `a ${name}` : 'an object'
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/**
 * Why `value` (at `path`) would not come back equal from JSON: undefined, functions, symbols, BigInts, NaN and
 * ±Infinity (stored as null), objects other than plain ones (a Date comes back a string, a Map `{}`), holes and
 * extra properties of lists, symbol or non-enumerable keys (dropped), cycles. Pushes one problem per value.
 */
function jsonProblems(value: unknown, path: string, problems: string[], ancestors: unknown[]): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return
    case 'number':
      if (!Number.isFinite(value)) problems.push(`${path} is ${shown(value)}, which JSON stores as null`)
      return
    case 'object':
      break
    default:
      problems.push(`${path} is ${shown(value)}, not a JSON value`)
      return
  }
  if (value === null) return
  if (ancestors.includes(value)) {
    problems.push(`${path} refers back to a value that holds it (a cycle)`)
    return
  }
  if (ancestors.length >= MAX_JOB_NESTING) {
    problems.push(`${path} nests deeper than ${MAX_JOB_NESTING} levels`)
    return
  }
  ancestors.push(value)
  if (Array.isArray(value)) {
    if (Reflect.ownKeys(value).length !== value.length + 1) {
      for (let i = 0; i < value.length; i++) if (!(i in value)) problems.push(`${path}[${i}] is a hole in a list, which JSON stores as null`)
      if (Object.keys(value).length !== value.filter(() => true).length) problems.push(`${path} is a list with named properties, which JSON drops`)
    }
    for (let i = 0; i < value.length; i++) if (i in value) jsonProblems(value[i], `${path}[${i}]`, problems, ancestors)
  } else if (!isPlainObject(value)) {
    problems.push(`${path} is ${shown(value)}, not a plain object: JSON would not read it back as it is`)
  } else {
    const names = Object.keys(value)
    if (Reflect.ownKeys(value).length !== names.length) problems.push(`${path} has symbol or non-enumerable keys, which JSON drops`)
    for (const name of names) jsonProblems(value[name], /^[A-Za-z_$][\w$]*$/.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`, problems, ancestors)
  }
  ancestors.pop()
}

function nonNegativeNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

/**
 * The one schema of a stored job description, applied by `decodeJob` to what it reads and by `create()`/`update()`
 * to what they are given: the problems found, each naming its field (empty when the description is valid).
 *
 * - `jobName` a string; `unitName`, `displayName`, `command` strings when present;
 * - `children`, `followOns`, `services`, `jobsToDelete` lists of job IDs; `filesToDelete` a list of file IDs;
 *   `logJobStoreFileID` a file ID when present;
 * - `requirements`: `memory`, `cores`, `disk` finite numbers ≥ 0, `preemptible` a boolean, `accelerators` a list of
 *   `{kind: string, count: number ≥ 0, model?, brand?, api?: string}`;
 * - `remainingTryCount` an integer when present; `version` a non-negative safe integer;
 * - `extra` a plain object; `extra` and any other field hold JSON values only, that read back equal (see
 *   {@link jsonProblems}); no `schemaVersion` field (the record's own would be replaced by it).
 *
 * With `fromJson`, `desc` came out of `JSON.parse`, so the JSON-value walk is skipped.
 */
export function jobDescriptionProblems(desc: Record<string, unknown>, options: { fromJson?: boolean } = {}): string[] {
  const problems: string[] = []
  if (typeof desc['jobName'] !== 'string') problems.push(`jobName is ${shown(desc['jobName'])}, not a string`)
  for (const field of OPTIONAL_STRINGS) {
    const value = desc[field]
    if (value !== undefined && typeof value !== 'string') problems.push(`${field} is ${shown(value)}, not a string`)
  }
  for (const field of [...JOB_ID_LISTS, 'filesToDelete'] as const) {
    const ids = desc[field]
    const kind = field === 'filesToDelete' ? 'file' : 'job'
    if (!Array.isArray(ids)) {
      problems.push(`${field} is ${shown(ids)}, not a list of ${kind} IDs`)
      continue
    }
    for (let i = 0; i < ids.length; i++) {
      const id: unknown = ids[i]
      if (typeof id !== 'string' || !(kind === 'file' ? isFileId(id) : isJobId(id))) {
        problems.push(`${field}[${i}] is ${shown(id)}, not a ${kind} ID`)
        break // one per field is enough to tell what is wrong
      }
    }
  }
  const log = desc['logJobStoreFileID']
  if (log !== undefined && (typeof log !== 'string' || !isFileId(log))) problems.push(`logJobStoreFileID is ${shown(log)}, not a file ID`)
  const req = desc['requirements']
  if (!isPlainObject(req)) {
    problems.push(`requirements is ${shown(req)}, not an object`)
  } else {
    for (const field of ['memory', 'cores', 'disk'] as const) {
      if (!nonNegativeNumber(req[field])) problems.push(`requirements.${field} is ${shown(req[field])}, not a finite number ≥ 0`)
    }
    if (typeof req['preemptible'] !== 'boolean') problems.push(`requirements.preemptible is ${shown(req['preemptible'])}, not a boolean`)
    const accelerators = req['accelerators']
    if (!Array.isArray(accelerators)) {
      problems.push(`requirements.accelerators is ${shown(accelerators)}, not a list`)
    } else {
      accelerators.forEach((acc: unknown, i) => {
        const at = `requirements.accelerators[${i}]`
        if (!isPlainObject(acc)) return void problems.push(`${at} is ${shown(acc)}, not an object`)
        if (typeof acc['kind'] !== 'string') problems.push(`${at}.kind is ${shown(acc['kind'])}, not a string`)
        if (!nonNegativeNumber(acc['count'])) problems.push(`${at}.count is ${shown(acc['count'])}, not a finite number ≥ 0`)
        for (const field of ['model', 'brand', 'api']) {
          if (acc[field] !== undefined && typeof acc[field] !== 'string') problems.push(`${at}.${field} is ${shown(acc[field])}, not a string`)
        }
      })
    }
  }
  const tries = desc['remainingTryCount']
  if (tries !== undefined && !Number.isSafeInteger(tries)) problems.push(`remainingTryCount is ${shown(tries)}, not an integer`)
  const version = desc['version']
  if (!Number.isSafeInteger(version) || (version as number) < 0) problems.push(`version is ${shown(version)}, not an integer ≥ 0`)
  if (!isPlainObject(desc['extra'])) problems.push(`extra is ${shown(desc['extra'])}, not an object`)
  if (!options.fromJson) {
    if ('schemaVersion' in desc) problems.push('schemaVersion is not a field of a job description (the store writes its own)')
    // Everything must read back equal: the typed fields above (a child ID is a string, so only odd values are
    // left to find) and `extra` and engine fields, walked whole.
    const ancestors: unknown[] = [desc]
    for (const name of Object.keys(desc)) {
      const value = desc[name]
      if (value === undefined && name !== 'extra' && !(name in REQUIRED_FIELDS)) continue // absent, as JSON stores it
      if (problems.some((p) => p.startsWith(name))) continue // already named
      jsonProblems(value, name, problems, ancestors)
    }
    if (Reflect.ownKeys(desc).length !== Object.keys(desc).length) problems.push('the description has symbol or non-enumerable keys, which JSON drops')
  }
  return problems
}

/** Fields every stored description has; `create()`/`update()` fill in the absent ones (see {@link completeJobDescription}). */
const REQUIRED_FIELDS: Readonly<Record<string, true>> = {
  jobName: true, requirements: true, children: true, followOns: true, services: true, filesToDelete: true, jobsToDelete: true, version: true, extra: true,
}

/**
 * Checks a description given to `create()`/`update()`/`batch()` against the schema `load()` applies, after filling
 * in, on `desc` itself, the fields that are absent (undefined) and have a default: the lists of successors and of
 * things to delete (`[]`), `extra` (`{}`), `version` (0) and every field of `requirements` (from
 * {@link DEFAULT_REQUIREMENTS}). Nothing is filled in when the description is refused.
 * @throws InvalidArgumentError naming each field that is wrong, before any I/O.
 */
export function checkJobDescription(desc: JobDescription): void {
  const given = desc as unknown as Record<string, unknown>
  if (typeof given !== 'object' || given === null) throw new InvalidArgumentError(`a job description must be an object, not ${shown(given)}`)
  const filled: Record<string, unknown> = {}
  for (const field of [...JOB_ID_LISTS, 'filesToDelete']) if (given[field] === undefined) filled[field] = []
  if (given['extra'] === undefined) filled['extra'] = {}
  if (given['version'] === undefined) filled['version'] = 0
  const req = given['requirements']
  if (req === undefined || (isPlainObject(req) && REQUIREMENT_FIELDS.some((f) => req[f] === undefined))) {
    const complete: Record<string, unknown> = { ...DEFAULT_REQUIREMENTS, accelerators: [] }
    if (isPlainObject(req)) for (const [k, v] of Object.entries(req)) if (v !== undefined) complete[k] = v
    filled['requirements'] = complete
  }
  const problems = jobDescriptionProblems({ ...given, ...filled })
  if (problems.length > 0) {
    const id = typeof given['jobStoreID'] === 'string' ? ` ${given['jobStoreID']}` : ''
    throw new InvalidArgumentError(`invalid job description${id}: ${problems.join('; ')}`)
  }
  Object.assign(given, filled)
}

const REQUIREMENT_FIELDS = ['memory', 'cores', 'disk', 'preemptible', 'accelerators'] as const

/**
 * Decodes stored bytes. Throws {@link CorruptRecordError} naming the job for bad JSON, a schema version this
 * release does not know, or fields that do not fit the schema ({@link jobDescriptionProblems}). Nothing is
 * filled in on read: a record without its successors is damage, never "no successors".
 */
export function decodeJob(bytes: Buffer | string, jobStoreID: string): JobDescription {
  const record = `job ${jobStoreID}`
  let parsed: unknown
  try {
    parsed = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'))
  } catch (err) {
    throw new CorruptRecordError(record, 'not valid JSON (truncated or overwritten?)', { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CorruptRecordError(record, 'not a JSON object')
  }
  const { schemaVersion, ...desc } = parsed as Record<string, unknown>
  if (schemaVersion !== JOB_SCHEMA_VERSION) {
    throw new CorruptRecordError(
      record,
      `schema version ${JSON.stringify(schemaVersion)} is not the supported version ${JOB_SCHEMA_VERSION}`,
    )
  }
  const problems = desc['jobStoreID'] !== jobStoreID ? [`jobStoreID ${JSON.stringify(desc['jobStoreID'])} does not match`] : []
  problems.push(...jobDescriptionProblems(desc, { fromJson: true }))
  if (problems.length > 0) throw new CorruptRecordError(record, problems.join('; '))
  return desc as unknown as JobDescription
}
