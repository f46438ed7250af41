/**
 * Locators and backends: `openJobStore(locator)` picks the backend by the locator's scheme, loading the backend
 * module only then (cloud SDKs are optional peer dependencies: a user installs only what they use).
 */
import type { AbstractJobStore, JobStoreOptions } from './abstract-job-store.js'
import { InvalidArgumentError, JobStoreError } from './errors.js'
import { registerLazyUrlClaim, registerLazyUrlHandler, registerUrlHandler, type UrlHandler } from './url-handlers.js'

/** What a backend module exports. */
export interface JobStoreBackend {
  /** Locator schemes it opens, without the colon (`s3`, `aws`). */
  readonly schemes: readonly string[]
  /** Creates an unopened store for `locator` (no I/O; `initialize()` or `resume()` next). */
  create(locator: string, options: JobStoreOptions): AbstractJobStore
  /**
   * The import/export handler for the backend's URL schemes (and the URLs of other schemes it claims by host), if
   * it has one. Registered with the backend.
   */
  readonly urlHandler?: UrlHandler
}

/** A module exporting `backend`. */
export interface BackendModule {
  readonly backend: JobStoreBackend
}

const backends = new Map<string, JobStoreBackend>()
const lazyBackends = new Map<string, { load: () => Promise<BackendModule>; packages: string }>()

/** Registers a backend for its schemes (an outside backend calls this once before `openJobStore`). */
export function registerBackend(backend: JobStoreBackend): void {
  for (const scheme of backend.schemes) backends.set(scheme.toLowerCase(), backend)
  if (backend.urlHandler !== undefined) registerUrlHandler(backend.urlHandler)
}

/**
 * Registers a backend module to load the first time one of `schemes` is used by a locator, or one of `urlSchemes`
 * by an import or export URL, or a URL `claimsUrl` matches (a cheap test, no I/O: `https://<account>.blob.core.
 * windows.net/…` for Azure; the loaded handler's own `claims` then decides). `packages` names what to install if
 * loading fails.
 */
export function registerLazyBackend(
  schemes: readonly string[],
  load: () => Promise<BackendModule>,
  packages: string,
  urlSchemes: readonly string[] = [],
  claimsUrl?: (url: URL) => boolean,
): void {
  for (const scheme of schemes) lazyBackends.set(scheme, { load, packages })
  const loadForUrls = async (): Promise<void> => registerBackend((await load()).backend)
  for (const scheme of urlSchemes) registerLazyUrlHandler(scheme, loadForUrls)
  if (claimsUrl !== undefined) registerLazyUrlClaim(claimsUrl, loadForUrls)
}

/** The scheme of a locator: `s3` for `s3://b`, `aws` for `aws:us-east-1:b`, `file` for a bare path. */
export function locatorScheme(locator: string): string {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]+):/.exec(locator)
  return match?.[1]?.toLowerCase() ?? 'file'
}

/**
 * Creates the job store a locator names, loading its backend. No store I/O yet: call `initialize()` for a new
 * store or `resume()` for an existing one.
 *
 * Locators: `file:/abs/path`, `file:./rel`, or a bare path; `s3://bucket[/prefix]` or `aws:region:bucket`;
 * `azure://account/container[/prefix]`; `gs://bucket[/prefix]` or `google:project:bucket`; `memory:<name>` (this
 * process's memory, for tests).
 */
export async function openJobStore(locator: string, options: JobStoreOptions = {}): Promise<AbstractJobStore> {
  if (typeof locator !== 'string' || locator.trim() === '') throw new InvalidArgumentError('empty job store locator')
  const scheme = locatorScheme(locator)
  let backend = backends.get(scheme)
  if (backend === undefined) {
    const lazy = lazyBackends.get(scheme)
    if (lazy === undefined) {
      throw new InvalidArgumentError(`no job store backend for locator scheme ${scheme}: (in ${locator})`)
    }
    try {
      backend = (await lazy.load()).backend
    } catch (err) {
      throw new JobStoreError(
        `cannot load the ${scheme}: backend; install its SDK (npm install ${lazy.packages})`,
        { cause: err, code: 'UNSUPPORTED' },
      )
    }
    registerBackend(backend)
  }
  return backend.create(locator, options)
}
