/**
 * Job store operations as OpenTelemetry spans and metrics (docs/observability.md): an SDK set up as an
 * application would, `instrumentJobStores()` from `jobstore/otel`, a little work on a store, then the span tree
 * and the metrics printed.
 *
 *   npx tsx examples/otel-tracing.ts [locator]        (or, built: node dist/examples/otel-tracing.js)
 *
 * Default locator: a new folder under the system's temporary folder (destroyed at the end). Any locator works
 * (`s3://bucket/prefix` with the AWS environment set…); the store is created, used and destroyed.
 *
 * Needs @opentelemetry/api, @opentelemetry/sdk-trace-base, @opentelemetry/sdk-metrics and
 * @opentelemetry/context-async-hooks (this repository's devDependencies). A real application exports to a
 * collector instead (`@opentelemetry/exporter-trace-otlp-http`…); the bridge does not care where spans go.
 */
import { context, metrics, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type Histogram } from '@opentelemetry/sdk-metrics'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { newJobDescription, openJobStore } from '../src/index.js'
import { instrumentJobStores } from '../src/otel.js'

// 1. The SDK, as the application sets it up (here: in memory, printed below).
const spanExporter = new InMemorySpanExporter()
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] })
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const metricReader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 60_000 })
const meterProvider = new MeterProvider({ readers: [metricReader] })
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
trace.setGlobalTracerProvider(tracerProvider)
metrics.setGlobalMeterProvider(meterProvider)

// 2. The bridge: from now on every store operation is a span and counts in the metrics.
const stopInstrumentation = instrumentJobStores()

// 3. Some work, under an application span.
const given = process.argv[2]
const scratch = given === undefined ? await mkdtemp(join(tmpdir(), 'jobstore-otel-example-')) : undefined
const store = await openJobStore(given ?? `file:${join(scratch as string, 'store')}`)
const app = trace.getTracer('example').startSpan('workflow run')
await context.with(trace.setSpan(context.active(), app), async () => {
  await store.initialize()
  const root = newJobDescription({ jobName: 'root', command: 'count words' })
  store.assignID(root)
  await store.createRootJob(root)
  const input = await store.writeFileStream((w) => void w.end('the quick brown fox jumps over the lazy dog\n'.repeat(1000)), {
    jobStoreID: root.jobStoreID as string,
  })
  let words = 0
  for await (const chunk of await store.readFileStream(input, { encoding: 'utf8' })) words += (chunk as string).split(/\s+/).length - 1
  await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end(JSON.stringify({ words })))
  for await (const _ of store.jobs());
  const neverCreated = store.assignID(newJobDescription({ jobName: 'never created', command: '' }))
  await store.load(neverCreated).catch(() => {}) // a failure (NO_SUCH_JOB), to show one
  console.log(`${words} words`)
  await store.clean()
  await store.destroy()
})
app.end()
stopInstrumentation()
if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })

// 4. What came out.
const spans = spanExporter.getFinishedSpans()
const children = new Map<string | undefined, ReadableSpan[]>()
for (const span of spans) {
  const parent = span.parentSpanContext?.spanId
  children.set(parent, [...(children.get(parent) ?? []), span])
}
const print = (span: ReadableSpan, depth: number): void => {
  const ms = (span.duration[0] * 1e3 + span.duration[1] / 1e6).toFixed(2)
  const extra = ['jobstore.bytes', 'jobstore.items', 'error.type']
    .filter((key) => span.attributes[key] !== undefined)
    .map((key) => `${key}=${String(span.attributes[key])}`)
  console.log(`${'  '.repeat(depth)}${span.name} ${ms} ms ${extra.join(' ')}`.trimEnd())
  for (const child of children.get(span.spanContext().spanId) ?? []) print(child, depth + 1)
}
console.log('spans:')
for (const span of children.get(undefined) ?? []) print(span, 1)

await metricReader.forceFlush()
console.log('metrics:')
for (const metric of metricExporter.getMetrics().at(-1)?.scopeMetrics.flatMap((scope) => scope.metrics) ?? []) {
  for (const point of metric.dataPoints) {
    const { 'jobstore.operation': operation, 'jobstore.outcome': outcome, 'jobstore.nested': nested } = point.attributes
    const value = typeof point.value === 'number' ? point.value : `count=${(point.value as Histogram).count} sum=${(point.value as Histogram).sum?.toFixed(4)}`
    console.log(`  ${metric.descriptor.name} {${operation}, ${outcome}${nested === true ? ', nested' : ''}} ${value}`)
  }
}
await meterProvider.shutdown()
await tracerProvider.shutdown()
