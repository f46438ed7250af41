/** Running a child process to completion, for the benchmark driver (bench/run.ts, bench/toil.ts). */
import { spawn } from 'node:child_process'

export interface Exec {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `command` and collects its output; with `echo`, its stderr also goes to ours as it comes. */
export function exec(
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; echo?: boolean } = {},
): Promise<Exec> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (options.echo) process.stderr.write(d)
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
