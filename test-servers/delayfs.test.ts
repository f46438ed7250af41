// delayfs, the FUSE stand-in of `npm run bench`: it mounts, serves the backing folder, and goes away cleanly.
// Needs root and /dev/fuse (as CI here has); elsewhere the first test checks the message that says so instead.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FuseUnavailableError, ensureDelayfs, mountDelayfs } from './index.js'

const FUSE_SUPER_MAGIC = 0x65735546
const fuseHere = existsSync('/dev/fuse') && process.getuid?.() === 0

let dir: string
let binary: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delayfs-test-'))
  binary = await ensureDelayfs()
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('delayfs', () => {
  it('mounts the backing folder through FUSE and unmounts on stop()', async () => {
    const backing = join(dir, 'back-1')
    const mountPoint = join(dir, 'mnt-1')
    if (!fuseHere) {
      await expect(mountDelayfs({ backing, mountPoint, delayMs: 1 })).rejects.toThrow(FuseUnavailableError)
      return
    }
    const mount = await mountDelayfs({ backing, mountPoint, delayMs: 1 })
    let stopped = false
    try {
      expect((await statfs(mountPoint)).type).toBe(FUSE_SUPER_MAGIC)
      await mkdir(join(mountPoint, 'sub'))
      await writeFile(join(mountPoint, 'sub', 'a.txt'), 'through the mount')
      expect(await readFile(join(backing, 'sub', 'a.txt'), 'utf8')).toBe('through the mount')
      await writeFile(join(backing, 'b.txt'), 'in the backing folder')
      expect(await readFile(join(mountPoint, 'b.txt'), 'utf8')).toBe('in the backing folder')
      const summary = await mount.stop()
      stopped = true
      expect(summary).toMatch(/requests served: \d+ \(.*create \d+/)
      expect((await statfs(mountPoint)).type).not.toBe(FUSE_SUPER_MAGIC)
    } finally {
      if (!stopped) await mount.stop()
    }
  })

  it('unmounts itself when its stdin closes (the process that mounted it died)', async () => {
    if (!fuseHere) return expect(fuseHere).toBe(false) // the first test checked the error of this machine
    const backing = join(dir, 'back-2')
    const mountPoint = join(dir, 'mnt-2')
    await mkdir(backing)
    await mkdir(mountPoint)
    const child = spawn(binary, ['-delay=0ms', backing, mountPoint], { stdio: ['pipe', 'pipe', 'pipe'] })
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve))
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()))
    expect((await statfs(mountPoint)).type).toBe(FUSE_SUPER_MAGIC)
    child.stdin.end()
    expect(await closed).toBe(0)
    expect((await statfs(mountPoint)).type).not.toBe(FUSE_SUPER_MAGIC)
  })

  it('says why where FUSE cannot mount (here: run as an unprivileged user)', async () => {
    if (process.getuid?.() !== 0) return expect(fuseHere).toBe(false) // the first test checked this machine's error
    // The cache may sit under /root, which nobody else can enter: a copy of the binary the other user can run.
    const copy = join(dir, 'delayfs')
    await copyFile(binary, copy)
    await mkdir(join(dir, 'back-3'))
    await mkdir(join(dir, 'mnt-3'))
    spawnSync('chmod', ['755', dir, copy])
    const result = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', copy, join(dir, 'back-3'), join(dir, 'mnt-3')], {
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(result.status).toBe(3)
    expect(result.stderr).toMatch(/^delayfs: FUSE cannot mount here: .*(\/dev\/fuse|root)/)
  })
})
