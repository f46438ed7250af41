// Loads and checks test-servers/versions.json, the single place where server versions are pinned.
// Read at run time (not `import ... with { type: 'json' }`) so it works the same under tsx, vitest and tsc output.
import { readFileSync } from 'node:fs'

export const SERVER_NAMES = ['minio', 'azurite', 'fake-gcs'] as const
export type ServerName = (typeof SERVER_NAMES)[number]

export interface GoServerSpec {
  readonly kind: 'go'
  /** Go module path given to `go install <module>@<version>`. */
  readonly module: string
  readonly version: string
  /** Name of the binary `go install` produces. */
  readonly binary: string
  /** Oldest Go that builds this version (the `go` line of its go.mod). */
  readonly minGo: string
}

export interface NpmServerSpec {
  readonly kind: 'npm'
  readonly package: string
  readonly version: string
  /** Key of the package's `bin` map that we run. */
  readonly bin: string
  /** Oldest Node major this version runs on. */
  readonly minNode: string
}

export type ServerSpec = GoServerSpec | NpmServerSpec

export function isServerName(value: string): value is ServerName {
  return (SERVER_NAMES as readonly string[]).includes(value)
}

const VERSIONS_URL = new URL('./versions.json', import.meta.url)

let cached: Record<ServerName, ServerSpec> | undefined

export function serverSpecs(): Record<ServerName, ServerSpec> {
  if (cached !== undefined) return cached
  const raw: unknown = JSON.parse(readFileSync(VERSIONS_URL, 'utf8'))
  if (typeof raw !== 'object' || raw === null) throw new Error(`${VERSIONS_URL.pathname}: expected an object`)
  const table = raw as Record<string, unknown>
  const specs = {} as Record<ServerName, ServerSpec>
  for (const name of SERVER_NAMES) specs[name] = parseSpec(name, table[name])
  cached = specs
  return specs
}

function parseSpec(name: ServerName, value: unknown): ServerSpec {
  const where = `${VERSIONS_URL.pathname}: "${name}"`
  if (typeof value !== 'object' || value === null) throw new Error(`${where} is missing`)
  const v = value as Record<string, unknown>
  const str = (key: string): string => {
    const s = v[key]
    if (typeof s !== 'string' || s === '') throw new Error(`${where}.${key} must be a non-empty string`)
    return s
  }
  const kind = str('kind')
  if (kind === 'go') {
    return { kind, module: str('module'), version: str('version'), binary: str('binary'), minGo: str('minGo') }
  }
  if (kind === 'npm') {
    return { kind, package: str('package'), version: str('version'), bin: str('bin'), minNode: str('minNode') }
  }
  throw new Error(`${where}.kind must be "go" or "npm", got ${JSON.stringify(kind)}`)
}

/**
 * A Go program kept in this repository (test-servers/<dir>/), built with `go build`: the FUSE stand-in `delayfs`.
 * Not a server: `startTestServers` never starts it; `npm run bench` mounts it (test-servers/delayfs.ts).
 */
export interface GoLocalToolSpec {
  readonly kind: 'go-local'
  /** Folder of its go.mod, relative to test-servers/. */
  readonly dir: string
  readonly binary: string
  /** The library it is built on and the version its go.mod must require (checked before each build). */
  readonly module: string
  readonly version: string
  readonly minGo: string
}

let cachedDelayfs: GoLocalToolSpec | undefined

/** The "delayfs" entry of versions.json. */
export function delayfsSpec(): GoLocalToolSpec {
  if (cachedDelayfs !== undefined) return cachedDelayfs
  const raw: unknown = JSON.parse(readFileSync(VERSIONS_URL, 'utf8'))
  const where = `${VERSIONS_URL.pathname}: "delayfs"`
  const value = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['delayfs'] : undefined
  if (typeof value !== 'object' || value === null) throw new Error(`${where} is missing`)
  const v = value as Record<string, unknown>
  const str = (key: string): string => {
    const s = v[key]
    if (typeof s !== 'string' || s === '') throw new Error(`${where}.${key} must be a non-empty string`)
    return s
  }
  if (str('kind') !== 'go-local') throw new Error(`${where}.kind must be "go-local"`)
  cachedDelayfs = { kind: 'go-local', dir: str('dir'), binary: str('binary'), module: str('module'), version: str('version'), minGo: str('minGo') }
  return cachedDelayfs
}
