/**
 * The `jobstore` command line: commander wiring, common options, error → exit code mapping. The commands live in
 * `commands/`; `main.ts` runs this with the process's streams and signals.
 */
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Command, CommanderError, InvalidArgumentError as CommanderInvalidArgument, Option } from 'commander'
import { CommandContext, type CliIo, type CommonOptions } from './context.js'
import { CLI_ERROR_CODES, EXIT, EXIT_CODE_BY_ERROR_CODE, exitCodeFor, usageError, type ExitCode } from './exit-codes.js'
import { Output } from './output.js'
import { Redactor } from './redact.js'
import { escapeKeepingNewlines, escapeUserStrings } from './terminal-safe.js'
import { cleanCommand, destroyCommand, initCommand, statusCommand } from './commands/store.js'
import { jobsCommand, showCommand } from './commands/jobs.js'
import { GRAPH_FORMATS, graphCommand } from './commands/graph.js'
import { catCommand, exportCommand, filesCommand, importCommand, type TransferTimeouts } from './commands/files.js'
import { logsCommand, parseSince } from './commands/logs.js'
import { copyCommand } from './commands/copy.js'
import { verifyCommand } from './commands/verify.js'

const LOCATOR_HELP =
  'job store locator: file:/abs/path, file:./rel or a bare path; s3://bucket[/prefix]; azure://account/container[/prefix]; gs://bucket[/prefix]'

/** The package's version, from the package.json above this file (in `src/cli/` or `dist/src/cli/`). */
function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'jobstore' && pkg.version !== undefined) return pkg.version
    } catch {
      // not here: one folder up
    }
    dir = dirname(dir)
  }
  return '0.0.0'
}

function positiveInteger(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new CommanderInvalidArgument('expected a positive integer')
  return n
}

function nonNegativeInteger(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new CommanderInvalidArgument('expected a non-negative integer')
  return n
}

function positiveNumber(value: string): number {
  const n = Number(value)
  if (!(Number.isFinite(n) && n > 0)) throw new CommanderInvalidArgument('expected a positive number')
  return n
}

function nonNegativeNumber(value: string): number {
  const n = Number(value)
  if (!(Number.isFinite(n) && n >= 0)) throw new CommanderInvalidArgument('expected a non-negative number')
  return n
}

/** `--connect-timeout`, `--idle-timeout`, `--max-retry-time` (seconds) as the library's millisecond options. */
function transferTimeouts(o: Record<string, unknown>): TransferTimeouts {
  const ms = (name: string): number | undefined => (o[name] === undefined ? undefined : Math.round((o[name] as number) * 1000))
  const connect = ms('connectTimeout')
  const idle = ms('idleTimeout')
  const retry = ms('maxRetryTime')
  return {
    ...(connect !== undefined ? { connectTimeoutMs: Math.max(connect, 1) } : {}),
    ...(idle !== undefined ? { idleTimeoutMs: Math.max(idle, 1) } : {}),
    ...(retry !== undefined ? { maxRetryTimeMs: retry } : {}),
  }
}

/** Adds the network timeout options of `import` and `export`. */
function withTransferTimeouts(cmd: Command, what: string): Command {
  return cmd
    .addOption(
      new Option('--connect-timeout <seconds>', `give up on a connection (TCP and TLS) to the ${what} after this long (default 30)`).argParser(
        positiveNumber,
      ),
    )
    .addOption(
      new Option(
        '--idle-timeout <seconds>',
        `fail when the ${what} sends nothing for this long while an answer or more of the body is awaited; a slow but steady transfer never does (default 60)`,
      ).argParser(positiveNumber),
    )
    .addOption(
      new Option('--max-retry-time <seconds>', 'begin no new attempt this long after the first (0: no retries; default 120)').argParser(
        nonNegativeNumber,
      ),
    )
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')]
}

/** What each exit code means, in short (the --help text; docs/cli.md says more). */
const EXIT_MEANINGS: Readonly<Record<ExitCode, string>> = {
  [EXIT.OK]: 'ok',
  [EXIT.GENERIC]: 'other error (I/O, backend, not confirmed)',
  [EXIT.USAGE]: 'usage: unknown command or option, invalid or ambiguous argument, ID, locator or URL',
  [EXIT.NOT_FOUND]: 'not found: no such job store, job or file',
  [EXIT.EXISTS]: 'exists: a job store, other data or the export destination is already there',
  [EXIT.CONCURRENT_MODIFICATION]: 'concurrent modification',
  [EXIT.INTEGRITY]: 'integrity: verify found problems, bytes or records damaged',
  [EXIT.ENCRYPTION]: 'encryption: missing or wrong key',
  [EXIT.UNSUPPORTED]: 'unsupported: backend SDK not installed, operation not supported',
  [EXIT.INTERRUPTED]: 'interrupted (SIGINT, SIGTERM)',
}

/** The exit codes with the error codes that give each (those of the library, then the CLI's own). */
export const EXIT_CODE_HELP = `
Exit codes:
${Object.values(EXIT)
  .map((exit) => {
    const codes = [...Object.entries(EXIT_CODE_BY_ERROR_CODE), ...Object.entries(CLI_ERROR_CODES)]
      .filter(([, e]) => e === exit)
      .map(([code]) => code)
    return `  ${String(exit).padEnd(4)} ${EXIT_MEANINGS[exit]}${codes.length > 0 ? ` (${codes.join(', ')})` : ''}`
  })
  .join('\n')}`

export interface RunOptions {
  readonly signal: AbortSignal
  readonly env: NodeJS.ProcessEnv
}

/** Runs the CLI on `argv` (without `node` and the script); resolves with the exit code. */
export async function run(argv: readonly string[], io: CliIo, options: RunOptions): Promise<number> {
  const redactor = new Redactor(options.env)
  for (const arg of argv) {
    redactor.addArgument(arg)
    const eq = arg.indexOf('=')
    if (arg.startsWith('--') && eq > 0) redactor.addArgument(arg.slice(eq + 1))
  }
  // The parser's messages quote arguments (`unknown command '…'`, an option's value): those are escaped whole, the
  // rest of its text (its own newlines) kept, before redaction; see terminal-safe.ts.
  const userInput = argv.flatMap((arg) => {
    const eq = arg.indexOf('=')
    return arg.startsWith('--') && eq > 0 ? [arg, arg.slice(eq + 1)] : [arg]
  })
  const forTerminal = (text: string, redact = true): string => {
    const escaped = escapeUserStrings(text, userInput)
    return escapeKeepingNewlines(redact ? redactor.redact(escaped) : escaped)
  }
  // `--json` before or after the command (commander reads the program's options anywhere but after `--`). Known
  // before parsing, so that the parser's own errors are JSON too.
  const wantsJson = (() => {
    for (const a of argv) {
      if (a === '--') return false
      if (a === '--json') return true
    }
    return false
  })()
  // Replaced by the command's own output once its options are parsed.
  let out = new Output({ json: wantsJson, redactor, stdout: io.stdout, stderr: io.stderr })

  const program = new Command('jobstore')
  program
    .description('Inspect and operate jobstore job stores (file, S3, Azure Blob, Google Cloud Storage).')
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void io.stdout.write(forTerminal(text, false)), // help and version: no secrets
      // With --json the parser's messages (and the help after one) become one JSON error, written below.
      writeErr: (text) => void (wantsJson ? undefined : io.stderr.write(forTerminal(text))),
      outputError: (text, write) => write(text), // write is writeErr
    })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `${EXIT_CODE_HELP}\n\nSee docs/cli.md for every command with examples.`)
    .option('--json', 'print results as JSON on stdout and errors as JSON on stderr (before or after the command)')

  /** The common options a command takes: each only where it acts. */
  interface CommandFlags {
    /** `--json` for the result (every command but `cat`, whose data is raw bytes; its errors are JSON with it). */
    readonly json?: boolean
    /** `--concurrency`: the command does bulk work (many round trips). */
    readonly concurrency?: boolean
    /** `--no-progress`: the command draws progress bars. */
    readonly progress?: boolean
  }

  /** Adds a command with the common options; its action gets a context and the parsed arguments. */
  const command = (
    nameAndArgs: string,
    description: string,
    example: string,
    action: (ctx: CommandContext, args: (string | undefined)[], opts: Record<string, unknown>) => Promise<void>,
    flags: boolean | CommandFlags = true,
  ): Command => {
    const { json = true, concurrency = true, progress = true } = typeof flags === 'boolean' ? { json: flags } : flags
    const cmd = program.command(nameAndArgs).description(description)
    // Listed here for the command's help; the program's own --json reads it wherever it is given.
    cmd.option('--json', json ? 'print the result as JSON on stdout (and errors as JSON on stderr)' : 'print errors as JSON on stderr')
    if (concurrency) {
      cmd.addOption(new Option('--concurrency <n>', 'round trips in flight at once for bulk work').argParser(positiveInteger).default(32))
    }
    if (progress) cmd.option('--no-progress', 'never draw progress bars (drawn only when stderr is a terminal)')
    cmd
      .addHelpText('after', `\nExample:\n${example
        .split('\n')
        .map((line) => `  $ ${line}`)
        .join('\n')}`)
      .action(async (...params: unknown[]) => {
        const self = params[params.length - 1] as Command
        const opts = self.optsWithGlobals<Record<string, unknown>>()
        const ctx = new CommandContext(io, options.signal, redactor, opts as CommonOptions)
        out = ctx.out
        try {
          await action(ctx, self.processedArgs as (string | undefined)[], opts)
        } finally {
          await ctx.closeStores()
        }
      })
    return cmd
  }
  const arg = (args: (string | undefined)[], i: number): string => args[i] as string

  command('init', 'create a new job store', 'jobstore init file:./my-store --retry-count 2', (ctx, args, o) =>
    initCommand(ctx, arg(args, 0), {
      ...(o['retryCount'] !== undefined ? { retryCount: o['retryCount'] as number } : {}),
      ...(o['encryptionKeyPath'] !== undefined ? { encryptionKeyPath: o['encryptionKeyPath'] as string } : {}),
      ...(o['publicUrlExpiry'] !== undefined ? { publicUrlExpiry: o['publicUrlExpiry'] as number } : {}),
    }),
    { concurrency: false, progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .addOption(new Option('--retry-count <n>', 'retries per job (a job gets n + 1 tries; default 1)').argParser(nonNegativeInteger))
    .option(
      '--encryption-key-path <path>',
      'key file (a regular file of ≥ 32 bytes) for protected shared files, checked now and stored as an absolute path (a relative one counts from the working folder); every worker needs it at that path',
    )
    .addOption(new Option('--public-url-expiry <seconds>', 'lifetime of public URLs (default 3600)').argParser(positiveInteger))

  command(
    'status',
    'workflow ID, root job, jobs by state, files and bytes, shared files, log messages',
    'jobstore status file:./example-store\njobstore status s3://my-bucket/wf --json',
    (ctx, args) => statusCommand(ctx, arg(args, 0)),
    { progress: false },
  ).argument('<locator>', LOCATOR_HELP)

  command(
    'jobs',
    'list jobs (state: extra.state when the engine sets it, else failed when no tries are left, else unknown)',
    'jobstore jobs file:./example-store --state failed,running\njobstore jobs file:./example-store --name count --json\njobstore jobs file:./example-store --tree',
    (ctx, args, o) =>
      jobsCommand(ctx, arg(args, 0), {
        ...(o['name'] !== undefined ? { name: o['name'] as string } : {}),
        ...(o['state'] !== undefined ? { state: o['state'] as string[] } : {}),
        ...(o['tree'] === true ? { tree: true } : {}),
      }),
    { progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .option('--name <text>', 'only jobs whose name (job name, unit name or display name) contains text')
    .option('--state <state>', 'only jobs in this state (repeat, or separate by commas)', collect)
    .option('--tree', 'the job graph as an indented tree from the root job (children, services, follow-ons); a job reached twice is shown once, then referred to')

  command(
    'graph',
    'the job graph (children, follow-ons, services) as Graphviz DOT or as an SVG picture, on stdout',
    'jobstore graph file:./example-store | dot -Tpng > jobs.png\njobstore graph file:./example-store --format svg > jobs.svg',
    (ctx, args, o) => graphCommand(ctx, arg(args, 0), { format: o['format'] as string }),
    false,
  )
    .argument('<locator>', LOCATOR_HELP)
    .addOption(new Option('--format <format>', 'dot (Graphviz) or svg (a picture, laid out by jobstore)').choices(GRAPH_FORMATS).default('dot'))

  command('show', 'show one job description', 'jobstore show file:./example-store 2p0c1x4zq8m6yb3h5n7r9t1v3w', (ctx, args) =>
    showCommand(ctx, arg(args, 0), arg(args, 1)),
    { concurrency: false, progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .argument('<jobID>', 'the job ID, or a start of it that no other job ID has')

  command(
    'clean',
    "repair the store as an engine does on restart (Toil's clean): delete unreachable jobs, clear files and jobs to delete, drop dangling successors, reset tries, remove leftovers of interrupted writes; prints what it did",
    'jobstore clean file:./example-store\njobstore clean file:./example-store --orphan-files --json',
    (ctx, args, o) =>
      cleanCommand(ctx, arg(args, 0), {
        ...(o['leftoverAge'] !== undefined ? { leftoverAge: o['leftoverAge'] as number } : {}),
        ...(o['orphanFiles'] === true ? { orphanFiles: true } : {}),
      }),
    { progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .addOption(
      new Option('--leftover-age <seconds>', 'keep leftovers of interrupted writes younger than this (default 900)').argParser(
        nonNegativeInteger,
      ),
    )
    .option('--orphan-files', 'also delete cleanup files whose owner job does not exist (verify reports them as orphan-file)')

  command(
    'destroy',
    'delete the job store and everything in it (asks for confirmation on a terminal; --yes for scripts)',
    'jobstore destroy file:./example-store --yes',
    (ctx, args, o) => destroyCommand(ctx, arg(args, 0), { yes: o['yes'] === true }),
    { concurrency: false, progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .option('-y, --yes', 'do not ask for confirmation')

  command(
    'files',
    'list the files (ID, size, owner job, cleanup flag) and the shared files: the IDs cat and export take',
    'jobstore files file:./example-store\njobstore files file:./example-store --json',
    (ctx, args) => filesCommand(ctx, arg(args, 0)),
  ).argument('<locator>', LOCATOR_HELP)

  const importCmd = command(
    'import',
    'import a file by URL (file:, http(s):, s3:..., or a local path); prints the new file ID',
    'jobstore import file:./example-store ./input.txt\njobstore import file:./example-store https://example.org/data.csv --shared data.csv',
    (ctx, args, o) =>
      importCommand(ctx, arg(args, 0), arg(args, 1), {
        ...(o['shared'] !== undefined ? { shared: o['shared'] as string } : {}),
        ...(o['job'] !== undefined ? { job: o['job'] as string } : {}),
        ...(o['hardlink'] === true ? { hardlink: true } : {}),
        ...(o['symlink'] === true ? { symlink: true } : {}),
        ...transferTimeouts(o),
      }),
    { concurrency: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .argument('<url>', 'what to import: a URL or a local path')
    .option('--shared <name>', 'store it as this shared file instead of a new file')
    .option('--job <jobID>', 'the job the new file belongs to (it must exist; a unique start of its ID will do)')
    .addOption(new Option('--hardlink', 'hard link a local file instead of copying it (file backend)').conflicts('symlink'))
    .addOption(new Option('--symlink', 'symlink a local file instead of copying it (file backend)').conflicts('hardlink'))
  withTransferTimeouts(importCmd, 'server (http, https)')

  const exportCmd = command(
    'export',
    'export a file to a URL (file:, s3:..., or a local path); a local destination must be a regular file or absent (a folder, device, FIFO or socket is refused: name the file to write)',
    'jobstore export file:./example-store _/k/3f6v2n0a8x1c5b7d9e2g4h6j8k-input.txt ./out.txt',
    (ctx, args, o) =>
      exportCommand(ctx, arg(args, 0), arg(args, 1), arg(args, 2), transferTimeouts(o), { noClobber: o['clobber'] === false }),
    { concurrency: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .argument('<fileID>', 'the file ID, or a start of it that no other file ID has')
    .argument('<url>', 'where to write it: a URL or a local path (a file, not a folder)')
    .option('--no-clobber', 'refuse to replace a local file that exists (exit 4, DESTINATION_EXISTS)')
  withTransferTimeouts(exportCmd, 'destination, for URL handlers that talk to it themselves')

  command(
    'cat',
    'write a file (or with --shared, a shared file) to stdout, verifying its size and checksum',
    'jobstore cat file:./example-store --shared rootJobReturnValue\njobstore cat file:./example-store _/k/3f6v2n0a8x1c5b7d9e2g4h6j8k-input.txt | head',
    (ctx, args, o) =>
      catCommand(ctx, arg(args, 0), args[1], o['shared'] !== undefined ? { shared: o['shared'] as string } : {}),
    { json: false, concurrency: false, progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .argument('[fileID]', 'the file ID, or a start of it that no other file ID has (or use --shared)')
    .option('--shared <name>', 'the shared file to write')

  command(
    'logs',
    'print the unread stats and log messages in the order they were written, without taking them from the engine (--consume marks them read, as their one reader); --all also shows read ones; --follow ends with exit 3 if the store is destroyed',
    'jobstore logs file:./example-store --all --since 2h\njobstore logs file:./example-store --follow --json --job 2p0c1x4zq8m6yb3h5n7r9t1v3w',
    (ctx, args, o) =>
      logsCommand(ctx, arg(args, 0), {
        all: o['all'] === true,
        follow: o['follow'] === true,
        consume: o['consume'] === true,
        ...(o['interval'] !== undefined ? { interval: o['interval'] as number } : {}),
        ...(o['job'] !== undefined ? { job: o['job'] as string } : {}),
        ...(o['since'] !== undefined ? { since: o['since'] as number } : {}),
      }),
    { progress: false },
  )
    .argument('<locator>', LOCATOR_HELP)
    .option('--all', 'also replay the messages read before')
    .option('-f, --follow', 'keep printing new messages until interrupted (Ctrl-C)')
    .option('--consume', 'mark the messages read, so that the engine does not get them (each message goes to one reader)')
    .addOption(new Option('--interval <seconds>', 'seconds between polls with --follow').argParser(positiveNumber).default(1))
    .option('--job <jobID>', 'only messages that name this job ID (as the example engine writes them: {"job": ID, …})')
    .addOption(
      new Option('--since <time>', 'only messages written since: an ISO 8601 time (2026-12-02T09:30:00Z) or a duration back (90s, 10m, 2h, 1d)').argParser(
        (value) => {
          try {
            return parseSince(value)
          } catch (err) {
            throw new CommanderInvalidArgument((err as Error).message)
          }
        },
      ),
    )

  command(
    'copy',
    'copy a whole store (jobs, files, shared files, log messages) to another locator, on any backend; resumable (run it again after an interruption), verified by SHA-256 at the end',
    'jobstore copy file:./example-store s3://my-bucket/example\njobstore copy file:./example-store file:./backup --json',
    (ctx, args) => copyCommand(ctx, arg(args, 0), arg(args, 1)),
  )
    .argument('<srcLocator>', 'the store to copy')
    .argument('<dstLocator>', 'where to copy it (empty, or an interrupted copy of the same store)')

  command(
    'verify',
    'check the integrity of a store: job records parse, referenced jobs and files exist, every file reads back whole, no orphans; exits 6 and lists the problems',
    'jobstore verify file:./example-store\njobstore verify gs://my-bucket/wf --json',
    (ctx, args) => verifyCommand(ctx, arg(args, 0)),
  ).argument('<locator>', LOCATOR_HELP)

  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true })
      return EXIT.USAGE
    }
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.OK
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed its message (or the help, or the version: exit code 0) already, but with --json.
      if (err.exitCode === 0) return EXIT.OK
      if (wantsJson) {
        const message =
          err.code === 'commander.help' ? 'no command given (jobstore --help lists the commands)' : err.message.replace(/^error: /, '')
        out.error(usageError(message), EXIT.USAGE)
      }
      return EXIT.USAGE
    }
    const code = exitCodeFor(err)
    if (code !== EXIT.OK) out.error(err, code)
    return code
  }
}

export { EXIT, EXIT_CODE_BY_ERROR_CODE }
