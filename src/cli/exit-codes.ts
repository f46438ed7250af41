/**
 * Exit codes of the `jobstore` CLI, mapped from the stable error codes of `JobStoreError` (see docs/cli.md for
 * the table). Scripts can switch on these instead of parsing messages.
 */
import type { JobStoreErrorCode } from '../errors.js'

/** Every exit code the CLI uses. */
export const EXIT = {
  /** Success. */
  OK: 0,
  /** Any other failure: an I/O error, a backend failure, a bug. */
  GENERIC: 1,
  /** Bad usage: unknown command or option, missing argument, invalid ID, locator or URL. */
  USAGE: 2,
  /** The job store, job or file does not exist (NO_SUCH_JOB_STORE, NO_SUCH_JOB, NO_SUCH_FILE). */
  NOT_FOUND: 3,
  /**
   * A job store, or data that is not one, is there (JOB_STORE_EXISTS, NOT_A_JOB_STORE): `init` on a store or on
   * other data, `copy` onto another workflow's store, `destroy` of a folder that is not a job store.
   */
  EXISTS: 4,
  /** A concurrent writer won a conditional update (CONCURRENT_MODIFICATION). */
  CONCURRENT_MODIFICATION: 5,
  /**
   * Integrity: bytes read back do not match (INTEGRITY), a record cannot be decoded (CORRUPT_RECORD), a link the
   * store did not make sits in its folder (UNSAFE_STORE_PATH), or `verify` found problems.
   */
  INTEGRITY: 6,
  /** A protected shared file cannot be encrypted or decrypted: missing or wrong key (ENCRYPTION). */
  ENCRYPTION: 7,
  /**
   * Not supported here: the backend's SDK is not installed, the backend cannot do it (UNSUPPORTED), the storage
   * service does not enforce conditional writes (CONDITIONAL_WRITES_UNSUPPORTED).
   */
  UNSUPPORTED: 8,
  /** Interrupted (SIGINT, SIGTERM) or aborted (ABORTED): 128 + SIGINT, as shells do. */
  INTERRUPTED: 130,
} as const

export type ExitCode = (typeof EXIT)[keyof typeof EXIT]

/** The exit code for each error code; codes not listed map to {@link EXIT.GENERIC}. */
export const EXIT_CODE_BY_ERROR_CODE: Readonly<Record<JobStoreErrorCode, ExitCode>> = {
  JOBSTORE_ERROR: EXIT.GENERIC,
  INVALID_ARGUMENT: EXIT.USAGE,
  INVALID_IMPORT_EXPORT_URL: EXIT.USAGE,
  NO_SUCH_JOB_STORE: EXIT.NOT_FOUND,
  NO_SUCH_JOB: EXIT.NOT_FOUND,
  NO_SUCH_FILE: EXIT.NOT_FOUND,
  JOB_STORE_EXISTS: EXIT.EXISTS,
  CONCURRENT_MODIFICATION: EXIT.CONCURRENT_MODIFICATION,
  INTEGRITY: EXIT.INTEGRITY,
  CORRUPT_RECORD: EXIT.INTEGRITY,
  ENCRYPTION: EXIT.ENCRYPTION,
  UNSUPPORTED: EXIT.UNSUPPORTED,
  ABORTED: EXIT.INTERRUPTED,
  URL_TRANSFER: EXIT.GENERIC,
  NOT_A_JOB_STORE: EXIT.EXISTS,
  UNSAFE_STORE_PATH: EXIT.INTEGRITY,
  CONDITIONAL_WRITES_UNSUPPORTED: EXIT.UNSUPPORTED,
}

/**
 * The codes of the CLI's own errors (`CliError`), with their exit codes: every code the CLI prints is here or in
 * {@link EXIT_CODE_BY_ERROR_CODE} (docs/cli.md's table lists both; a test holds them equal). `ERROR` is what an
 * error without a code of its own (an unexpected failure) is reported as.
 */
export const CLI_ERROR_CODES = {
  /** Bad usage: unknown command or option, missing argument, bad option value, conflicting options. */
  USAGE: EXIT.USAGE,
  /** A start of an ID that more than one job or file has (the message lists them). */
  AMBIGUOUS_ID: EXIT.USAGE,
  /** `destroy` was answered with something else than `yes`. */
  NOT_CONFIRMED: EXIT.GENERIC,
  /** `verify` found problems. */
  VERIFY_FAILED: EXIT.INTEGRITY,
  /** `export --no-clobber` onto a file that exists. */
  DESTINATION_EXISTS: EXIT.EXISTS,
  /** An unexpected failure without a code. */
  ERROR: EXIT.GENERIC,
} as const satisfies Record<string, ExitCode>

export type CliErrorCode = keyof typeof CLI_ERROR_CODES

/** An error of the CLI itself (bad usage, refused confirmation, verify failed) with its exit code. */
export class CliError extends Error {
  readonly exitCode: ExitCode
  readonly code: CliErrorCode
  constructor(message: string, code: CliErrorCode, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CliError'
    this.exitCode = CLI_ERROR_CODES[code]
    this.code = code
  }
}

/** A usage error (exit 2). */
export function usageError(message: string): CliError {
  return new CliError(message, 'USAGE')
}

/** The `code` of an error: a JobStoreError code, a CLI code, or undefined. */
export function errorCodeOf(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined
  return typeof code === 'string' ? code : undefined
}

/** Whether `code` is one of the error codes docs/cli.md documents (a JobStoreError's or the CLI's own). */
export function isDocumentedCode(code: string): boolean {
  return Object.hasOwn(EXIT_CODE_BY_ERROR_CODE, code) || Object.hasOwn(CLI_ERROR_CODES, code)
}

/** The exit code for an error thrown by a command. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof CliError) return err.exitCode
  const code = errorCodeOf(err)
  if (code !== undefined && Object.hasOwn(EXIT_CODE_BY_ERROR_CODE, code)) {
    return EXIT_CODE_BY_ERROR_CODE[code as JobStoreErrorCode]
  }
  // A stdout closed early (`jobstore cat … | head`) is not a failure of ours.
  if (code === 'EPIPE') return EXIT.OK
  if (err instanceof Error && err.name === 'AbortError') return EXIT.INTERRUPTED
  return EXIT.GENERIC
}
