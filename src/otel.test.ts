/**
 * `jobstore/otel`, as an application sees it: an OpenTelemetry SDK with an in-memory span exporter and a metric
 * reader, a file store doing real work, and the spans and metrics that come out.
 */
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, onTestFinished } from 'vitest'
import './builtin-backends.js'
import { newJobDescription } from './job-description.js'
import { openJobStore } from './open.js'
import { instrumentJobStores } from './otel.js'

/** A reader the test collects from when it wants. */
class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

async function setUp(): Promise<{ spans: InMemorySpanExporter; reader: TestReader; provider: BasicTracerProvider; dir: string; stop: () => void }> {
  const spans = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] })
  const reader = new TestReader()
  const meterProvider = new MeterProvider({ readers: [reader] })
  const stop = instrumentJobStores({ tracerProvider: provider, meterProvider })
  // What an SDK's setup does: the active span follows async calls.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const dir = await mkdtemp(join(tmpdir(), 'jobstore-otel-'))
  onTestFinished(async () => {
    stop()
    context.disable()
    await meterProvider.shutdown()
    await provider.shutdown()
    await rm(dir, { recursive: true, force: true })
  })
  return { spans, reader, provider, dir, stop }
}

/** The data points of one instrument, by a key of their attributes. */
async function points(reader: TestReader, name: string): Promise<DataPoint<number | Histogram>[]> {
  const { resourceMetrics } = await reader.collect()
  const metric = resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics).find((m) => m.descriptor.name === name)
  return (metric?.dataPoints ?? []) as DataPoint<number | Histogram>[]
}

function findSpan(spans: ReadableSpan[], name: string, attributes: Record<string, unknown> = {}): ReadableSpan {
  const found = spans.find((span) => span.name === name && Object.entries(attributes).every(([k, v]) => span.attributes[k] === v))
  expect(found, `span ${name} ${JSON.stringify(attributes)}`).toBeDefined()
  return found as ReadableSpan
}

describe('jobstore/otel', () => {
  it('turns operations into spans: attributes, bytes, errors with their code, children of the calling operation and of the active span', async () => {
    const { spans, provider, dir } = await setUp()
    const store = await openJobStore(`file:${join(dir, 'store')}`)
    await store.initialize()
    const job = newJobDescription({ jobName: 'a', command: 'x' })
    store.assignID(job)
    await store.create(job)
    const fileID = await store.writeFileStream((w) => void w.end(Buffer.alloc(2048, 1)))
    for await (const _ of await store.readFileStream(fileID));
    for await (const _ of store.jobs());
    const missing = store.assignID(newJobDescription({ jobName: 'b', command: 'x' }))
    await expect(store.load(missing)).rejects.toMatchObject({ code: 'NO_SUCH_JOB' })
    const app = provider.getTracer('app').startSpan('app work')
    await context.with(trace.setSpan(context.active(), app), () => store.exists(job.jobStoreID as string))
    app.end()
    await store.destroy()

    const finished = spans.getFinishedSpans()
    expect(findSpan(finished, 'jobstore.create').attributes).toMatchObject({
      'jobstore.operation': 'create',
      'jobstore.scheme': 'file',
      'jobstore.locator': `file:${join(dir, 'store')}`,
      'jobstore.job_id': job.jobStoreID,
    })
    expect(findSpan(finished, 'jobstore.writeFileStream').attributes).toMatchObject({ 'jobstore.file_id': fileID, 'jobstore.bytes': 2048 })
    expect(findSpan(finished, 'jobstore.readFileStream').attributes).toMatchObject({ 'jobstore.file_id': fileID, 'jobstore.bytes': 2048 })
    const failed = findSpan(finished, 'jobstore.load', { 'jobstore.job_id': missing })
    expect(failed.status.code).toBe(2) // SpanStatusCode.ERROR
    expect(failed.attributes['error.type']).toBe('NO_SUCH_JOB')
    expect(failed.events.some((event) => event.name === 'exception')).toBe(true)
    const listing = findSpan(finished, 'jobstore.jobs')
    expect(listing.attributes['jobstore.items']).toBe(1)
    const nestedLoad = findSpan(finished, 'jobstore.load', { 'jobstore.job_id': job.jobStoreID })
    expect(nestedLoad.parentSpanContext?.spanId).toBe(listing.spanContext().spanId)
    expect(nestedLoad.spanContext().traceId).toBe(listing.spanContext().traceId)
    // The application's active span is the parent of an operation it calls.
    expect(findSpan(finished, 'jobstore.exists').parentSpanContext?.spanId).toBe(app.spanContext().spanId)
  })

  it('records calls, duration and bytes by operation, scheme and outcome; nothing after it is stopped', async () => {
    const { spans, reader, dir, stop } = await setUp()
    const store = await openJobStore(`file:${join(dir, 'store')}`)
    await store.initialize()
    for (let i = 0; i < 3; i++) await store.writeFileStream((w) => void w.end(Buffer.alloc(1000, 1)))
    const missing = store.assignID(newJobDescription({ jobName: 'b', command: 'x' }))
    await expect(store.load(missing)).rejects.toMatchObject({ code: 'NO_SUCH_JOB' })
    await expect(store.load(missing)).rejects.toMatchObject({ code: 'NO_SUCH_JOB' })

    const callPoints = await points(reader, 'jobstore.operation.calls')
    const writes = callPoints.find((p) => p.attributes['jobstore.operation'] === 'writeFileStream')
    expect(writes?.value).toBe(3)
    expect(writes?.attributes).toMatchObject({ 'jobstore.scheme': 'file', 'jobstore.outcome': 'ok', 'jobstore.nested': false })
    const failures = callPoints.find((p) => p.attributes['jobstore.operation'] === 'load' && p.attributes['jobstore.outcome'] === 'error')
    expect(failures?.value).toBe(2)
    expect(failures?.attributes['error.type']).toBe('NO_SUCH_JOB')
    const bytePoints = await points(reader, 'jobstore.operation.bytes')
    expect(bytePoints.find((p) => p.attributes['jobstore.operation'] === 'writeFileStream')).toMatchObject({
      value: 3000,
      attributes: { 'jobstore.direction': 'write' },
    })
    const durations = await points(reader, 'jobstore.operation.duration')
    const writeDurations = durations.find((p) => p.attributes['jobstore.operation'] === 'writeFileStream')?.value as Histogram | undefined
    expect(writeDurations?.count).toBe(3)
    expect(writeDurations?.sum).toBeGreaterThan(0)

    stop()
    const before = spans.getFinishedSpans().length
    await store.destroy()
    expect(spans.getFinishedSpans().length).toBe(before)
  })
})
