// Runs npm as a user would, from the tests: outside the repository, with none of the npm_config_* / npm_package_*
// variables that `npm test` puts into the environment (they would point the child npm at this project).
import { spawn } from 'node:child_process'

export interface CommandResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** The environment without what `npm run`/`npm test` adds for its own scripts. */
export function cleanNpmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    const k = key.toLowerCase()
    if (k.startsWith('npm_config_') || k.startsWith('npm_package_') || k.startsWith('npm_lifecycle_')) continue
    if (k === 'init_cwd' || k === 'npm_command' || k === 'npm_execpath' || k === 'npm_node_execpath') continue
    env[key] = value
  }
  return { ...env, NODE_OPTIONS: '', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra }
}

/** Runs `command args` in `cwd` to completion, collecting its output. */
export function run(
  command: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = cleanNpmEnv(),
): Promise<CommandResult> {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** `npm` on this platform (npm.cmd on Windows is not spawnable without a shell; the suite runs on Linux/macOS). */
export const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
