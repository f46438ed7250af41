/**
 * The state the CLI shows for a job. The store itself has no notion of state (it is the engine's business), so
 * the CLI follows a convention engines opt into:
 *
 * 1. `extra.state`, when the engine keeps a non-empty string there (the example engine uses `pending`,
 *    `running`, `done`, `failed`);
 * 2. else `failed` when the job has no tries left (`remainingTryCount` is 0), as in Toil;
 * 3. else `unknown`.
 */
import type { JobDescription } from '../job-description.js'

export function jobState(desc: JobDescription): string {
  const state = desc.extra['state']
  if (typeof state === 'string' && state !== '') return state
  if (desc.remainingTryCount === 0) return 'failed'
  return 'unknown'
}

/**
 * The states {@link jobState} gives by the convention above (those of the example engine, and the two it derives):
 * `jobs --state` takes these and any other state a job in the store has.
 */
export const CONVENTIONAL_STATES: readonly string[] = ['pending', 'running', 'done', 'failed', 'unknown']
