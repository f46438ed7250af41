/**
 * Keeps credentials out of everything the CLI prints. Locators and URLs given on the command line may carry
 * user info (`s3://key:secret@bucket`) or signed query strings (`https://…?sig=…`); messages from backends and
 * from Node may quote them, or paths derived from them. Every line the CLI prints (but the raw bytes of `cat`)
 * goes through {@link Redactor.redact}.
 */
import { MASK, maskUrlSecrets, redactLocator } from '../redact.js'

/** Query values shorter than this are not searched for in text: they would mask ordinary words. */
const MIN_SECRET_LENGTH = 6
/** The same for user names and passwords, which are credentials whatever their length. */
const MIN_USERINFO_LENGTH = 3
/** Environment variables whose values are credentials (or hold some, like a connection string). */
const SECRET_ENV_NAME = /(SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|CONNECTION_STRING|ACCOUNT_KEY|ACCESS_KEY|_SAS|PRIVATE_KEY|API_KEY|STORAGE_KEY)/i
/** Environment variable values shorter than this are not treated as secrets (flags such as `1` or `true`). */
const MIN_ENV_SECRET_LENGTH = 8

export class Redactor {
  readonly #secrets = new Set<string>()

  /** Starts with the credentials found in `env` (AWS secret keys, Azure connection strings and keys...). */
  constructor(env: NodeJS.ProcessEnv = process.env) {
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined || value.length < MIN_ENV_SECRET_LENGTH || !SECRET_ENV_NAME.test(name)) continue
      this.#add(value)
      // A connection string: its key and signature parts on their own too.
      for (const part of value.split(';')) {
        const eq = part.indexOf('=')
        if (eq > 0 && /key|signature|sas|secret|password/i.test(part.slice(0, eq))) this.#add(part.slice(eq + 1))
      }
    }
  }

  #add(secret: string, minLength = MIN_SECRET_LENGTH): void {
    if (secret.length >= minLength) this.#secrets.add(secret)
    try {
      const decoded = decodeURIComponent(secret)
      if (decoded !== secret && decoded.length >= minLength) this.#secrets.add(decoded)
    } catch {
      // not percent-encoded
    }
  }

  /**
   * Remembers the credentials in a command-line argument (a locator or a URL): its user name and password, its
   * query string and each query value, so that they are masked wherever they show up, even inside paths.
   */
  addArgument(argument: string): void {
    // User info in something that is not a valid URL (`file://user:pw@host/x`) is a credential all the same.
    const userinfo = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)@/.exec(argument)?.[1]
    if (userinfo !== undefined) {
      this.#add(userinfo, MIN_USERINFO_LENGTH)
      for (const part of userinfo.split(':')) this.#add(part, MIN_USERINFO_LENGTH)
    }
    let url: URL
    try {
      url = new URL(argument)
    } catch {
      return
    }
    if (url.username !== '') this.#add(url.username, MIN_USERINFO_LENGTH)
    if (url.password !== '') this.#add(url.password, MIN_USERINFO_LENGTH)
    if (url.search !== '') {
      // The raw query as typed (URL normalises some characters).
      const q = argument.indexOf('?')
      if (q >= 0) this.#add(argument.slice(q + 1).replace(/#.*$/, ''))
      this.#add(url.search.slice(1))
      for (const [, value] of url.searchParams) this.#add(value)
    }
  }

  /** A locator or URL fit for display: user info and query string masked (see `redactLocator`), known secrets too. */
  locator(locator: string): string {
    return this.redact(redactLocator(locator))
  }

  /** Masks known secrets, user info and query strings of URLs, and keys of connection strings in `text`. */
  redact(text: string): string {
    let out = text
    // Longest first, so that a secret containing another is masked whole.
    for (const secret of [...this.#secrets].sort((a, b) => b.length - a.length)) out = out.split(secret).join(MASK)
    return maskUrlSecrets(out)
  }

  /** Redacts every string in a JSON-like value (keys included). */
  redactDeep<T>(value: T): T {
    if (typeof value === 'string') return this.redact(value) as T
    if (Array.isArray(value)) return value.map((v: unknown) => this.redactDeep(v)) as T
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [this.redact(k), this.redactDeep(v)]),
      ) as T
    }
    return value
  }
}
