/**
 * Presigned GET URLs without @aws-sdk/s3-request-presigner: the client's own middleware stack builds the request
 * and its SigV4 signer signs the query string, as the presigner does (one dependency less, and the same signing
 * the client's requests get: region, endpoint, path style).
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { JobStoreError } from '../../src/errors.js'

/** The parts of the SDK's HttpRequest that presigning touches. */
interface SignableRequest {
  protocol: string
  hostname: string
  port?: number
  path: string
  query: Record<string, string | string[] | null>
  headers: Record<string, string>
}

type SignerConstructor = new (init: {
  credentials: unknown
  region: unknown
  service: string
  sha256: unknown
  uriEscapePath: boolean
  applyChecksum: boolean
}) => { presign(request: SignableRequest, options: { expiresIn: number; unsignableHeaders: Set<string> }): Promise<unknown> }

/**
 * A presigned GET URL, made with what @aws-sdk/client-s3 already has (its middleware stack builds the request,
 * its SigV4 signer signs the query string), as @aws-sdk/s3-request-presigner does.
 */
export async function presignGet(client: S3Client, bucket: string, key: string, expiresIn: number): Promise<string> {
  const command = new GetObjectCommand({ Bucket: bucket, Key: key })
  const stack = client.middlewareStack.clone()
  // The runtime config has the SDK's signer class (SignatureV4MultiRegion); its public type does not say so.
  const config = client.config as typeof client.config & { signerConstructor: SignerConstructor }
  let url: string | undefined
  const intercept = () => async (args: { request: unknown }) => {
    const request = args.request as SignableRequest
    for (const name of Object.keys(request.headers)) {
      const lower = name.toLowerCase()
      if (lower.startsWith('amz-sdk-') || lower === 'x-amz-user-agent' || lower === 'x-amz-checksum-mode') {
        delete request.headers[name]
      }
    }
    request.headers['X-Amz-Content-Sha256'] = 'UNSIGNED-PAYLOAD'
    request.headers['host'] ??= `${request.hostname}${request.port !== undefined ? `:${request.port}` : ''}`
    const signer = new config.signerConstructor({
      credentials: config.credentials,
      region: config.region,
      service: 's3',
      sha256: config.sha256,
      uriEscapePath: false,
      applyChecksum: false,
    })
    const signed = (await signer.presign(request, {
      expiresIn,
      unsignableHeaders: new Set(['content-type']),
    })) as unknown as SignableRequest
    url = formatUrl(signed)
    return { response: {}, output: { $metadata: {} } }
  }
  stack.addRelativeTo(intercept as never, {
    name: 'jobstorePresignGet',
    relation: 'before',
    toMiddleware: 'httpSigningMiddleware',
    override: true,
  })
  await command.resolveMiddleware(stack as never, config, {})({ input: command.input } as never)
  if (url === undefined) throw new JobStoreError('presigning produced no URL')
  return url
}

function formatUrl(request: SignableRequest): string {
  const escape = (s: string): string =>
    encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  const query: string[] = []
  for (const [name, value] of Object.entries(request.query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      query.push(v === null ? escape(name) : `${escape(name)}=${escape(v)}`)
    }
  }
  const port = request.port !== undefined ? `:${request.port}` : ''
  return `${request.protocol}//${request.hostname}${port}${request.path}${query.length > 0 ? `?${query.join('&')}` : ''}`
}
