/** S3 locators: `s3://bucket[/prefix]`, and Toil's `aws:region:bucket`. */
import { InvalidArgumentError } from '../../src/errors.js'
import { checkLocatorPrefix } from '../../src/ids.js'

/** What an S3 locator names. */
export interface S3Locator {
  readonly bucket: string
  /** Store prefix without leading or trailing `/`; empty for a store at the bucket's root. */
  readonly prefix: string
  /** Region given by the locator (`aws:region:bucket`), if any. */
  readonly region?: string
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/
const REGION_NAME = /^[a-z]{2}(-[a-z0-9]+)+-\d+$/

/** Throws {@link InvalidArgumentError} unless `bucket` is a valid S3 bucket name. */
export function checkBucketName(bucket: string, locator: string): string {
  if (
    !BUCKET_NAME.test(bucket) ||
    bucket.includes('..') ||
    bucket.includes('.-') ||
    bucket.includes('-.') ||
    /^\d+\.\d+\.\d+\.\d+$/.test(bucket)
  ) {
    throw new InvalidArgumentError(
      `invalid bucket name ${JSON.stringify(bucket)} in locator ${locator}: 3 to 63 characters of [a-z0-9.-], ` +
        'starting and ending with a letter or digit',
    )
  }
  return bucket
}

/**
 * Parses `s3://bucket[/prefix]` or Toil's `aws:region:bucket` (a bucket in that region, no prefix). The prefix is
 * made of plain `[A-Za-z0-9._-]` segments, so it never yields `//`, `.`/`..` segments or a leading `/`.
 */
export function parseS3Locator(locator: string): S3Locator {
  if (typeof locator !== 'string') throw new InvalidArgumentError('the S3 locator must be a string')
  const s3 = /^s3:\/\/([^/]*)(\/.*)?$/is.exec(locator)
  if (s3 !== null) {
    const bucket = checkBucketName(s3[1] ?? '', locator)
    const rest = s3[2] ?? ''
    if (rest.startsWith('//')) throw new InvalidArgumentError(`invalid S3 locator ${locator}: empty prefix segment`)
    return { bucket, prefix: checkLocatorPrefix(rest, locator) }
  }
  const aws = /^aws:([^:]*):([^:]*)$/i.exec(locator)
  if (aws !== null) {
    const region = aws[1] ?? ''
    if (!REGION_NAME.test(region)) {
      throw new InvalidArgumentError(`invalid region ${JSON.stringify(region)} in locator ${locator} (e.g. us-west-2)`)
    }
    return { bucket: checkBucketName(aws[2] ?? '', locator), prefix: '', region }
  }
  throw new InvalidArgumentError(`invalid S3 locator ${JSON.stringify(locator)}: use s3://bucket[/prefix] or aws:region:bucket`)
}
