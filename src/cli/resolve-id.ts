/**
 * Job and file IDs as users type them: the whole ID, or a start of it that no other ID in the store has (as git
 * takes a commit's hash). A whole ID is used as it is, without a listing; a shorter one is looked up in the
 * store's listing: one match is the ID, none is not found (`NO_SUCH_JOB`, `NO_SUCH_FILE`, exit 3), several a
 * usage error (`AMBIGUOUS_ID`, exit 2) naming them. Text that cannot start an ID is refused before any I/O
 * (`INVALID_ARGUMENT`, exit 2), in words a user knows.
 */
import {
  InvalidArgumentError,
  NoSuchFileError,
  NoSuchJobError,
  checkJobId,
  isFileId,
  type AbstractJobStore,
  type CorruptRecordError,
} from '../index.js'
import { CliError } from './exit-codes.js'
import { corruptJobId } from './commands/store.js'

/** How many candidates an ambiguous prefix's error names. */
export const MAX_CANDIDATES_SHOWN = 10

const ID_CHARS = '0-9a-hjkmnp-tv-z'
const JOB_ID_PREFIX = new RegExp(`^[${ID_CHARS}]{1,26}$`)
/** A start of a file ID: `<owner job ID or _>/<c or k>/<26 random characters>[-<basename>]`. */
const FILE_ID_PREFIX = new RegExp(
  `^(?:[${ID_CHARS}]{1,26}|_|(?:[${ID_CHARS}]{26}|_)/(?:[ck](?:/(?:[${ID_CHARS}]{0,26}|[${ID_CHARS}]{26}-[A-Za-z0-9_.%-]{0,200}))?)?)$`,
)

/** An error saying that a start of an ID names several; `candidates` (all of them) also go into `--json` errors. */
export class AmbiguousIdError extends CliError {
  readonly candidates: readonly string[]
  constructor(what: 'job' | 'file', prefix: string, candidates: readonly string[]) {
    const sorted = [...candidates].sort()
    const shown = sorted.slice(0, MAX_CANDIDATES_SHOWN).join(', ')
    const more = sorted.length > MAX_CANDIDATES_SHOWN ? ` and ${sorted.length - MAX_CANDIDATES_SHOWN} more` : ''
    super(`${what} ID ${prefix} is ambiguous: ${sorted.length} ${what}s have IDs that start with it: ${shown}${more} (give more characters)`, 'AMBIGUOUS_ID')
    this.candidates = sorted
  }
}

/** Throws {@link InvalidArgumentError} unless `text` is a job ID or a start of one (no I/O). */
export function checkJobIdOrPrefix(text: string): void {
  // The library's own error (it says what a job ID is), as for any other invalid job ID.
  if (!JOB_ID_PREFIX.test(text)) checkJobId(text)
}

/** Throws {@link InvalidArgumentError} unless `text` is a file ID or a start of one (no I/O). */
export function checkFileIdOrPrefix(text: string): void {
  if (!isFileId(text) && !FILE_ID_PREFIX.test(text)) {
    throw new InvalidArgumentError(
      `invalid file ID ${JSON.stringify(text)}: a file ID is what import printed (or a start of it), such as _/k/3f6v2n0a8x1c5b7d9e2g4h6j8k-input.txt`,
    )
  }
}

/** The one job ID `text` (a whole ID or a unique start of one) names; a whole ID need not exist. */
export async function resolveJobId(store: AbstractJobStore, text: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  checkJobIdOrPrefix(text)
  if (isWholeJobId(text)) return text
  const matches: string[] = []
  // Records that cannot be decoded still have an ID: they are candidates too (show then says what is wrong).
  const onCorruptRecord = (err: CorruptRecordError): void => {
    const id = corruptJobId(err)
    if (id !== undefined && id.startsWith(text)) matches.push(id)
  }
  for await (const desc of store.jobs({ ...options, onCorruptRecord })) {
    if ((desc.jobStoreID as string).startsWith(text)) matches.push(desc.jobStoreID as string)
  }
  return single('job', text, matches)
}

/** The one file ID `text` (a whole ID or a unique start of one) names; a whole ID need not exist. */
export async function resolveFileId(store: AbstractJobStore, text: string, options: { signal?: AbortSignal } = {}): Promise<string> {
  checkFileIdOrPrefix(text)
  if (isFileId(text)) return text
  const matches: string[] = []
  for await (const { fileID } of store.files(options)) if (fileID.startsWith(text)) matches.push(fileID)
  return single('file', text, matches)
}

function isWholeJobId(text: string): boolean {
  try {
    checkJobId(text)
    return true
  } catch {
    return false
  }
}

function single(what: 'job' | 'file', prefix: string, matches: readonly string[]): string {
  const unique = [...new Set(matches)]
  if (unique.length === 1) return unique[0] as string
  if (unique.length > 1) throw new AmbiguousIdError(what, prefix, unique)
  throw what === 'job'
    ? new NoSuchJobError(prefix, { message: `no job ID starts with ${prefix} in the job store` })
    : new NoSuchFileError(prefix, { message: `no file ID starts with ${prefix} in the job store` })
}
