/**
 * What one `node:fs` call costs on this machine, the figures behind the file backend's use of the callback API
 * and behind "Reading the misses" in docs/benchmarks.md:
 *
 * 1. reads of 2 KiB files, 32 in flight: `FileHandle` (node:fs/promises), the callback API wrapped in promises,
 *    `fs/promises.readFile`, and synchronous calls (one at a time);
 * 2. one create (open O_EXCL, write 2 KiB, close, link, unlink) at a time, per call: synchronous against the
 *    callback API (every asynchronous call goes through libuv's thread pool);
 * 3. CPU (user + system) per synchronous call of the calls that allocate an inode (a file's create, the digest
 *    sidecar's symlink, a mkdir) and of some that do not (link, readlink, unlink): on ext4 without a journal the
 *    kernel skips every inode deleted in the last minutes when it allocates one (recently_deleted()), so the
 *    first kind costs with the churn of the disk.
 *
 *   npx tsx bench/micro/fs-calls.mts [--count 5000] [--rounds 3] [--dir /tmp]
 */
import fs from 'node:fs'
import { open as openHandle, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { close, fstat, link, open, read, unlink, write } from '../../backends/file/fs-calls.js'

const { values } = parseArgs({ options: { count: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' }, dir: { type: 'string', default: tmpdir() } } })
const count = Number(values.count)
const rounds = Number(values.rounds)
const root = fs.mkdtempSync(join(values.dir, 'jobstore-fs-calls-'))

async function pool(n: number, inFlight: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) await fn(next++)
  }))
}

const record = Buffer.alloc(2048, 97)
const files = join(root, 'files')
fs.mkdirSync(files)
for (let i = 0; i < count; i++) fs.writeFileSync(join(files, String(i)), record)
const readers: Record<string, (path: string) => Promise<unknown>> = {
  'FileHandle (fs/promises)': async (path) => {
    const handle = await openHandle(path, 'r')
    try {
      const { size } = await handle.stat()
      await handle.read(Buffer.allocUnsafe(size), 0, size, 0)
    } finally {
      await handle.close()
    }
  },
  'callback API in promises': async (path) => {
    const fd = await open(path, 'r')
    try {
      const { size } = await fstat(fd)
      await read(fd, Buffer.allocUnsafe(size), 0, size, 0)
    } finally {
      await close(fd)
    }
  },
  'fs/promises readFile': (path) => readFile(path),
  'synchronous calls': async (path) => {
    const fd = fs.openSync(path, 'r')
    try {
      const { size } = fs.fstatSync(fd)
      fs.readSync(fd, Buffer.allocUnsafe(size), 0, size, 0)
    } finally {
      fs.closeSync(fd)
    }
  },
}
console.log(`reads of ${count} files of 2 KiB, 32 in flight (reads/s, ${rounds} rounds)`)
for (const [name, reader] of Object.entries(readers)) {
  const rates: number[] = []
  for (let r = 0; r < rounds; r++) {
    const start = performance.now()
    await pool(count, 32, (i) => reader(join(files, String(i))))
    rates.push(Math.round(count / ((performance.now() - start) / 1000)))
  }
  console.log(`  ${name.padEnd(26)} ${rates.join(' ')}`)
}

const creates = Math.min(count, 3000)
const steps = ['open', 'write', 'close', 'link', 'unlink'] as const
for (const mode of ['synchronous', 'callback API'] as const) {
  const dir = join(root, `create-${mode === 'synchronous' ? 'sync' : 'async'}`)
  fs.mkdirSync(join(dir, 'tmp'), { recursive: true })
  fs.mkdirSync(join(dir, 'jobs'))
  const total = Object.fromEntries(steps.map((s) => [s, 0])) as Record<(typeof steps)[number], number>
  const time = async <T,>(step: (typeof steps)[number], call: () => T | Promise<T>): Promise<T> => {
    const start = performance.now()
    const out = await call()
    total[step] += performance.now() - start
    return out
  }
  for (let i = 0; i < creates; i++) {
    const temp = join(dir, 'tmp', `${i}.tmp`)
    const final = join(dir, 'jobs', String(i))
    if (mode === 'synchronous') {
      const fd = await time('open', () => fs.openSync(temp, 'wx'))
      await time('write', () => fs.writeSync(fd, record))
      await time('close', () => fs.closeSync(fd))
      await time('link', () => fs.linkSync(temp, final))
      await time('unlink', () => fs.unlinkSync(temp))
    } else {
      const fd = await time('open', () => open(temp, 'wx'))
      await time('write', () => write(fd, record))
      await time('close', () => close(fd))
      await time('link', () => link(temp, final))
      await time('unlink', () => unlink(temp))
    }
  }
  console.log(`one create at a time, ${mode}, µs per call: ${steps.map((s) => `${s} ${((total[s] / creates) * 1000).toFixed(0)}`).join(', ')}`)
}

{
  const dir = join(root, 'inodes')
  fs.mkdirSync(dir)
  const n = Math.min(count, 2000)
  const perCall = (call: (i: number) => unknown): string => {
    const start = process.cpuUsage()
    for (let i = 0; i < n; i++) call(i)
    const used = process.cpuUsage(start)
    return `${((used.user + used.system) / n).toFixed(0)}`
  }
  const name = (i: number): string => join(dir, String(i))
  const figures = {
    'create (open O_EXCL + close)': perCall((i) => fs.closeSync(fs.openSync(name(i), 'wx'))),
    'symlink': perCall((i) => fs.symlinkSync('crc32-0123abcd', `${name(i)}~s`)),
    'mkdir': perCall((i) => fs.mkdirSync(`${name(i)}~d`)),
    'link': perCall((i) => fs.linkSync(name(i), `${name(i)}~l`)),
    'readlink': perCall((i) => fs.readlinkSync(`${name(i)}~s`)),
    'unlink': perCall((i) => fs.unlinkSync(`${name(i)}~l`)),
  }
  console.log(`CPU µs per synchronous call (${n} calls): ${Object.entries(figures).map(([k, v]) => `${k} ${v}`).join(', ')}`)
}
fs.rmSync(root, { recursive: true, force: true })
