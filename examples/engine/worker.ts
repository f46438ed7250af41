/** A worker process of the example engine: `node worker.js <locator> <name>`. Runs jobs until the workflow ends. */
import { openJobStore } from '../../src/index.js'
import { workerLoop } from './engine.js'
import { wordCountFunctions } from './word-count.js'

const [locator, name = `worker-${process.pid}`] = process.argv.slice(2)
if (locator === undefined) {
  console.error('usage: worker <locator> [name]')
  process.exit(2)
}
const store = await openJobStore(locator)
await store.resume()
const ran = await workerLoop(store, wordCountFunctions, {
  worker: name,
  onJob: async (desc, result) => {
    console.error(`[${name}] ${desc.jobName}: ${result.kind}`)
    // A trace an operator (or a test) can read back with readStatsAndLogging / `jobstore logs`.
    const trace = { worker: name, job: desc.jobStoreID, name: desc.jobName, result: result.kind, at: Date.now() }
    await store.writeStatsAndLogging(JSON.stringify(trace))
  },
})
console.error(`[${name}] done after ${ran} jobs`)
