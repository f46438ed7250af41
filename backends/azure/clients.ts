/**
 * The SDK clients of an Azure store, from the environment's credentials: `AZURE_STORAGE_CONNECTION_STRING` when
 * set (Azurite, an account key or a SAS), whose account must be the locator's; otherwise `DefaultAzureCredential`
 * (loaded only then). Either way with the retries the SDK's policy leaves out (./transient-retry.ts).
 */
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob'
import { InvalidArgumentError, JobStoreError } from '../../src/errors.js'
import { retryTransientAnswers } from './transient-retry.js'

/** A store's clients. */
export interface Clients {
  readonly service: BlobServiceClient
  readonly container: ContainerClient
  /** True when signed in with a token credential (SAS then need a user delegation key). */
  readonly tokenAuth: boolean
}

/** Clients from a connection string, checked to be for `account` (the locator's). */
export function clientsFromConnectionString(connectionString: string, account: string, container: string, locator: string): Clients {
  let service: BlobServiceClient
  try {
    service = BlobServiceClient.fromConnectionString(connectionString)
  } catch {
    // The SDK's message may quote the string: it stays out of ours.
    throw new InvalidArgumentError('AZURE_STORAGE_CONNECTION_STRING is not a valid Azure Storage connection string')
  }
  retryTransientAnswers(service)
  if (service.accountName !== account) {
    throw new InvalidArgumentError(
      `AZURE_STORAGE_CONNECTION_STRING is for storage account ${JSON.stringify(service.accountName)}, but the locator ${locator} names account ${JSON.stringify(account)}`,
    )
  }
  return { service, container: service.getContainerClient(container), tokenAuth: false }
}

/** Clients signed in with `DefaultAzureCredential` against `https://<account>.blob.core.windows.net`. */
export async function tokenClients(account: string, container: string): Promise<Clients> {
  let identity: typeof import('@azure/identity')
  try {
    identity = await import('@azure/identity')
  } catch (err) {
    throw new JobStoreError(
      'AZURE_STORAGE_CONNECTION_STRING is not set and @azure/identity cannot be loaded: install it (npm install @azure/identity) to sign in with DefaultAzureCredential',
      { cause: err, code: 'UNSUPPORTED' },
    )
  }
  const service = new BlobServiceClient(`https://${account}.blob.core.windows.net`, new identity.DefaultAzureCredential())
  retryTransientAnswers(service)
  return { service, container: service.getContainerClient(container), tokenAuth: true }
}
