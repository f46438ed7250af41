/**
 * The `jobstore:operation` instrumentation alone, nobody subscribed: an awaited call of an async method that does
 * nothing, on a class the instrumentation wrapped and on the same class unwrapped, rounds interleaved. The
 * difference is what tracing adds to every store call when nobody listens (see docs/observability.md, "Cost").
 *
 *   npx tsx bench/micro/tracing-wrapper.mts [--count 1000000] [--rounds 7]
 */
import { parseArgs } from 'node:util'
import { instrumentJobStoreClass, operationChannel } from '../../src/tracing.js'

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '7' } } })
const count = Number(values.count)
const rounds = Number(values.rounds)

class Plain {
  readonly locator = 'file:/nowhere'
  async exists(_id: string): Promise<boolean> {
    return true
  }
}
class Wrapped extends Plain {}
// Wrapped gets its own copy of the method to wrap (the instrumentation wraps where a class defines a method).
Object.defineProperty(Wrapped.prototype, 'exists', { value: async function exists(_id: string) { return true }, writable: true, configurable: true })
instrumentJobStoreClass(Wrapped.prototype)
if (operationChannel.hasSubscribers) throw new Error('somebody subscribes')

async function time(store: Plain): Promise<number> {
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < count; i++) await store.exists('x')
  return Number(process.hrtime.bigint() - t0) / count
}
const plain: number[] = []
const wrapped: number[] = []
for (let round = 0; round < rounds; round++) {
  plain.push(await time(new Plain()))
  wrapped.push(await time(new Wrapped()))
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
console.log(`node ${process.version}, ${count} awaited calls a round, ${rounds} rounds, medians:`)
console.log(`unwrapped ${median(plain).toFixed(1)} ns/call, wrapped ${median(wrapped).toFixed(1)} ns/call, added ${(median(wrapped) - median(plain)).toFixed(1)} ns/call`)
