/**
 * The example workflow: count words in a text, in parallel.
 *
 *   split (root) ──children──▶ count × N   (one per chunk file)
 *        └────────follow-on──▶ total       (reads the counts by reference, writes the result)
 *
 * It exercises what engines do with a store: files written by one job and read by another, outputs passed by
 * reference, jobs added at run time, a shared file as the workflow's result, a Retry on a flaky step.
 */
import { CheckLater, Retry, Success, type JobFunction } from './engine.js'

async function readText(stream: AsyncIterable<unknown>): Promise<string> {
  let text = ''
  for await (const part of stream) text += part as string
  return text
}

export const wordCountFunctions: Record<string, JobFunction> = {
  /** Splits the input file into chunk files, adds a `count` child per chunk and a `total` follow-on. */
  async split({ store, job, args, addChild, addFollowOn }) {
    const text = await readText(await store.readFileStream(args['input'] as string, { encoding: 'utf8' }))
    const lines = text.split('\n')
    const chunks = Number(args['chunks'] ?? 4)
    const per = Math.ceil(lines.length / chunks)
    const counts: { $ref: string }[] = []
    for (let i = 0; i < chunks; i++) {
      const part = lines.slice(i * per, (i + 1) * per).join('\n')
      // A cleanup file: deleted with the job that owns it when the workflow deletes jobs.
      const chunkFile = await store.writeFileStream((w) => void w.end(part), {
        jobStoreID: job.jobStoreID as string,
        cleanup: true,
        basename: `chunk-${i}.txt`,
        encoding: 'utf8',
      })
      const countArgs = { chunk: chunkFile, flaky: i === 0, delayMs: Number(args['delayMs'] ?? 0) }
      counts.push({ $ref: addChild({ fn: 'count', args: countArgs, name: `count-${i}` }) })
    }
    addFollowOn({ fn: 'total', args: { counts }, name: 'total' })
    return Success({ chunks })
  },

  /** Counts the words of one chunk. The first chunk's job fails once, to show a Retry. */
  async count({ store, job, args }) {
    if (args['flaky'] === true && job.extra['reason'] === undefined) {
      return Retry('simulated transient failure')
    }
    const text = await readText(await store.readFileStream(args['chunk'] as string, { encoding: 'utf8' }))
    // A slower job, to make an interruption mid-run easy to show (and to test).
    if (Number(args['delayMs']) > 0) await new Promise((resolve) => setTimeout(resolve, Number(args['delayMs'])))
    const counts: Record<string, number> = {}
    for (const word of text.toLowerCase().match(/[a-z']+/g) ?? []) counts[word] = (counts[word] ?? 0) + 1
    return Success({ words: Object.values(counts).reduce((a, b) => a + b, 0), counts })
  },

  /** Sums the counts (outputs of the count jobs, by reference) and writes the workflow's result. */
  async total({ store, args }) {
    const parts = args['counts'] as ({ words: number; counts: Record<string, number> } | null)[]
    if (parts.some((p) => p === null)) return CheckLater(100)
    const totals: Record<string, number> = {}
    let words = 0
    for (const part of parts as { words: number; counts: Record<string, number> }[]) {
      words += part.words
      for (const [word, n] of Object.entries(part.counts)) totals[word] = (totals[word] ?? 0) + n
    }
    const top = Object.entries(totals)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 5)
    const result = { words, distinct: Object.keys(totals).length, top }
    await store.writeSharedFileStream('rootJobReturnValue', (w) => void w.end(JSON.stringify(result)), { encoding: 'utf8' })
    return Success(result)
  },
}
