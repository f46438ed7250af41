/**
 * Read-only SAS URLs of blobs: signed with the account key of a connection string, or with a user delegation key
 * when signed in with Entra ID (cached, as a key lives up to 7 days). A SAS connection string cannot sign.
 */
import {
  BlobSASPermissions,
  StorageSharedKeyCredential,
  type BlobClient,
  type BlobGenerateSasUrlOptions,
  type BlobServiceClient,
  type UserDelegationKey,
} from '@azure/storage-blob'
import { UnsupportedOperationError } from '../../src/errors.js'
import type { Clients } from './clients.js'
import { wrapAzureError } from './errors.js'

/** SAS validity starts this much in the past, for clocks that run behind the service's. */
const SAS_CLOCK_SKEW_MS = 5 * 60_000
/** User delegation keys (and so SAS signed with them) live at most 7 days. */
const MAX_DELEGATION_MS = 7 * 24 * 3600_000

/** Signs read SAS URLs for one store, keeping its user delegation key. */
export class ReadSasSigner {
  #delegationKey: { key: UserDelegationKey; expiresOn: number } | undefined

  /** A URL that reads `blob` for `expiresInSeconds`; `where` names it in messages. */
  async sign(clients: Clients, blob: BlobClient, expiresInSeconds: number, where: string): Promise<string> {
    const now = Date.now()
    const sas: BlobGenerateSasUrlOptions = {
      permissions: BlobSASPermissions.parse('r'),
      startsOn: new Date(now - SAS_CLOCK_SKEW_MS),
      expiresOn: new Date(now + expiresInSeconds * 1000),
    }
    try {
      if (clients.service.credential instanceof StorageSharedKeyCredential) return await blob.generateSasUrl(sas)
      if (clients.tokenAuth) {
        return await blob.generateUserDelegationSasUrl(sas, await this.#userDelegationKey(clients.service, now, expiresInSeconds))
      }
    } catch (err) {
      throw wrapAzureError(err, `signing a URL for ${where}`)
    }
    throw new UnsupportedOperationError(
      'cannot sign public URLs: AZURE_STORAGE_CONNECTION_STRING has no AccountKey (a SAS connection string); use one with an account key, or DefaultAzureCredential',
    )
  }

  async #userDelegationKey(service: BlobServiceClient, now: number, expiresInSeconds: number): Promise<UserDelegationKey> {
    const needed = now + expiresInSeconds * 1000
    if (needed > now + MAX_DELEGATION_MS - 60_000) {
      throw new UnsupportedOperationError(
        `public URLs signed with Entra ID credentials live at most 7 days; ${expiresInSeconds} s was asked (lower publicUrlExpirySeconds)`,
      )
    }
    const cached = this.#delegationKey
    if (cached !== undefined && cached.expiresOn >= needed) return cached.key
    const expiresOn = now + MAX_DELEGATION_MS - 60_000
    const key = await service.getUserDelegationKey(new Date(now - SAS_CLOCK_SKEW_MS), new Date(expiresOn))
    this.#delegationKey = { key, expiresOn }
    return key
  }
}
