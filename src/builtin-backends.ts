/** The backends shipped with jobstore, loaded on first use so that only the SDKs in use need installing. */
import { registerLazyBackend } from './open.js'

registerLazyBackend(['file'], () => import('../backends/file/index.js'), 'jobstore')
registerLazyBackend(['azure'], () => import('../backends/azure/index.js'), '@azure/storage-blob @azure/identity')
registerLazyBackend(['s3', 'aws'], () => import('../backends/s3/index.js'), '@aws-sdk/client-s3', ['s3'])
registerLazyBackend(['gs', 'google'], () => import('../backends/gcs/index.js'), '@google-cloud/storage', ['gs'])
