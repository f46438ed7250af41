// Mounts delayfs (test-servers/delayfs/): a FUSE loopback file system whose every request waits a fixed time, the
// stand-in for a shared file system in `npm run bench`. See docs/benchmarks.md, "The shared-file-system stand-in".
import { spawn, spawnSync } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import { ensureDelayfs } from './install.js'
import { OutputTail, commandLine } from './util.js'

/** delayfs cannot mount here (no /dev/fuse, not root, a container without the FUSE device): the message says why. */
export class FuseUnavailableError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'FuseUnavailableError'
  }
}

export interface DelayfsOptions {
  /** Where the files really are (created if missing). */
  readonly backing: string
  /** Where the delayed view of them appears (created if missing). */
  readonly mountPoint: string
  /** Time each request waits before it is served, in milliseconds. */
  readonly delayMs: number
  /** How long the kernel may cache a lookup / attributes, in milliseconds (delayfs defaults: 1000 each). */
  readonly entryTimeoutMs?: number
  readonly attrTimeoutMs?: number
  /** How long mounting may take (default 15 s). */
  readonly startTimeoutMs?: number
}

export interface DelayfsMount {
  readonly backing: string
  readonly mountPoint: string
  readonly delayMs: number
  readonly pid: number
  /** Unmounts and waits for delayfs to exit; returns what it printed last (the number of requests served). */
  stop(): Promise<string>
}

const ms = (n: number): string => `${n}ms`

/**
 * Builds delayfs if needed and mounts it. Rejects with FuseUnavailableError where FUSE cannot mount. The mount
 * goes when stop() is called, when delayfs gets SIGINT/SIGTERM/SIGHUP, or when this process dies (delayfs watches
 * its stdin, a pipe from us).
 */
export async function mountDelayfs(options: DelayfsOptions): Promise<DelayfsMount> {
  const binary = await ensureDelayfs()
  await mkdir(options.backing, { recursive: true })
  await mkdir(options.mountPoint, { recursive: true })
  const args = [`-delay=${ms(options.delayMs)}`]
  if (options.entryTimeoutMs !== undefined) args.push(`-entry-timeout=${ms(options.entryTimeoutMs)}`)
  if (options.attrTimeoutMs !== undefined) args.push(`-attr-timeout=${ms(options.attrTimeoutMs)}`)
  args.push(options.backing, options.mountPoint)
  // Its own process group: a Ctrl-C in the terminal reaches us, and we unmount in order (stop()), rather than
  // delayfs going away under a cell that still has files open.
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true })
  child.unref()
  const output = new OutputTail()
  let stdout = ''
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  child.stderr.on('data', (chunk: Buffer) => output.push(chunk))
  const mounted = await new Promise<boolean>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`delayfs did not mount within ${options.startTimeoutMs ?? 15_000} ms: ${commandLine(binary, args)}\n${output.lines()}`))
    }, options.startTimeoutMs ?? 15_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      if (stdout.includes('\n')) {
        clearTimeout(timer)
        resolve(true)
      }
    })
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    void exited.then(() => {
      clearTimeout(timer)
      resolve(false)
    })
  })
  if (!mounted) {
    const code = await exited
    const tail = output.lines(10)
    // Exit code 3: delayfs found FUSE unusable (its message says why) or mount(2) refused.
    if (code === 3) throw new FuseUnavailableError(tail.trim().replace(/^delayfs: /, ''))
    throw new Error(`delayfs exited with ${code} before mounting: ${commandLine(binary, args)}\n${tail}`)
  }
  child.stdout.resume()
  let stopped: Promise<string> | undefined
  return {
    backing: options.backing,
    mountPoint: options.mountPoint,
    delayMs: options.delayMs,
    pid: child.pid as number,
    stop: () => {
      stopped ??= (async () => {
        child.stdin.end()
        child.kill('SIGTERM')
        // A timer that keeps the event loop alive: the child is unref'd, and nothing else may be left to wait on.
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), 10_000)))
        const outcome = await Promise.race([exited, timeout])
        clearTimeout(timer)
        if (outcome === 'timeout') {
          child.kill('SIGKILL')
          // A killed FUSE daemon leaves its mount behind ("Transport endpoint is not connected"): detach it.
          spawnSync(binary, ['-unmount', options.mountPoint])
        }
        return output.lines(2).trim()
      })()
      return stopped
    },
  }
}
