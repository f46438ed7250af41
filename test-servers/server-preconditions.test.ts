// Proves that the pinned server versions enforce the create-if-absent / compare-and-swap preconditions the
// backends rely on (design notes section 6). Plain HTTP with hand-made signatures, so a failure here points at the
// server (or its version pin), never at an SDK or a backend.
// Uses the servers of the vitest global setup when their env is present, else starts its own.
import { createHash, createHmac, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServers, type TestServers } from './index.js'

let own: TestServers | undefined
let env: Record<string, string | undefined> = process.env

beforeAll(async () => {
  const have = ['AWS_ENDPOINT_URL', 'AZURE_STORAGE_CONNECTION_STRING', 'STORAGE_EMULATOR_HOST'].every(
    (k) => (process.env[k] ?? '') !== '',
  )
  if (!have) {
    own = await startTestServers()
    env = own.env
  }
}, 15 * 60_000) // first run may build MinIO

afterAll(async () => {
  await own?.stop()
})

const must = (key: string): string => {
  const value = env[key]
  if (value === undefined || value === '') throw new Error(`${key} is not set`)
  return value
}
const unique = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`

describe('fake-gcs-server', () => {
  it('rejects ifGenerationMatch=0 on an existing object with 412 (media and resumable uploads)', async () => {
    const base = must('STORAGE_EMULATOR_HOST')
    const bucket = unique('pre')
    let res = await fetch(`${base}/storage/v1/b?project=jobstore-test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: bucket }),
    })
    expect(res.status).toBe(200)
    const upload = (body: string) =>
      fetch(`${base}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=x&ifGenerationMatch=0`, {
        method: 'POST',
        body,
      })
    res = await upload('first')
    expect(res.status).toBe(200)
    const { generation } = (await res.json()) as { generation: string }
    expect((await upload('second')).status).toBe(412)

    res = await fetch(`${base}/upload/storage/v1/b/${bucket}/o?uploadType=resumable&name=x&ifGenerationMatch=0`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    })
    expect(res.status).toBe(200)
    const location = res.headers.get('location')
    expect(location).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//) // -external-url took effect
    expect((await fetch(location ?? '', { method: 'PUT', body: 'third' })).status).toBe(412)

    // Compare-and-swap on the generation: the current one wins once, then it is stale.
    const cas = () =>
      fetch(`${base}/upload/storage/v1/b/${bucket}/o?uploadType=media&name=x&ifGenerationMatch=${generation}`, {
        method: 'POST',
        body: 'cas',
      })
    expect((await cas()).status).toBe(200)
    expect((await cas()).status).toBe(412)
    expect(await (await fetch(`${base}/storage/v1/b/${bucket}/o/x?alt=media`)).text()).toBe('cas')
  })
})

describe('MinIO', () => {
  it('honours If-None-Match: * and If-Match on PUT', async () => {
    const bucket = unique('pre')
    expect((await s3('PUT', `/${bucket}`)).status).toBe(200)
    expect((await s3('PUT', `/${bucket}/k`, 'v1', { 'if-none-match': '*' })).status).toBe(200)
    const second = await s3('PUT', `/${bucket}/k`, 'v2', { 'if-none-match': '*' })
    expect(second.status).toBe(412)
    const etag = (await s3('HEAD', `/${bucket}/k`)).headers.get('etag') ?? ''
    expect((await s3('PUT', `/${bucket}/k`, 'v3', { 'if-match': etag })).status).toBe(200)
    expect((await s3('PUT', `/${bucket}/k`, 'v4', { 'if-match': etag })).status).toBe(412)
    expect(await (await s3('GET', `/${bucket}/k`)).text()).toBe('v3')
  })
})

describe('Azurite', () => {
  it('answers a second create with 409 BlobAlreadyExists and a stale If-Match with 412 ConditionNotMet', async () => {
    const container = unique('pre')
    expect((await azure('PUT', `/${container}`, { restype: 'container' })).status).toBe(201)
    const put = (body: string, headers: Record<string, string>) =>
      azure('PUT', `/${container}/b`, {}, { 'x-ms-blob-type': 'BlockBlob', ...headers }, body)
    expect((await put('v1', { 'if-none-match': '*' })).status).toBe(201)
    const second = await put('v2', { 'if-none-match': '*' })
    // The design notes allow either answer; pin down which one this Azurite version gives.
    expect([second.status, second.headers.get('x-ms-error-code')]).toEqual([409, 'BlobAlreadyExists'])
    const stale = await put('v3', { 'if-match': '"0x1"' })
    expect([stale.status, stale.headers.get('x-ms-error-code')]).toEqual([412, 'ConditionNotMet'])
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Minimal request signing (path-style S3 SigV4 with UNSIGNED-PAYLOAD; Azure Shared Key)

const sha256hex = (data: string): string => createHash('sha256').update(data).digest('hex')
const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest()

function s3(method: string, path: string, body?: string, extra: Record<string, string> = {}): Promise<Response> {
  const endpoint = new URL(must('AWS_ENDPOINT_URL'))
  const region = must('AWS_REGION')
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '')
  const day = amzDate.slice(0, 8)
  const signed: Record<string, string> = {
    host: endpoint.host,
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
    'x-amz-date': amzDate,
  }
  const names = Object.keys(signed).sort()
  const canonical = [
    method,
    path,
    '',
    ...names.map((n) => `${n}:${signed[n]}`),
    '',
    names.join(';'),
    'UNSIGNED-PAYLOAD',
  ].join('\n')
  const scope = `${day}/${region}/s3/aws4_request`
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n')
  let key = hmac(`AWS4${must('AWS_SECRET_ACCESS_KEY')}`, day)
  for (const part of [region, 's3', 'aws4_request']) key = hmac(key, part)
  const signature = hmac(key, toSign).toString('hex')
  const { host: _host, ...headers } = signed
  return fetch(new URL(path, endpoint), {
    method,
    headers: {
      ...headers,
      ...extra,
      authorization: `AWS4-HMAC-SHA256 Credential=${must('AWS_ACCESS_KEY_ID')}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`,
    },
    ...(body !== undefined ? { body } : {}),
  })
}

function azure(
  method: string,
  path: string,
  query: Record<string, string> = {},
  extra: Record<string, string> = {},
  body?: string,
): Promise<Response> {
  const parts = new Map(
    must('AZURE_STORAGE_CONNECTION_STRING')
      .split(';')
      .filter((p) => p.includes('='))
      .map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)] as const),
  )
  const account = parts.get('AccountName') ?? ''
  const url = new URL(`${(parts.get('BlobEndpoint') ?? '').replace(/\/$/, '')}${path}`)
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
  const headers: Record<string, string> = {
    'x-ms-date': new Date().toUTCString(),
    'x-ms-version': '2025-01-05',
    ...(body !== undefined ? { 'content-type': 'application/octet-stream' } : {}),
    ...extra,
  }
  const length = body === undefined || body.length === 0 ? '' : String(Buffer.byteLength(body))
  const standard = ['content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date']
    .concat(['if-modified-since', 'if-match', 'if-none-match', 'if-unmodified-since', 'range'])
    .map((h) => (h === 'content-length' ? length : (headers[h] ?? '')))
  const msHeaders = Object.keys(headers)
    .filter((h) => h.startsWith('x-ms-'))
    .sort()
    .map((h) => `${h}:${headers[h]}\n`)
    .join('')
  let resource = `/${account}${url.pathname}`
  for (const k of [...url.searchParams.keys()].sort()) resource += `\n${k}:${url.searchParams.get(k)}`
  const toSign = `${[method, ...standard].join('\n')}\n${msHeaders}${resource}`
  const signature = hmac(Buffer.from(parts.get('AccountKey') ?? '', 'base64'), toSign).toString('base64')
  return fetch(url, {
    method,
    headers: { ...headers, authorization: `SharedKey ${account}:${signature}` },
    ...(body !== undefined ? { body } : {}),
  })
}
