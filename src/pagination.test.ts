import { describe, expect, it } from 'vitest'
import { pages, paginate, type Page } from './pagination.js'

/** A listing of `count` pages of two items, recording which pages were asked for. */
function listing(count: number): { asked: (number | undefined)[]; fetchPage: (token: number | undefined) => Promise<Page<string, number>> } {
  const asked: (number | undefined)[] = []
  return {
    asked,
    fetchPage: async (token) => {
      asked.push(token)
      const n = token ?? 0
      return { items: [`${n}a`, `${n}b`], ...(n + 1 < count ? { next: n + 1 } : {}) }
    },
  }
}

describe('pagination', () => {
  it('follows the tokens to the last page', async () => {
    const { asked, fetchPage } = listing(3)
    const items: string[] = []
    for await (const item of paginate(fetchPage)) items.push(item)
    expect(items).toEqual(['0a', '0b', '1a', '1b', '2a', '2b'])
    expect(asked).toEqual([undefined, 1, 2])
  })

  it('asks for no page the consumer does not come back for, unless asked to read ahead', async () => {
    const lazy = listing(3)
    for await (const items of pages(lazy.fetchPage)) {
      expect(items).toEqual(['0a', '0b'])
      break
    }
    expect(lazy.asked).toEqual([undefined])
    const ahead = listing(3)
    for await (const _ of pages(ahead.fetchPage, { ahead: true })) break
    expect(ahead.asked).toEqual([undefined, 1])
  })

  it('an empty token ends the listing; undefined for the first page is an empty listing', async () => {
    const items: string[] = []
    for await (const item of paginate(async () => ({ items: ['x'], next: '' }))) items.push(item)
    expect(items).toEqual(['x'])
    for await (const item of paginate(async () => undefined)) items.push(String(item))
    expect(items).toEqual(['x'])
  })

  it('a failed page fails the listing when it is reached', async () => {
    const failing = async (token: number | undefined): Promise<Page<string, number>> => {
      if (token === 1) throw new Error('page 1 failed')
      return { items: ['0'], next: 1 }
    }
    const items: string[] = []
    await expect(
      (async () => {
        for await (const item of paginate(failing, { ahead: true })) items.push(item)
      })(),
    ).rejects.toThrow('page 1 failed')
    expect(items).toEqual(['0'])
  })
})
