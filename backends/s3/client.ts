/**
 * The S3 client of a store, from the environment (endpoint and region variables, the SDK's credential and region
 * chains) and the caller's overrides, and the bucket's creation.
 */
import { CreateBucketCommand, HeadBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import { sleep } from '../../src/concurrency.js'
import { JobStoreError } from '../../src/errors.js'
import { send } from './calls.js'
import { errorCode, headNotFound, wrapS3Error } from './errors.js'

export const DEFAULT_REGION = 'us-east-1'

/** The endpoint and region variables of the environment that are set (what a worker on another host needs). */
export function s3Environment(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const name of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_REGION']) {
    const value = process.env[name]
    if (value !== undefined && value !== '') env[name] = value
  }
  return env
}

/**
 * The client config: the locator's region or the SDK's chain (us-east-1 if none), the environment's endpoint with
 * path-style addressing, then the caller's `overrides`. `customEndpoint`: not AWS's own endpoints.
 */
export function clientConfigOf(
  region: string | undefined,
  env: Record<string, string>,
  overrides: S3ClientConfig = {},
): { config: S3ClientConfig; customEndpoint: boolean } {
  const endpoint = env['AWS_ENDPOINT_URL_S3'] ?? env['AWS_ENDPOINT_URL']
  const customEndpoint = endpoint !== undefined || overrides.endpoint !== undefined
  const config: S3ClientConfig = {
    region: region ?? defaultRegionProvider(),
    // With `Expect: 100-continue` the SDK opens a new connection per request; parts would never reuse one.
    expectContinueHeader: false,
    ...(endpoint !== undefined ? { endpoint } : {}),
    ...(customEndpoint ? { forcePathStyle: true } : { followRegionRedirects: true }),
    ...overrides,
  }
  return { config, customEndpoint }
}

/** The SDK's region chain (AWS_REGION, profiles…), with us-east-1 when it has none; resolved once per store. */
function defaultRegionProvider(): () => Promise<string> {
  let region: Promise<string> | undefined
  return () =>
    (region ??= (async () => {
      const probe = new S3Client({})
      try {
        return await probe.config.region()
      } catch {
        return DEFAULT_REGION
      } finally {
        probe.destroy()
      }
    })())
}

/** The client's region. */
export async function regionOf(client: S3Client): Promise<string> {
  const region = client.config.region
  return typeof region === 'function' ? await region() : String(region)
}

/** Creates the bucket when missing (in the client's region); another process creating it meanwhile is fine. */
export async function createBucket(client: S3Client, bucket: string, signal: AbortSignal | undefined): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await send(client, new HeadBucketCommand({ Bucket: bucket }), signal)
      return
    } catch (err) {
      // A 404 without a code goes on to CreateBucket, whose answer has a body and decides.
      if (headNotFound(err) === undefined) throw wrapS3Error(err, `HeadBucket s3://${bucket}`, signal)
    }
    const region = await regionOf(client)
    try {
      await send(
        client,
        new CreateBucketCommand({
          Bucket: bucket,
          ...(region !== DEFAULT_REGION ? { CreateBucketConfiguration: { LocationConstraint: region as never } } : {}),
        }),
        signal,
      )
      return
    } catch (err) {
      const code = errorCode(err)
      // Another process created it meanwhile.
      if (code === 'BucketAlreadyOwnedByYou') return
      if (code === 'BucketAlreadyExists') {
        throw new JobStoreError(`the bucket ${bucket} exists and belongs to another account`, { cause: err })
      }
      // A concurrent creation still in progress: look again shortly.
      if (code === 'OperationAborted' && attempt < 10) {
        await sleep(200 * (attempt + 1), signal)
        continue
      }
      throw wrapS3Error(err, `CreateBucket s3://${bucket}`, signal)
    }
  }
}
