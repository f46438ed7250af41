/**
 * `jobstore/otel`: the `jobstore:operation` tracing channel (see tracing.ts) as OpenTelemetry spans and metrics.
 * Needs `@opentelemetry/api` (an optional peer dependency) and an SDK set up by the application:
 *
 * ```ts
 * import { instrumentJobStores } from 'jobstore/otel'
 * const stop = instrumentJobStores()   // the global tracer and meter providers
 * ```
 *
 * One span per operation (`jobstore.load`…), child of the operation that called it (the loads of `jobs()`), else
 * of the active context; and three instruments, by operation, scheme and outcome: `jobstore.operation.calls`,
 * `jobstore.operation.duration` (seconds) and `jobstore.operation.bytes`. See docs/observability.md.
 */
import {
  context,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type MeterProvider,
  type Span,
  type TracerProvider,
} from '@opentelemetry/api'
import { maskUrlSecrets } from './redact.js'
import { OPERATIONS, operationChannel, type OperationContext } from './tracing.js'

/** Options of {@link instrumentJobStores}. */
export interface JobStoreInstrumentationOptions {
  /** Where spans go; default the global one (`trace.setGlobalTracerProvider`). */
  readonly tracerProvider?: TracerProvider
  /** Where metrics go; default the global one (`metrics.setGlobalMeterProvider`). */
  readonly meterProvider?: MeterProvider
}

/** The instrumentation scope's name, of the tracer and the meter. */
export const INSTRUMENTATION_NAME = 'jobstore'

/** Span attributes: everything the context tells (IDs included: high cardinality is fine on spans). */
function spanAttributes(ctx: OperationContext): Attributes {
  const attributes: Attributes = {
    'jobstore.operation': ctx.operation,
    'jobstore.scheme': ctx.scheme,
    'jobstore.locator': ctx.locator,
  }
  if (ctx.jobStoreID !== undefined) attributes['jobstore.job_id'] = ctx.jobStoreID
  if (ctx.fileID !== undefined) attributes['jobstore.file_id'] = ctx.fileID
  if (ctx.sharedFileName !== undefined) attributes['jobstore.shared_file'] = ctx.sharedFileName
  if (ctx.url !== undefined) attributes['jobstore.url'] = ctx.url
  if (ctx.destination !== undefined) {
    attributes['jobstore.destination.scheme'] = ctx.destination.scheme
    attributes['jobstore.destination.locator'] = ctx.destination.locator
  }
  return attributes
}

/**
 * Subscribes to the `jobstore:operation` channel and turns its events into spans and metrics; returns the
 * function that unsubscribes. Call it once (each call subscribes again: twice gives every span twice).
 */
export function instrumentJobStores(options: JobStoreInstrumentationOptions = {}): () => void {
  const tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(INSTRUMENTATION_NAME)
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME)
  const calls = meter.createCounter('jobstore.operation.calls', {
    description: 'Job store operations, by operation, scheme and outcome',
    unit: '{call}',
  })
  const duration = meter.createHistogram('jobstore.operation.duration', {
    description: 'Duration of job store operations, from the call to the end (of the stream or listing, for those)',
    unit: 's',
  })
  const bytes = meter.createCounter('jobstore.operation.bytes', {
    description: 'Bytes of file content moved by job store operations, by operation, direction, scheme and outcome',
    unit: 'By',
  })
  const live = new WeakMap<OperationContext, { readonly span: Span; readonly startedAt: number }>()

  const handlers = {
    start(ctx: OperationContext): void {
      const parentSpan = ctx.parent !== undefined ? live.get(ctx.parent)?.span : undefined
      const parent = parentSpan !== undefined ? trace.setSpan(context.active(), parentSpan) : context.active()
      const span = tracer.startSpan(`jobstore.${ctx.operation}`, { kind: SpanKind.CLIENT, attributes: spanAttributes(ctx) }, parent)
      live.set(ctx, { span, startedAt: performance.now() })
    },
    end(): void {},
    asyncStart(): void {},
    error(ctx: OperationContext): void {
      const span = live.get(ctx)?.span
      if (span === undefined) return
      const err = ctx.error as { name?: unknown; message?: unknown } | undefined
      // Messages may quote locators and URLs: masked as the context's own fields are.
      const message = maskUrlSecrets(typeof err?.message === 'string' ? err.message : String(ctx.error))
      span.recordException({ name: typeof err?.name === 'string' ? err.name : 'Error', message, ...(ctx.errorCode !== undefined ? { code: ctx.errorCode } : {}) })
      span.setStatus({ code: SpanStatusCode.ERROR, message })
    },
    asyncEnd(ctx: OperationContext): void {
      const started = live.get(ctx)
      if (started === undefined) return
      live.delete(ctx)
      const { span } = started
      const outcome = ctx.errorCode === undefined ? 'ok' : 'error'
      if (ctx.errorCode !== undefined) span.setAttribute('error.type', ctx.errorCode)
      // Filled in as the operation went: known only now.
      if (ctx.jobStoreID !== undefined) span.setAttribute('jobstore.job_id', ctx.jobStoreID)
      if (ctx.fileID !== undefined) span.setAttribute('jobstore.file_id', ctx.fileID)
      if (ctx.bytes !== undefined) span.setAttribute('jobstore.bytes', ctx.bytes)
      if (ctx.items !== undefined) span.setAttribute('jobstore.items', ctx.items)
      if (ctx.endedEarly === true) span.setAttribute('jobstore.ended_early', true)
      span.end()
      // Low cardinality only: no IDs, no locator.
      const attributes: Attributes = {
        'jobstore.operation': ctx.operation,
        'jobstore.scheme': ctx.scheme,
        'jobstore.outcome': outcome,
        'jobstore.nested': ctx.parent !== undefined,
      }
      if (ctx.errorCode !== undefined) attributes['error.type'] = ctx.errorCode
      calls.add(1, attributes)
      duration.record((performance.now() - started.startedAt) / 1000, attributes)
      const direction = (OPERATIONS[ctx.operation] as { bytes?: 'read' | 'write' }).bytes
      if (ctx.bytes !== undefined && direction !== undefined) bytes.add(ctx.bytes, { ...attributes, 'jobstore.direction': direction })
    },
  }
  operationChannel.subscribe(handlers)
  return () => {
    operationChannel.unsubscribe(handlers)
  }
}
