/** The backends shipped with jobstore, loaded on first use so that only the SDKs in use need installing. */
import { registerLazyBackend } from './open.js'

registerLazyBackend(['file'], () => import('../backends/file/index.js'), 'jobstore')
