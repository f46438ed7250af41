/**
 * Locators and URLs fit to show: user info and query strings (signed URLs, SAS tokens) masked. Used wherever the
 * library hands a locator to someone else (the `jobstore:operation` tracing channel, see tracing.ts) and by the
 * CLI's redactor (src/cli/redact.ts), which adds the secrets it knows from the command line and the environment.
 */
import { redactUrl } from './errors.js'

export const MASK = '***'

const URL_WITH_USERINFO = /\b([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)[^\s/@'"]+@/g
const URL_WITH_QUERY = /\b([a-zA-Z][a-zA-Z0-9+.-]*:[^\s?'"]*)\?[^\s'"]*/g
const CONNECTION_STRING_SECRET = /\b(AccountKey|SharedAccessSignature|SharedAccessKey|sig|password)=[^;\s'"&]+/gi

/** Does the text look like it carries credentials in user info or a query string? */
function hasUrlSecrets(text: string): boolean {
  try {
    const url = new URL(text)
    return url.username !== '' || url.password !== '' || url.search !== ''
  } catch {
    return false
  }
}

/** Masks user info and query strings of URLs, and keys of connection strings, wherever they are in `text`. */
export function maskUrlSecrets(text: string): string {
  return text
    .replace(URL_WITH_USERINFO, `$1${MASK}@`)
    .replace(URL_WITH_QUERY, '$1?…')
    .replace(CONNECTION_STRING_SECRET, `$1=${MASK}`)
}

/** A locator or URL fit for display: user info and query string masked. */
export function redactLocator(locator: string): string {
  if (!hasUrlSecrets(locator)) return maskUrlSecrets(locator)
  // `scheme://…` locators and URLs through redactUrl; `file:./rel?…` keeps its form (a URL parser would make it
  // `file:///rel`), with the same masking.
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(locator)) return maskUrlSecrets(redactUrl(locator))
  const q = locator.indexOf('?')
  return maskUrlSecrets(q >= 0 ? `${locator.slice(0, q)}?…` : locator)
}
