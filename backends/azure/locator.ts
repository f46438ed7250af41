/** Azure locators (`azure://account/container[/prefix]`) and the blob URLs the backend claims. */
import { InvalidArgumentError } from '../../src/errors.js'
import { checkLocatorPrefix } from '../../src/ids.js'

/**
 * `https://<account>.blob.core.windows.net/<container>/<blob>` without a query: a blob the Azure URL handler
 * claims from the plain https handler. With a query (a SAS token, a snapshot) the URL stays a plain https URL.
 */
export function isAzureBlobHttpsUrl(url: URL): boolean {
  return url.protocol === 'https:' && url.search === '' && /^[a-z0-9]{3,24}\.blob\.core\.windows\.net$/.test(url.hostname)
}

/** The parts of an `azure://account/container[/prefix]` locator. */
export interface AzureLocation {
  readonly account: string
  readonly container: string
  /** Without leading or trailing `/`; empty when the store owns the whole container. */
  readonly prefix: string
}

/**
 * Parses `azure://account/container[/prefix]`. The account must be a storage account name (3-24 lowercase
 * letters and digits), the container a container name (3-63 lowercase letters, digits and single hyphens), the
 * prefix plain segments (`[A-Za-z0-9._-]`, no `.`/`..`, no empty segments). No user info, query or fragment.
 */
export function parseAzureLocator(locator: string): AzureLocation {
  const match = /^azure:\/\/([^/]*)\/([^/]*)(?:\/(.*))?$/i.exec(locator)
  if (match === null) {
    throw new InvalidArgumentError(`invalid Azure locator ${JSON.stringify(locator)}: expected azure://account/container[/prefix]`)
  }
  const [, account = '', container = '', rest = ''] = match
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new InvalidArgumentError(
      `invalid storage account ${JSON.stringify(account)} in locator ${locator}: 3 to 24 lowercase letters and digits`,
    )
  }
  if (!/^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/.test(container)) {
    throw new InvalidArgumentError(
      `invalid container ${JSON.stringify(container)} in locator ${locator}: 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit`,
    )
  }
  return { account, container, prefix: checkLocatorPrefix(rest, locator) }
}
