/**
 * Requests per lost race (issue 18, item 1: one write-token protocol): a compare-and-swap or create-if-absent that
 * loses to another writer costs its own request and, where the service cannot tell "missing" from "changed", one
 * lookup; never a lookup of a write token that cannot match. Counted by the fault proxy (no faults injected) in
 * front of the real local servers.
 */
import { describe, expect, it, onTestFinished } from 'vitest'
import { ConcurrentFileModificationError, NoSuchJobError } from '../src/errors.js'
import { newJobDescription } from '../src/job-description.js'
import { openJobStore } from '../src/open.js'
import '../src/builtin-backends.js'
import { startFaultProxy } from '../test-servers/fault-proxy.js'
import { openThroughProxy, TARGETS, upstreamOf, type NETWORK_BACKENDS } from '../reliability-tests/targets.js'

type Network = (typeof NETWORK_BACKENDS)[number]

/**
 * Requests a lost race may cost, per backend: the write itself, plus one lookup of the write token where the
 * backend cannot tell whether its SDK retried the request (a retry's 412 may hide the first attempt's success):
 * Azure and GCS. That lookup also tells `update()` whether the job is gone. S3 knows its attempts
 * (`$metadata.attempts`) and whether the key is missing (404 against 412): the write alone. Before (87df123):
 * S3 3 and 2, Azure 3 and 2, GCS 4 and 3.
 */
const LOST_UPDATE: Record<Network, number> = { s3: 1, azure: 2, gcs: 2 }
const LOST_CREATE: Record<Network, number> = { s3: 1, azure: 2, gcs: 2 }
/**
 * An update(ifVersion) of a job deleted meanwhile, by an instance with no version token cached for it: the record
 * is read first, and its absence is the answer (GCS: a media 404 is proven by a metadata lookup, see
 * docs/guarantees.md "not found").
 */
const GONE_UPDATE: Record<Network, number> = { s3: 1, azure: 1, gcs: 2 }

for (const name of ['s3', 'azure', 'gcs'] as const) {
  describe(`requests per lost race: ${name}`, () => {
    it('update(ifVersion) that lost, create() of an existing job, update of a deleted job: the write, and a lookup only where the answer is ambiguous', async () => {
      const locator = TARGETS[name].newLocator()
      const direct = await openJobStore(locator)
      await direct.initialize()
      onTestFinished(() => direct.destroy())
      const proxy = await startFaultProxy({ target: upstreamOf(name), flavor: name })
      onTestFinished(() => proxy.close())
      const proxied = openThroughProxy(name, locator, proxy.url)
      await proxied.resume()

      const desc = newJobDescription({ jobName: 'raced' })
      proxied.assignID(desc)
      await proxied.create(desc)
      // Another process moves the job on.
      const other = await direct.load(desc.jobStoreID as string)
      await direct.update(other)

      let before = proxy.stats.requests
      await expect(proxied.update({ ...desc }, { ifVersion: desc.version as number })).rejects.toBeInstanceOf(ConcurrentFileModificationError)
      const lostUpdate = proxy.stats.requests - before

      before = proxy.stats.requests
      await expect(proxied.create({ ...desc, version: 0 })).rejects.toBeInstanceOf(ConcurrentFileModificationError)
      const lostCreate = proxy.stats.requests - before

      await direct.delete(desc.jobStoreID as string)
      const latest = await proxied.load(desc.jobStoreID as string).catch(() => undefined)
      expect(latest).toBeUndefined()
      before = proxy.stats.requests
      await expect(proxied.update({ ...other }, { ifVersion: other.version as number })).rejects.toBeInstanceOf(NoSuchJobError)
      const goneUpdate = proxy.stats.requests - before

      console.log(`[requests] lost-race-${name} ${JSON.stringify({ lostUpdate, lostCreate, goneUpdate })}`)
      expect({ lostUpdate, lostCreate }).toEqual({ lostUpdate: LOST_UPDATE[name], lostCreate: LOST_CREATE[name] })
      expect(goneUpdate).toBe(GONE_UPDATE[name])
    })
  })
}
