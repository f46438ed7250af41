// Vitest global setup: installs and starts MinIO, Azurite and fake-gcs-server once for the whole run, and puts
// their env into process.env before the test workers are forked, so every worker inherits it.
// With JOBSTORE_EXTERNAL_SERVERS=1 it does nothing: the user's env already points at servers they run.
import { SERVER_NAMES, isServerName, startTestServers, type ServerName } from './index.js'

export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  if (process.env['JOBSTORE_EXTERNAL_SERVERS'] === '1') return undefined
  const servers = await startTestServers(namesFromEnv())
  Object.assign(process.env, servers.env)
  // Vitest calls this after the run, whether tests passed or failed.
  return () => servers.stop()
}

/** JOBSTORE_TEST_SERVERS=minio,azurite starts only those (e.g. when working on one backend); default all three. */
function namesFromEnv(): ServerName[] {
  const raw = process.env['JOBSTORE_TEST_SERVERS']
  if (raw === undefined || raw.trim() === '') return [...SERVER_NAMES]
  const names = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const unknown = names.filter((n) => !isServerName(n))
  if (unknown.length > 0) {
    throw new Error(`JOBSTORE_TEST_SERVERS: unknown server(s) ${unknown.join(', ')}; known: ${SERVER_NAMES.join(', ')}`)
  }
  return names.filter(isServerName)
}
