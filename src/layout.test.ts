import { describe, expect, it } from 'vitest'
import { keys } from './ids.js'
import { backendEntries, deleteListed, isOwned, ownedNames, ownedRoots, storeEntries } from './layout.js'

/** Every key the layout makes, one of each kind. */
function sampleKeys(): string[] {
  const job = 'a'.repeat(26)
  const made = [keys.job(job), keys.file(`${job}/c/${'b'.repeat(26)}`), keys.cleanupFilesPrefix(job), keys.shared('x'), keys.statsUnreadPrefix + keys.newStatsId()]
  const constants = (Object.values(keys) as unknown[]).filter((value): value is string => typeof value === 'string')
  return [...constants, ...made]
}

describe('layout', () => {
  it('the top-level entries cover every key the layout makes: a new top-level key must be added there, or this fails', () => {
    const entries = storeEntries()
    for (const key of sampleKeys()) expect(isOwned(entries, key), key).toBe(true)
  })

  it('a store owns its entries, under its prefix or at the root: never a nested store, nor foreign names', () => {
    const root = ownedRoots('', [backendEntries.digests])
    expect(isOwned(root, 'digests/jobs/ab/x~1')).toBe(true)
    expect(isOwned(root, 'config.json')).toBe(true)
    expect(isOwned(root, 'config.json.bak')).toBe(false)
    expect(isOwned(root, 'other-store/config.json')).toBe(false)
    expect(isOwned(root, 'tmp/x')).toBe(false)
    const prefixed = ownedRoots('a/')
    expect(isOwned(prefixed, 'a/jobs/ab/x')).toBe(true)
    expect(isOwned(prefixed, 'a/config.json')).toBe(true)
    expect(isOwned(prefixed, 'a/b/jobs/ab/x')).toBe(false)
    expect(isOwned(prefixed, 'ab/jobs/x')).toBe(false)
  })

  it('lists a prefixed store once, filtered; a store at the root by entry, key entries as they are', async () => {
    const asked: string[] = []
    const objects = ['a/config.json', 'a/jobs/1', 'a/b/jobs/2', 'a/b/config.json', 'a/notes.txt', 'a/stats/3']
    const list = async function* (prefix: string): AsyncGenerator<{ key: string }> {
      asked.push(prefix)
      for (const key of objects) if (key.startsWith(prefix)) yield { key }
    }
    const names: string[] = []
    for await (const name of ownedNames('a/', [], list)) names.push(name)
    expect(names).toEqual(['a/config.json', 'a/jobs/1', 'a/stats/3'])
    expect(asked).toEqual(['a/'])
    asked.length = 0
    names.length = 0
    for await (const name of ownedNames('', [backendEntries.digests], async function* (prefix) {
      asked.push(prefix)
      yield { name: `${prefix}x` }
    })) {
      names.push(name)
    }
    expect(names[0]).toBe('config.json')
    expect(names).toContain('digests/x')
    expect(asked).toEqual(storeEntries([backendEntries.digests]).filter((entry) => entry.endsWith('/')))
  })

  it('deletes a listing in bounded batches, with bounded concurrency, reading the listing only as batches go', async () => {
    let listedAhead = 0
    let deleted = 0
    let inFlight = 0
    let maxInFlight = 0
    const sizes: number[] = []
    async function* listing(): AsyncGenerator<string> {
      for (let i = 0; i < 1050; i++) {
        listedAhead = Math.max(listedAhead, i - deleted)
        yield `k${i}`
      }
    }
    await deleteListed(
      listing(),
      async (names) => {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        sizes.push(names.length)
        await new Promise((resolve) => setImmediate(resolve))
        deleted += names.length
        inFlight--
      },
      { batchSize: 100, concurrency: 3 },
    )
    expect(deleted).toBe(1050)
    expect(Math.max(...sizes)).toBe(100)
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(1050)
    expect(maxInFlight).toBeLessThanOrEqual(3)
    // At most the batches in flight, and the one being filled, are ahead of the deletes.
    expect(listedAhead).toBeLessThanOrEqual(4 * 100)
  })
})
