/**
 * The `jobstore:operation` tracing channel: every public operation of a job store is published on a
 * `node:diagnostics_channel` `TracingChannel` (start, end, asyncStart, asyncEnd, error), with an
 * {@link OperationContext} telling what it was, where, on what, how many bytes moved and how it failed. See
 * docs/observability.md; `jobstore/otel` turns the events into OpenTelemetry spans and metrics.
 *
 * Nothing is built, wrapped or published while nobody subscribes: each traced method first reads
 * `channel.hasSubscribers` and, when false, calls the method as it is.
 *
 * The instrumentation is applied once per store class, by {@link instrumentJobStoreClass} (called from the
 * store's constructor): the public methods named in {@link OPERATIONS} are wrapped where they are defined, on the
 * class's prototype chain, so that a backend that overrides one is traced too. An override that calls `super`
 * publishes once, not twice.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { tracingChannel } from 'node:diagnostics_channel'
import { stat } from 'node:fs/promises'
import { finished, type Readable } from 'node:stream'
import { locatorScheme } from './open.js'
import { redactLocator } from './redact.js'

/** The channel's name: `tracingChannel('jobstore:operation')`. */
export const OPERATION_CHANNEL = 'jobstore:operation'

/**
 * How an operation ends: `promise` when its promise settles; `stream` (methods resolving with a readable) when the
 * stream ends, fails or is destroyed; `generator` (async generators) when the iteration finishes, fails or is
 * stopped by the consumer (`break`, `return()`).
 */
export type OperationKind = 'promise' | 'stream' | 'generator'

interface OperationSpec {
  readonly kind: OperationKind
  /** Whether the operation's `bytes` are read from the store or written to it (absent: it moves no file content). */
  readonly bytes?: 'read' | 'write'
  /** Fills in the context from the arguments; returns the arguments to call with (callbacks wrapped to count bytes). */
  readonly prepare?: (ctx: OperationContext, args: unknown[]) => unknown[] | undefined
  /** Fills in the context from the result. */
  readonly done?: (ctx: OperationContext, result: unknown, args: unknown[]) => void | Promise<void>
}

const jobArg = (ctx: OperationContext, args: unknown[]): undefined => {
  if (typeof args[0] === 'string') ctx.jobStoreID = args[0]
  return undefined
}
const descArg = (ctx: OperationContext, args: unknown[]): undefined => {
  const id = (args[0] as { jobStoreID?: unknown } | undefined)?.jobStoreID
  if (typeof id === 'string') ctx.jobStoreID = id
  return undefined
}
const descResult = (ctx: OperationContext, result: unknown): void => {
  const id = (result as { jobStoreID?: unknown } | undefined)?.jobStoreID
  if (typeof id === 'string') ctx.jobStoreID = id
}
const fileArg = (ctx: OperationContext, args: unknown[]): undefined => {
  if (typeof args[0] === 'string') ctx.fileID = args[0]
  return undefined
}
const sharedArg = (ctx: OperationContext, args: unknown[]): undefined => {
  if (typeof args[0] === 'string') ctx.sharedFileName = args[0]
  return undefined
}
const ownerOption = (ctx: OperationContext, options: unknown): void => {
  const owner = (options as { jobStoreID?: unknown } | undefined)?.jobStoreID
  if (typeof owner === 'string') ctx.jobStoreID = owner
}
const fileResult = (ctx: OperationContext, result: unknown): void => {
  if (typeof result === 'string') ctx.fileID = result
}

/** A body callback that counts what it writes into `ctx.bytes` (the writable is already piped: a 'data' listener only watches). */
function countingBody(ctx: OperationContext, body: unknown): unknown {
  if (typeof body !== 'function') return body
  return (writable: Readable, ...extra: unknown[]) => {
    ctx.bytes ??= 0
    writable.on('data', (chunk: Buffer | string) => {
      ctx.bytes = (ctx.bytes ?? 0) + (typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length)
    })
    return (body as (...a: unknown[]) => unknown)(writable, ...extra)
  }
}

/** Transfer options whose `onProgress` also tells `ctx.bytes` (and still calls the caller's). */
function countingProgress(ctx: OperationContext, options: unknown): unknown {
  const given = (options ?? {}) as { onProgress?: (bytes: number, total: number | undefined) => void }
  return {
    ...given,
    onProgress: (bytes: number, total: number | undefined) => {
      ctx.bytes = bytes
      given.onProgress?.(bytes, total)
    },
  }
}

/**
 * Every traced operation: the public asynchronous methods of `AbstractJobStore`. Not traced: `getEnv()`,
 * `assignID()` and the `config` getter (no I/O), and the static `getSize(url)` (no store).
 */
export const OPERATIONS = {
  initialize: { kind: 'promise' },
  resume: { kind: 'promise' },
  writeConfig: { kind: 'promise' },
  destroy: { kind: 'promise' },
  close: { kind: 'promise' },
  setRootJob: { kind: 'promise', prepare: jobArg },
  loadRootJob: { kind: 'promise', done: descResult },
  createRootJob: { kind: 'promise', prepare: descArg },
  getRootJobReturnValue: { kind: 'promise' },
  batch: { kind: 'promise' },
  create: { kind: 'promise', prepare: descArg },
  exists: { kind: 'promise', prepare: jobArg },
  load: { kind: 'promise', prepare: jobArg },
  update: { kind: 'promise', prepare: descArg },
  delete: { kind: 'promise', prepare: jobArg },
  jobs: { kind: 'generator' },
  clean: { kind: 'promise', done: descResult },
  reachability: { kind: 'promise' },
  writeFile: {
    kind: 'promise',
    bytes: 'write',
    // The bytes: told by the core as it uploads (see `traceBytes`).
    prepare: (ctx, args) => void ownerOption(ctx, args[1]),
    done: fileResult,
  },
  writeFileStream: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      ownerOption(ctx, args[1])
      return [countingBody(ctx, args[0]), ...args.slice(1)]
    },
    done: fileResult,
  },
  getEmptyFileStoreID: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      ownerOption(ctx, args[0])
      ctx.bytes = 0
      return undefined
    },
    done: fileResult,
  },
  readFile: {
    kind: 'promise',
    bytes: 'read',
    prepare: fileArg,
    // What was put at the path (copied, or linked by the file backend).
    done: async (ctx, _result, args) => {
      if (typeof args[1] !== 'string') return
      try {
        ctx.bytes = (await stat(args[1])).size
      } catch {
        // moved away already: no figure
      }
    },
  },
  readFileStream: { kind: 'stream', bytes: 'read', prepare: fileArg },
  deleteFile: { kind: 'promise', prepare: fileArg },
  fileExists: { kind: 'promise', prepare: fileArg },
  getFileSize: { kind: 'promise', prepare: fileArg },
  getFileVersion: { kind: 'promise', prepare: fileArg },
  updateFile: { kind: 'promise', bytes: 'write', prepare: fileArg },
  updateFileStream: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      fileArg(ctx, args)
      return [args[0], countingBody(ctx, args[1]), ...args.slice(2)]
    },
  },
  getPublicUrl: { kind: 'promise', prepare: fileArg },
  getSharedPublicUrl: { kind: 'promise', prepare: sharedArg },
  writeSharedFileStream: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      sharedArg(ctx, args)
      return [args[0], countingBody(ctx, args[1]), ...args.slice(2)]
    },
  },
  readSharedFileStream: { kind: 'stream', bytes: 'read', prepare: sharedArg },
  sharedFileNames: { kind: 'generator' },
  writeStatsAndLogging: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      if (typeof args[0] === 'string') ctx.bytes = Buffer.byteLength(args[0])
      return undefined
    },
  },
  readStatsAndLogging: {
    kind: 'promise',
    bytes: 'read',
    prepare: (ctx, args) => {
      const callback = args[0]
      if (typeof callback !== 'function') return undefined
      ctx.bytes = 0
      const counting = (text: string, message: unknown): unknown => {
        ctx.bytes = (ctx.bytes ?? 0) + Buffer.byteLength(text)
        return (callback as (t: string, m: unknown) => unknown)(text, message)
      }
      return [counting, ...args.slice(1)]
    },
    done: (ctx, result) => {
      if (typeof result === 'number') ctx.items = result
    },
  },
  countStatsAndLogging: { kind: 'promise' },
  files: { kind: 'generator' },
  copyTo: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      const destination = args[0] as { locator?: unknown } | undefined
      if (typeof destination?.locator === 'string') ctx.destination = describeLocator(destination as object, destination.locator)
      return undefined
    },
    done: (ctx, result) => {
      const report = result as { bytes?: unknown; objects?: unknown } | undefined
      if (typeof report?.bytes === 'number') ctx.bytes = report.bytes
      if (typeof report?.objects === 'number') ctx.items = report.objects
    },
  },
  importFile: {
    kind: 'promise',
    bytes: 'write',
    prepare: (ctx, args) => {
      if (typeof args[0] === 'string') ctx.url = redactLocator(args[0])
      const options = args[1] as { sharedFileName?: unknown } | undefined
      if (typeof options?.sharedFileName === 'string') ctx.sharedFileName = options.sharedFileName
      ownerOption(ctx, options)
      return [args[0], countingProgress(ctx, args[1]), ...args.slice(2)]
    },
    done: fileResult,
  },
  exportFile: {
    kind: 'promise',
    bytes: 'read',
    prepare: (ctx, args) => {
      fileArg(ctx, args)
      if (typeof args[1] === 'string') ctx.url = redactLocator(args[1])
      return [args[0], args[1], countingProgress(ctx, args[2]), ...args.slice(3)]
    },
  },
} as const satisfies Record<string, OperationSpec>

/** The name of a traced operation: the method's name. */
export type OperationName = keyof typeof OPERATIONS

/** The context of one operation, the message of every event of the channel (the same object from start to end). */
export interface OperationContext {
  readonly operation: OperationName
  /** The backend's locator scheme (`file`, `s3`, `azure`, `gs`…), as `locatorScheme` tells. */
  readonly scheme: string
  /** The store's locator, redacted (user info and query strings masked). */
  readonly locator: string
  /** How the operation ends (see {@link OperationKind}). */
  readonly kind: OperationKind
  /** The operation of this process that called this one (`clean()` calling `load()`), if any. */
  readonly parent?: OperationContext
  /** The job involved: the argument's or the description's ID, the owner of a new file, the root job loaded. */
  jobStoreID?: string
  /** The file involved: the argument, or the ID of the new file. */
  fileID?: string
  /** The shared file involved. */
  sharedFileName?: string
  /** The URL imported from or exported to, redacted. */
  url?: string
  /** `copyTo()`'s destination. */
  destination?: { readonly scheme: string; readonly locator: string }
  /**
   * Bytes of file content moved, on the operations that move any (see docs/observability.md): taken from or given
   * to the caller (plain text of protected shared files); counted as they go, so a failed or stopped transfer
   * tells what moved before. Absent when nothing went through this process (a server-side import, a link).
   */
  bytes?: number
  /** Items produced: jobs or files yielded by a listing, messages handed out, objects of a copy. */
  items?: number
  /** A stream destroyed, or an iteration stopped, by its consumer before its end (not an error). */
  endedEarly?: boolean
  /** On failure: the error's stable `code` (`NO_SUCH_JOB`…; see docs/api.md), else its `code` or `name`. */
  errorCode?: string
  /** Set by the channel's conventions: the resolved value. */
  result?: unknown
  /** Set by the channel's conventions: the error thrown. */
  error?: unknown
}

/** The channel. Subscribe with `tracingChannel('jobstore:operation').subscribe({...})` or through this object. */
export const operationChannel = tracingChannel<unknown, OperationContext>(OPERATION_CHANNEL)

/** The operation running in the current async context, while somebody subscribes. */
const active = new AsyncLocalStorage<OperationContext>()
/** Which store each context is of: a super call of an overridden method is not published twice. */
const storeOf = new WeakMap<OperationContext, object>()
const locators = new WeakMap<object, { readonly scheme: string; readonly locator: string }>()
const instrumented = new WeakSet<object>()
const wrappers = new WeakSet<object>()
let contextsBuilt = 0

/** How many contexts were built since the process started (for the test that nothing is built without subscribers). */
export function operationContextsBuilt(): number {
  return contextsBuilt
}

function describeLocator(store: object, locator: string): { readonly scheme: string; readonly locator: string } {
  let described = locators.get(store)
  if (described === undefined) {
    described = { scheme: locatorScheme(locator), locator: redactLocator(locator) }
    locators.set(store, described)
  }
  return described
}

function newContext(store: { locator: string }, operation: OperationName, parent: OperationContext | undefined): OperationContext {
  contextsBuilt++
  const { scheme, locator } = describeLocator(store, store.locator)
  const ctx: OperationContext = { operation, scheme, locator, kind: OPERATIONS[operation].kind, ...(parent !== undefined ? { parent } : {}) }
  storeOf.set(ctx, store)
  return ctx
}

export function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code === 'string') return code
  if (err instanceof Error) return err.name
  return 'UNKNOWN'
}

function publishFailure(ctx: OperationContext, err: unknown): void {
  ctx.error = err
  ctx.errorCode = errorCodeOf(err)
  operationChannel.error.publish(ctx)
  operationChannel.asyncStart.publish(ctx)
  operationChannel.asyncEnd.publish(ctx)
}

function publishSuccess(ctx: OperationContext): void {
  operationChannel.asyncStart.publish(ctx)
  operationChannel.asyncEnd.publish(ctx)
}

/**
 * Adds `bytes` to the current operation's count, from inside the core where only it knows them (the size of a
 * local file it uploads). Costs a property read when nobody subscribes.
 */
export function traceBytes(bytes: number): void {
  if (!operationChannel.hasSubscribers) return
  const ctx = active.getStore()
  if (ctx !== undefined) ctx.bytes = (ctx.bytes ?? 0) + bytes
}

type Method = (this: { locator: string }, ...args: unknown[]) => unknown

/** The context of a new operation of `store`, or undefined when this call is not to be published. */
function begin(store: { locator: string }, operation: OperationName): OperationContext | undefined {
  if (!operationChannel.hasSubscribers) return undefined
  const parent = active.getStore()
  // A backend's override calling super.method(): the same operation, already published.
  if (parent !== undefined && parent.operation === operation && storeOf.get(parent) === store) return undefined
  return newContext(store, operation, parent)
}

function tracePromise(operation: OperationName, spec: OperationSpec, method: Method): Method {
  return function (this, ...args) {
    const ctx = begin(this, operation)
    if (ctx === undefined) return method.apply(this, args)
    const call = spec.prepare?.(ctx, args) ?? args
    return operationChannel.tracePromise(
      () =>
        active.run(ctx, () =>
          (method.apply(this, call) as Promise<unknown>).then(
            async (result) => {
              await spec.done?.(ctx, result, call)
              return result
            },
            (err: unknown) => {
              // Before the channel's error event, which sees the code.
              ctx.errorCode = errorCodeOf(err)
              throw err
            },
          ),
        ),
      ctx,
    )
  }
}

/**
 * A method resolving with a readable: its asyncStart and asyncEnd come when the stream ends, fails (error event
 * first) or is destroyed by its consumer (`endedEarly`), not when the promise resolves: the operation is the
 * whole read, and `bytes` is known only then. `ctx.result` is the stream from the resolution on.
 */
function traceStream(operation: OperationName, spec: OperationSpec, method: Method): Method {
  return function (this, ...args) {
    const ctx = begin(this, operation)
    if (ctx === undefined) return method.apply(this, args)
    const call = spec.prepare?.(ctx, args) ?? args
    return operationChannel.start.runStores(ctx, () => {
      try {
        return (active.run(ctx, () => method.apply(this, call)) as Promise<Readable>).then(
          (stream) => {
            ctx.result = stream
            watchStream(ctx, stream)
            return stream
          },
          (err: unknown) => {
            publishFailure(ctx, err)
            throw err
          },
        )
      } catch (err) {
        publishFailure(ctx, err)
        throw err
      } finally {
        operationChannel.end.publish(ctx)
      }
    })
  }
}

/** Counts the bytes `stream` produces (its own `push`, so the stream handed out stays the same object) until it finishes. */
function watchStream(ctx: OperationContext, stream: Readable): void {
  ctx.bytes = 0
  const push = stream.push
  stream.push = function (chunk: unknown, encoding?: BufferEncoding): boolean {
    if (typeof chunk === 'string') ctx.bytes = (ctx.bytes ?? 0) + Buffer.byteLength(chunk, encoding)
    else if (chunk instanceof Uint8Array) ctx.bytes = (ctx.bytes ?? 0) + chunk.length
    return push.call(this, chunk, encoding)
  }
  finished(stream, { writable: false }, (err) => {
    if (err !== undefined && err !== null && (err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      ctx.endedEarly = true
      publishSuccess(ctx)
    } else if (err !== undefined && err !== null) {
      publishFailure(ctx, err)
    } else {
      publishSuccess(ctx)
    }
  })
}

/**
 * An async generator: start at the first `next()` (when the listing begins), end right after; asyncStart and
 * asyncEnd when the iteration is done, fails (error event first) or is stopped by the consumer (`endedEarly`).
 * `items` counts what was yielded. The generator's own work runs in the operation's context, so the loads
 * `jobs()` makes are its children.
 */
function traceGenerator(operation: OperationName, _spec: OperationSpec, method: Method): Method {
  return function (this, ...args) {
    if (!operationChannel.hasSubscribers) return method.apply(this, args)
    const store = this
    return (async function* traced(): AsyncGenerator<unknown> {
      const ctx = begin(store, operation)
      if (ctx === undefined) return yield* method.apply(store, args) as AsyncGenerator<unknown>
      ctx.items = 0
      let inner: AsyncGenerator<unknown> | undefined
      operationChannel.start.runStores(ctx, () => {
        try {
          inner = active.run(ctx, () => method.apply(store, args) as AsyncGenerator<unknown>)
        } finally {
          operationChannel.end.publish(ctx)
        }
      })
      const source = inner as AsyncGenerator<unknown>
      let finished = false
      try {
        for (;;) {
          const step = await active.run(ctx, () => source.next())
          if (step.done === true) break
          ctx.items++
          yield step.value
        }
        finished = true
      } catch (err) {
        finished = true
        publishFailure(ctx, err)
        throw err
      } finally {
        if (!finished) {
          // Stopped by the consumer: close the listing too.
          ctx.endedEarly = true
          try {
            await active.run(ctx, () => source.return(undefined))
          } catch (err) {
            publishFailure(ctx, err)
            throw err
          }
          publishSuccess(ctx)
        } else if (ctx.errorCode === undefined) {
          publishSuccess(ctx)
        }
      }
    })()
  }
}

const TRACERS: Record<OperationKind, (operation: OperationName, spec: OperationSpec, method: Method) => Method> = {
  promise: tracePromise,
  stream: traceStream,
  generator: traceGenerator,
}

/**
 * Wraps the traced methods of a store class, once: on each prototype from `prototype` up its chain, the
 * operations that prototype defines itself. Called by `AbstractJobStore`'s constructor with `new.target.prototype`.
 */
export function instrumentJobStoreClass(prototype: object): void {
  if (instrumented.has(prototype)) return
  for (let proto: object | null = prototype; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
    if (instrumented.has(proto)) continue
    instrumented.add(proto)
    for (const [name, spec] of Object.entries(OPERATIONS) as [OperationName, OperationSpec][]) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, name)
      if (typeof descriptor?.value !== 'function' || wrappers.has(descriptor.value as object)) continue
      const wrapped = TRACERS[spec.kind](name, spec, descriptor.value as Method)
      Object.defineProperty(wrapped, 'name', { value: name })
      wrappers.add(wrapped)
      Object.defineProperty(proto, name, { ...descriptor, value: wrapped })
    }
  }
}
