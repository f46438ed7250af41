/**
 * The core's entries in an object's metadata: the executable flag, the write token (see `PutOptions.writeToken`)
 * and the core's digest of a file. Every cloud backend stores them as user metadata of the object; each keeps the
 * names and values it has always stored (stores written by earlier versions stay readable), described by a
 * {@link MetadataFormat}, and encodes and decodes them here.
 */
/** How one backend names and spells the core's metadata entries. */
export interface MetadataFormat {
  /** Name of the executable flag. */
  readonly executable: string
  /** The flag's value on an executable file, and on one that is not (undefined: the entry is left out). */
  readonly executableValues: { readonly yes: string; readonly no?: string }
  /** Name of the write token. */
  readonly writeToken: string
  /** Name of the core's digest (base64 CRC32, see FILE_DIGEST_ALGORITHM). */
  readonly digest: string
}

/** The entries a write stores; undefined ones are left out (to add entries to others, such as a late digest). */
export interface CoreMetadata {
  /** The flag, stored in `executableValues` (false: `no`, when the format has one). */
  readonly executable?: boolean | undefined
  readonly writeToken?: string | undefined
  /** The core's digest of the body, when known as the metadata is sent. */
  readonly digest?: string | undefined
}

/** The metadata entries of `entries` in `format`. */
export function encodeMetadata(format: MetadataFormat, entries: CoreMetadata): Record<string, string> {
  const metadata: Record<string, string> = {}
  const flag = entries.executable === undefined ? undefined : entries.executable ? format.executableValues.yes : format.executableValues.no
  if (flag !== undefined) metadata[format.executable] = flag
  if (entries.writeToken !== undefined) metadata[format.writeToken] = entries.writeToken
  if (entries.digest !== undefined) metadata[format.digest] = entries.digest
  return metadata
}

/**
 * The executable flag and write token of an object's metadata (`ObjectInfo.executable` and `writeToken`). A flag
 * of any other value is false; an empty token is none. The digest is read by digestFromMetadata (it may be in a
 * sidecar).
 */
export function decodeMetadata(
  format: MetadataFormat,
  metadata: Readonly<Record<string, unknown>> | null | undefined,
): { executable: boolean; writeToken?: string } {
  const token = metadata?.[format.writeToken]
  return {
    executable: metadata?.[format.executable] === format.executableValues.yes,
    ...(typeof token === 'string' && token !== '' ? { writeToken: token } : {}),
  }
}
