import { describe, expect, it } from 'vitest'
import { DIGEST_METADATA, digestFromMetadata, removeOrphanSidecars, sidecarKey } from './digest-sidecars.js'

describe('digest sidecars', () => {
  it('an object carries its digest inline, or names the sidecar that holds it', async () => {
    const read: string[] = []
    const readSidecar = async (name: string): Promise<string | undefined> => {
      read.push(name)
      return name === 'p/digests/k~1' ? 'AAAAAA==' : undefined
    }
    expect(await digestFromMetadata({ [DIGEST_METADATA.digest]: 'BBBBBB==' }, readSidecar)).toBe('BBBBBB==')
    expect(await digestFromMetadata({ [DIGEST_METADATA.digest]: 'not a digest' }, readSidecar)).toBeUndefined()
    expect(await digestFromMetadata({ [DIGEST_METADATA.sidecar]: 'p/digests/k~1' }, readSidecar)).toBe('AAAAAA==')
    // A sidecar gone: no digest (the core reports the file as stored without one).
    expect(await digestFromMetadata({ [DIGEST_METADATA.sidecar]: 'p/digests/k~2' }, readSidecar)).toBeUndefined()
    expect(await digestFromMetadata(undefined, readSidecar)).toBeUndefined()
    expect(read).toEqual(['p/digests/k~1', 'p/digests/k~2'])
    expect(sidecarKey('files/ab/x', 'w1')).toBe('digests/files/ab/x~w1')
  })

  it('removes the old sidecars no object names, and keeps the named and the recent ones', async () => {
    const prefix = 'p/digests/'
    const named = new Map([['files/a', `${prefix}files/a~2`]])
    const sidecars = [
      { name: `${prefix}files/a~1`, created: 10 }, // replaced by write 2: orphan
      { name: `${prefix}files/a~2`, created: 10 }, // named: kept
      { name: `${prefix}files/b~1`, created: 10 }, // object gone: orphan
      { name: `${prefix}files/c~1`, created: 1000 }, // recent: its write may be going on
      { name: `${prefix}files/d~1`, created: Number.NaN }, // unknown age: kept
      { name: `${prefix}stray`, created: 10 }, // not a sidecar name: kept
    ]
    const deleted: string[] = []
    const removed = await removeOrphanSidecars({
      sidecars: (async function* () {
        yield* sidecars
      })(),
      prefix,
      cutoff: 100,
      namedBy: async (key) => named.get(key),
      deleteNames: async (names) => void deleted.push(...names),
      concurrency: 2,
    })
    expect(removed).toBe(2)
    expect(deleted.sort()).toEqual([`${prefix}files/a~1`, `${prefix}files/b~1`])
  })
})
