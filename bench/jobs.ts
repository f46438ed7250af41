/** Job descriptions of about 2 KiB and the job graph of the clean workload, the same on every side. */
import { encodeJob, newJobDescription, type JobDescription } from '../src/index.js'

/** A job description whose stored record (encodeJob) is about `recordBytes` once it has an ID. */
export function benchJob(index: number, id: string, recordBytes: number): JobDescription {
  const desc = newJobDescription({
    jobName: 'bench',
    unitName: `unit-${index}`,
    command: `run step ${index}`,
    extra: { index, inputs: { sample: `S${index}` }, pad: '' },
  })
  desc.jobStoreID = id
  const size = encodeJob({ ...desc, version: 1, remainingTryCount: 2 }).length
  desc.extra['pad'] = 'p'.repeat(Math.max(0, recordBytes - size))
  return desc
}

/**
 * The job graph of the clean workload; bench/toil/toil_bench.py builds the same one. Jobs 0..R-1 are reachable
 * (job i > 0 is a child of job floor((i - 1) / 10); job 0 is the root), jobs R..count-1 (10%) are unreachable: no
 * job points at them. Every 20th reachable job (i % 20 == 1) has used one try, so clean() resets and rewrites it.
 */
export function cleanGraph(count: number): { parent: (number | undefined)[]; usedTry: Set<number>; unreachable: number } {
  const unreachable = Math.floor(count / 10)
  const reachable = count - unreachable
  const parent = Array.from({ length: count }, (_, i) => (i === 0 || i >= reachable ? undefined : Math.floor((i - 1) / 10)))
  const usedTry = new Set<number>()
  for (let i = 0; i < reachable; i++) if (i % 20 === 1) usedTry.add(i)
  return { parent, usedTry, unreachable }
}
