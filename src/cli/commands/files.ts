/** `files`, `import`, `export`, `cat`: files in and out of the store. */
import { randomUUID } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { copyFile, link, lstat, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { pipeline as pipelineAsync } from 'node:stream/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { AbstractJobStore, NoSuchFileError, NoSuchJobError, checkSharedFileName, mapConcurrent, parseFileId } from '../../index.js'
import type { CommandContext } from '../context.js'
import { CliError, usageError } from '../exit-codes.js'
import { checkFileIdOrPrefix, checkJobIdOrPrefix, resolveFileId, resolveJobId } from '../resolve-id.js'
import { formatBytes, plural, table } from '../output.js'
import { BIG_TRANSFER_BYTES, createProgress, wantsProgress, type ProgressReporter } from '../progress.js'

/** `onProgress` for the store's transfer methods, feeding a progress bar. */
function reportTo(progress: ProgressReporter, expected: number | undefined): (bytes: number, total: number | undefined) => void {
  return (bytes, total) => progress.update({ done: bytes, total: Math.max(total ?? expected ?? 0, bytes) })
}

/** A progress bar for a transfer of `size` bytes, when it is big and stderr is a terminal. */
function transferProgress(ctx: CommandContext, label: string, size: number | undefined): ProgressReporter {
  const big = size === undefined || size >= BIG_TRANSFER_BYTES
  return createProgress({ stream: ctx.io.stderr, enabled: ctx.progress && big, label, unit: 'bytes' })
}

/** Network timeouts of an import or export (milliseconds, as the library takes them). */
export interface TransferTimeouts {
  readonly connectTimeoutMs?: number
  readonly idleTimeoutMs?: number
  readonly maxRetryTimeMs?: number
}

export interface ImportOptions extends TransferTimeouts {
  readonly shared?: string
  readonly job?: string
  readonly hardlink?: boolean
  readonly symlink?: boolean
}

export async function importCommand(ctx: CommandContext, locator: string, source: string, options: ImportOptions): Promise<void> {
  if (options.shared !== undefined) checkSharedFileName(options.shared)
  if (options.job !== undefined) checkJobIdOrPrefix(options.job)
  if (options.shared !== undefined && options.job !== undefined) throw usageError('--shared and --job do not go together')
  const url = ctx.toUrl(source)
  const store = await ctx.resume(locator)
  // The owner must exist: a file of a job that is not there would be an orphan from the start.
  const job = options.job === undefined ? undefined : await resolveJobId(store, options.job, ctx.signalOptions)
  if (job !== undefined && !(await store.exists(job, ctx.signalOptions))) throw new NoSuchJobError(job)
  const timeouts = timeoutsOf(options)
  const size = wantsProgress(ctx.io.stderr, ctx.progress)
    ? await AbstractJobStore.getSize(url, { ...ctx.signalOptions, ...timeouts }).catch(() => undefined)
    : undefined
  const progress = transferProgress(ctx, 'import', size)
  let fileID: string | undefined
  try {
    fileID = await store.importFile(url, {
      ...ctx.signalOptions,
      ...timeouts,
      onProgress: reportTo(progress, size),
      ...(options.shared !== undefined ? { sharedFileName: options.shared } : {}),
      ...(job !== undefined ? { jobStoreID: job } : {}),
      ...(options.hardlink ? { hardlink: true } : {}),
      ...(options.symlink ? { symlink: true } : {}),
    })
  } finally {
    progress.stop()
  }
  if (options.shared !== undefined) {
    ctx.out.info(`imported ${ctx.show(url)} as shared file ${options.shared}`)
    ctx.out.result({ url: ctx.show(url), sharedFileName: options.shared }, () => options.shared as string)
    return
  }
  const id = fileID as string
  const stored = await store.getFileSize(id, ctx.signalOptions)
  ctx.out.info(`imported ${ctx.show(url)} (${formatBytes(stored)})`)
  ctx.out.result({ url: ctx.show(url), fileID: id, size: stored }, () => id)
}

export interface ExportOptions {
  /** Refuse to replace a local file that exists (`DESTINATION_EXISTS`, exit 4). */
  readonly noClobber?: boolean
}

export async function exportCommand(
  ctx: CommandContext,
  locator: string,
  idOrPrefix: string,
  target: string,
  timeouts: TransferTimeouts = {},
  options: ExportOptions = {},
): Promise<void> {
  checkFileIdOrPrefix(idOrPrefix)
  const url = ctx.toUrl(target)
  const local = url.startsWith('file:') ? fileURLToPath(url) : undefined
  if (options.noClobber && local === undefined) {
    throw usageError('--no-clobber is for a local destination (a path or a file: URL)')
  }
  const store = await ctx.resume(locator)
  const fileID = await resolveFileId(store, idOrPrefix, ctx.signalOptions)
  const size = await store.getFileSize(fileID, ctx.signalOptions)
  if (options.noClobber) await refuseExisting(ctx, local as string, url)
  const progress = transferProgress(ctx, 'export', size)
  const exportTo = async (to: string): Promise<void> =>
    store.exportFile(fileID, to, { ...ctx.signalOptions, ...timeoutsOf(timeouts), onProgress: reportTo(progress, size) })
  try {
    if (options.noClobber) await exportNoClobber(ctx, local as string, url, exportTo)
    else await exportTo(url)
  } finally {
    progress.stop()
  }
  ctx.out.info(`exported ${fileID} to ${ctx.show(url)} (${formatBytes(size)})`)
  ctx.out.result({ fileID, url: ctx.show(url), size }, () => [])
}

function destinationExists(ctx: CommandContext, url: string): CliError {
  return new CliError(`${ctx.show(url)} already exists: --no-clobber leaves it as it is (nothing was written)`, 'DESTINATION_EXISTS')
}

/** Throws DESTINATION_EXISTS when anything (a dangling symlink too) is at `path`. */
async function refuseExisting(ctx: CommandContext, path: string, url: string): Promise<void> {
  const there = await lstat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false
      throw err
    },
  )
  if (there) throw destinationExists(ctx, url)
}

/**
 * Exports to a temporary file beside `path`, then hard-links it to `path`: the link fails if a file appeared there
 * meanwhile, so nothing that exists is ever replaced, and `path` appears whole or not at all. Where the file system
 * has no hard links, an exclusive copy (O_EXCL) still never replaces a file, but may leave a partial one if the
 * process dies while copying.
 */
async function exportNoClobber(ctx: CommandContext, path: string, url: string, exportTo: (url: string) => Promise<void>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.jobstore-${randomUUID()}.tmp`)
  try {
    await exportTo(pathToFileURL(temp).href)
    try {
      await link(temp, path)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EEXIST') throw destinationExists(ctx, url)
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') throw err
      await copyFile(temp, path, fsConstants.COPYFILE_EXCL).catch((copyErr: NodeJS.ErrnoException) => {
        throw copyErr.code === 'EEXIST' ? destinationExists(ctx, url) : copyErr
      })
    }
  } finally {
    await rm(temp, { force: true })
  }
}

function timeoutsOf(options: TransferTimeouts): TransferTimeouts {
  return {
    ...(options.connectTimeoutMs !== undefined ? { connectTimeoutMs: options.connectTimeoutMs } : {}),
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.maxRetryTimeMs !== undefined ? { maxRetryTimeMs: options.maxRetryTimeMs } : {}),
  }
}

export async function catCommand(ctx: CommandContext, locator: string, fileID: string | undefined, options: { shared?: string }): Promise<void> {
  if ((fileID === undefined) === (options.shared === undefined)) {
    throw usageError('cat takes either a file ID or --shared NAME')
  }
  if (fileID !== undefined) checkFileIdOrPrefix(fileID)
  if (options.shared !== undefined) checkSharedFileName(options.shared)
  const store = await ctx.resume(locator)
  const stream =
    options.shared !== undefined
      ? await store.readSharedFileStream(options.shared, ctx.signalOptions)
      : await store.readFileStream(await resolveFileId(store, fileID as string, ctx.signalOptions), ctx.signalOptions)
  // Raw bytes, not redacted: this is the file's content. The size and checksum are verified as it streams; a
  // mismatch fails the command (exit 6) after the bytes read so far.
  await pipelineAsync(stream, ctx.io.stdout, { end: false, signal: ctx.signal })
}

/** One file in the listing (the elements of `files --json`'s `files`). */
export interface FileSummary {
  readonly fileID: string
  readonly size: number
  /** The job the file belongs to, from its ID; null for a file of no job. */
  readonly owner: string | null
  /** Deleted with its owner job (`cleanup` when it was written). */
  readonly cleanup: boolean
  /** The name kept in the file ID, if any (a hint, not a path). */
  readonly basename: string | null
}

/**
 * Lists the files (with size, owner job and cleanup flag, all but the size read from the file ID) and the shared
 * files' names: how a user finds the IDs `cat` and `export` take. A file deleted between the listing and its size
 * is left out, as `files()` itself is best effort.
 */
export async function filesCommand(ctx: CommandContext, locator: string): Promise<void> {
  const store = await ctx.resume(locator)
  const signal = ctx.signalOptions
  const listFiles = (async () => {
    const files: FileSummary[] = []
    const summaries = mapConcurrent(store.files(signal), ctx.concurrency, async ({ fileID, size }) => {
      let bytes = size
      if (bytes === undefined) {
        try {
          bytes = await store.getFileSize(fileID, signal)
        } catch (err) {
          if (err instanceof NoSuchFileError) return undefined // deleted meanwhile
          throw err
        }
      }
      const parsed = parseFileId(fileID)
      return { fileID, size: bytes, owner: parsed.owner ?? null, cleanup: parsed.cleanup, basename: parsed.basename ?? null }
    })
    for await (const summary of summaries) if (summary !== undefined) files.push(summary)
    return files.sort((a, b) => (a.fileID < b.fileID ? -1 : a.fileID > b.fileID ? 1 : 0))
  })()
  const listShared = (async () => {
    const names: string[] = []
    for await (const name of store.sharedFileNames(signal)) names.push(name)
    return names.sort().map((name) => ({ name }))
  })()
  const settled = await Promise.allSettled([listFiles, listShared])
  for (const outcome of settled) if (outcome.status === 'rejected') throw outcome.reason
  const files = await listFiles
  const sharedFiles = await listShared
  const bytes = files.reduce((sum, f) => sum + f.size, 0)
  ctx.out.result({ files, sharedFiles }, () => [
    ...(files.length === 0
      ? []
      : table(
          ['FILE ID', 'SIZE', 'OWNER JOB', 'CLEANUP'],
          files.map((f) => [f.fileID, formatBytes(f.size), f.owner ?? '-', f.cleanup ? 'yes' : 'no']),
        )),
    ...(sharedFiles.length === 0 ? [] : [...(files.length === 0 ? [] : ['']), 'SHARED FILE', ...sharedFiles.map((s) => s.name)]),
  ])
  ctx.out.info(`${plural(files.length, 'file')} (${formatBytes(bytes)}), ${plural(sharedFiles.length, 'shared file')}`)
}
