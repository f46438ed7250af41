/**
 * Paged listings, walked once for every backend: a backend maps one page request of its service (a continuation
 * token or markers in, items and the next token out); this follows the tokens, optionally one page ahead.
 */

/** One page of a listing: its items, and the token of the next page (undefined or empty: this was the last). */
export interface Page<T, Token> {
  readonly items: readonly T[]
  readonly next?: Token | undefined
}

/** Options of {@link pages}. */
export interface PagesOptions {
  /**
   * Ask for the next page while the items of this one are consumed (its failure surfaces when it is reached).
   * Costs a request more when the consumer stops early: for listings read to their end.
   */
  readonly ahead?: boolean
  /** Checked before each page request. */
  readonly signal?: AbortSignal | undefined
}

/**
 * The pages of a listing, from `fetchPage(undefined)` on, following each page's `next`. `fetchPage` resolves
 * undefined when there is nothing to list at all (a missing bucket): the listing is then empty.
 */
export async function* pages<T, Token>(
  fetchPage: (token: Token | undefined) => Promise<Page<T, Token> | undefined>,
  options: PagesOptions = {},
): AsyncGenerator<readonly T[]> {
  const fetch = (token: Token | undefined): Promise<Page<T, Token> | undefined> => {
    options.signal?.throwIfAborted()
    return fetchPage(token)
  }
  let pending = fetch(undefined)
  for (;;) {
    const page = await pending
    const next = page?.next
    const more = next !== undefined && next !== ''
    if (more && options.ahead === true) {
      pending = fetch(next)
      pending.catch(() => {}) // observed at the next turn; the consumer may stop before
    }
    if (page !== undefined) yield page.items
    if (!more) return
    if (options.ahead !== true) pending = fetch(next)
  }
}

/** Every item of a listing (see {@link pages}). */
export async function* paginate<T, Token>(
  fetchPage: (token: Token | undefined) => Promise<Page<T, Token> | undefined>,
  options: PagesOptions = {},
): AsyncGenerator<T> {
  for await (const items of pages(fetchPage, options)) yield* items
}
