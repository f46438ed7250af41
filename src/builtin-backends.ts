/** The backends shipped with jobstore, loaded on first use so that only the SDKs in use need installing. */
import { registerLazyBackend } from './open.js'

/**
 * `https://<account>.blob.core.windows.net/<container>/<blob>` without a query: loads the Azure backend, whose
 * handler claims such URLs (the same test). With a query (a SAS token) the URL stays with the plain https handler.
 */
const azureBlobUrl = (url: URL): boolean =>
  url.protocol === 'https:' && url.search === '' && /^[a-z0-9]{3,24}\.blob\.core\.windows\.net$/.test(url.hostname)

registerLazyBackend(['file'], () => import('../backends/file/index.js'), 'jobstore')
registerLazyBackend(['memory'], () => import('../backends/memory/index.js'), 'jobstore')
registerLazyBackend(
  ['azure'],
  () => import('../backends/azure/index.js'),
  '@azure/storage-blob @azure/identity',
  ['azure'],
  azureBlobUrl,
)
registerLazyBackend(['s3', 'aws'], () => import('../backends/s3/index.js'), '@aws-sdk/client-s3', ['s3'])
registerLazyBackend(['gs', 'google'], () => import('../backends/gcs/index.js'), '@google-cloud/storage', ['gs'])
