// `npm run servers [-- --install-only] [-- minio azurite fake-gcs]`
// Installs the test servers, starts them, prints `export VAR=...` lines on stdout (so `eval "$(...)"` or
// copy-paste works in another shell), and keeps them running until Ctrl-C. Progress goes to stderr.
import { SERVER_NAMES, ensureInstalled, isServerName, startTestServers, type ServerName } from './index.js'
import { shellQuote } from './util.js'

const USAGE = `usage: npm run servers -- [--install-only] [${SERVER_NAMES.join('|')} ...]

  Installs (first time: builds) and starts the local test servers on free loopback ports,
  prints export lines for their env on stdout, and runs until Ctrl-C.

  --install-only   only install/build into the cache folder, then exit (CI can run this ahead)
  -h, --help       this text

  Servers: ${SERVER_NAMES.join(', ')} (default: all). Cache: $JOBSTORE_SERVERS_CACHE or
  \${XDG_CACHE_HOME:-~/.cache}/jobstore-test-servers. See test-servers/README.md.
`

async function main(argv: readonly string[]): Promise<number> {
  let installOnly = false
  const names: ServerName[] = []
  for (const arg of argv) {
    if (arg === '--install-only') installOnly = true
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE)
      return 0
    } else if (isServerName(arg)) names.push(arg)
    else {
      process.stderr.write(`unknown argument: ${arg}\n\n${USAGE}`)
      return 2
    }
  }
  const wanted = names.length > 0 ? names : [...SERVER_NAMES]

  // Install first with default signal handling: Ctrl-C during a long build just ends everything.
  const installed = await ensureInstalled(wanted)
  if (installOnly) {
    for (const name of wanted) {
      const inst = installed[name]
      if (inst !== undefined) process.stderr.write(`${name} ${inst.version}: ${inst.dir}\n`)
    }
    return 0
  }

  // Handle the signals ourselves (before starting) so the library leaves the orderly shutdown to us.
  let onStop: (signal: NodeJS.Signals) => void = () => {}
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (onStop = resolve))
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, onStop)
  // The children are unref'd; this keeps us alive until a signal arrives.
  const keepAlive = setInterval(() => {}, 1 << 30)

  try {
    const servers = await startTestServers(wanted)
    for (const [key, value] of Object.entries(servers.env)) process.stdout.write(`export ${key}=${shellQuote(value)}\n`)
    for (const s of servers.servers) process.stderr.write(`${s.name} ${s.version}: ${s.url} (pid ${s.pid})\n`)
    process.stderr.write('test servers running; press Ctrl-C to stop\n')
    const signal = await stopRequested
    process.stderr.write(`\n${signal}: stopping test servers ...\n`)
    await servers.stop()
    process.stderr.write('stopped\n')
    return 0
  } finally {
    clearInterval(keepAlive)
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  },
)
