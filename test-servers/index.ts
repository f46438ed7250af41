// Local test servers for the S3, Azure and GCS backends: MinIO, Azurite and fake-gcs-server,
// installed into a cache folder and started on free loopback ports. See README.md.
export { cacheRoot, ensureDelayfs, ensureInstalled, MissingToolError, type InstalledServer, type InstalledServers } from './install.js'
export {
  AWS_TEST_REGION,
  AZURITE_ACCOUNT,
  AZURITE_ACCOUNT_KEY,
  GCS_TEST_PROJECT,
  MINIO_ROOT_PASSWORD,
  MINIO_ROOT_USER,
  startTestServers,
  type RunningServerInfo,
  type StartOptions,
  type TestServers,
} from './servers.js'
export { FuseUnavailableError, mountDelayfs, type DelayfsMount, type DelayfsOptions } from './delayfs.js'
export { SERVER_NAMES, isServerName, serverSpecs, type ServerName, type ServerSpec } from './versions.js'
export {
  FAULT_KINDS,
  STATUS_ANSWERS,
  seededRandom,
  startFaultProxy,
  type FaultKind,
  type FaultProxy,
  type FaultProxyOptions,
  type FaultStats,
  type ServiceFlavor,
  type StatusAnswer,
} from './fault-proxy.js'
