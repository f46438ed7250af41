/**
 * `JobDescription`: what the store keeps about a job. It relates jobs to each other (children, follow-ons,
 * services), carries the retry budget and the files to delete, and holds engine-owned data in `extra`.
 * On the wire it is JSON with a `schemaVersion`, so stores written by one release are read by the next.
 */
import { CorruptRecordError, InvalidArgumentError } from './errors.js'
import { checkJobId } from './ids.js'

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

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string')
}

/**
 * Decodes stored bytes. Throws {@link CorruptRecordError} naming the job for bad JSON, a schema version this
 * release does not know, or fields of the wrong type.
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
  const problems: string[] = []
  if (desc['jobStoreID'] !== jobStoreID) problems.push(`jobStoreID ${JSON.stringify(desc['jobStoreID'])} does not match`)
  if (typeof desc['jobName'] !== 'string') problems.push('jobName is not a string')
  for (const field of ['children', 'followOns', 'services', 'jobsToDelete']) {
    const ids = desc[field]
    if (!isStringArray(ids)) problems.push(`${field} is not a list of IDs`)
    else if (!ids.every(isJobId)) problems.push(`${field} holds something that is not a job ID`)
  }
  if (!isStringArray(desc['filesToDelete'])) problems.push('filesToDelete is not a list of IDs')
  if (typeof desc['version'] !== 'number' || !Number.isInteger(desc['version'])) problems.push('version is not an integer')
  const req = desc['requirements'] as Record<string, unknown> | undefined
  if (typeof req !== 'object' || req === null || typeof req['memory'] !== 'number' || typeof req['cores'] !== 'number') {
    problems.push('requirements are malformed')
  }
  if (typeof desc['extra'] !== 'object' || desc['extra'] === null || Array.isArray(desc['extra'])) {
    problems.push('extra is not an object')
  }
  if (desc['remainingTryCount'] !== undefined && typeof desc['remainingTryCount'] !== 'number') {
    problems.push('remainingTryCount is not a number')
  }
  if (problems.length > 0) throw new CorruptRecordError(record, problems.join('; '))
  return desc as unknown as JobDescription
}
