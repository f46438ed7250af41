/**
 * What the core's modules share about one store: its {@link Storage} (the only way they reach the backend) and the
 * little state that outlives a call (the loaded config, the encryption key). `AbstractJobStore` makes one per store.
 */
import { JobStoreError } from '../errors.js'
import { DIGESTS_CONFIG_FIELD, DIGESTS_V1 } from '../record-check.js'
import type { IoOptions, Storage } from '../storage.js'
import type { JobStoreConfig } from './lifecycle.js'

/** Options every I/O method accepts. */
export interface SignalOptions {
  readonly signal?: AbortSignal
}

/** One store, as the core's modules see it. */
export class StoreContext {
  /** The config after `initialize()`/`resume()`; undefined while the store is not open (or after `destroy()`). */
  loaded: JobStoreConfig | undefined
  /** The key path of the stored config as last read or written: `writeConfig` checks a path that differs. */
  storedKeyPath: string | undefined
  /** The encryption key, loaded on first use (a failure is not kept: the key file may appear later). */
  encryptionKey: Promise<Buffer> | undefined

  constructor(readonly storage: Storage) {}

  /** The config, after `initialize()` or `resume()`. */
  get config(): JobStoreConfig {
    if (this.loaded === undefined) {
      throw new JobStoreError(`the job store at ${this.storage.locator} is not open: call initialize() or resume() first`)
    }
    return this.loaded
  }

  /** Whether this store writes checks into every record and digests of every file, and so requires them on reads. */
  get strict(): boolean {
    return this.loaded?.[DIGESTS_CONFIG_FIELD] === DIGESTS_V1
  }
}

/** The I/O options of a primitive call: the signal only. */
export function io(signal: AbortSignal | undefined): IoOptions {
  return signal ? { signal } : {}
}

/** Options of a `getObject` whose bytes are checked against the core's digest. */
export function ioWithDigest(signal: AbortSignal | undefined): IoOptions {
  return signal ? { signal, lookUpDigest: true } : { lookUpDigest: true }
}
