// S3 calls of the console, through the AWS SDK against the page's own origin (path-style).
import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Creds } from './session';

export function makeS3(c: Creds): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint: window.location.origin,
    forcePathStyle: true,
    credentials: { accessKeyId: c.accessKey, secretAccessKey: c.secretKey },
    maxAttempts: 3,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface BucketInfo {
  name: string;
  created?: Date;
}

export interface FileEntry {
  key: string;
  size: number;
  modified?: Date;
  etag?: string;
}

export interface FolderPage {
  folders: string[];
  files: FileEntry[];
  next?: string;
}

export async function listBuckets(s3: S3Client): Promise<BucketInfo[]> {
  const out = await s3.send(new ListBucketsCommand({}));
  return (out.Buckets ?? [])
    .filter((b) => !!b.Name)
    .map((b) => ({ name: b.Name as string, created: b.CreationDate }));
}

export async function createBucket(s3: S3Client, name: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: name }));
}

/** One page of a folder: the sub-folders (common prefixes) and the files directly in it. */
export async function listFolder(
  s3: S3Client,
  bucket: string,
  prefix: string,
  token?: string,
  maxKeys = 200,
): Promise<FolderPage> {
  const out = await s3.send(
    new ListObjectsV2Command({
      Bucket: bucket,
      Prefix: prefix || undefined,
      Delimiter: '/',
      ContinuationToken: token,
      MaxKeys: maxKeys,
    }),
  );
  const folders = (out.CommonPrefixes ?? []).map((p) => p.Prefix ?? '').filter((p) => p && p !== prefix);
  const files = (out.Contents ?? [])
    // the folder's own marker object ("prefix/") is the folder, not a file in it
    .filter((o) => o.Key && o.Key !== prefix)
    .map((o) => ({ key: o.Key as string, size: o.Size ?? 0, modified: o.LastModified, etag: o.ETag }));
  return { folders, files, next: out.IsTruncated ? out.NextContinuationToken : undefined };
}

/** Every key under a prefix (no delimiter), page by page. */
export async function listAllKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
    );
    for (const o of out.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

export async function objectExists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404) return false;
    throw e;
  }
}

function copySource(bucket: string, key: string): string {
  return `${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export async function copyObject(s3: S3Client, bucket: string, from: string, to: string): Promise<void> {
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: copySource(bucket, from) }));
}

export async function deleteObject(s3: S3Client, bucket: string, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

/** Deletes keys in batches of 1000; throws with the first key the server refused. */
export async function deleteKeys(s3: S3Client, bucket: string, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    if (batch.length === 1) {
      await deleteObject(s3, bucket, batch[0]);
      continue;
    }
    const out = await s3.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const failed = out.Errors ?? [];
    if (failed.length) {
      throw new Error(`could not delete ${failed[0].Key}: ${failed[0].Code ?? ''} ${failed[0].Message ?? ''}`.trim());
    }
  }
}

/** An empty "folder/" marker object, so that an empty folder shows in listings. */
export async function createFolderMarker(s3: S3Client, bucket: string, prefix: string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: prefix, Body: new Uint8Array(0) }));
}

/** A presigned GET URL (SigV4 query signature; at most 7 days). */
export async function presignGet(
  s3: S3Client,
  bucket: string,
  key: string,
  expiresIn: number,
  attachmentName?: string,
): Promise<string> {
  const cmd = new GetObjectCommand({
    Bucket: bucket,
    Key: key,
    ResponseContentDisposition: attachmentName
      ? `attachment; filename*=UTF-8''${encodeURIComponent(attachmentName)}`
      : undefined,
  });
  return getSignedUrl(s3, cmd, { expiresIn });
}

/** Copies every object under `fromPrefix` to `toPrefix` and then deletes the originals. */
export async function movePrefix(
  s3: S3Client,
  bucket: string,
  fromPrefix: string,
  toPrefix: string,
  onProgress?: (done: number, total: number) => void,
): Promise<number> {
  const keys = await listAllKeys(s3, bucket, fromPrefix);
  let done = 0;
  onProgress?.(0, keys.length);
  const queue = keys.slice();
  const worker = async () => {
    for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
      await copyObject(s3, bucket, k, toPrefix + k.slice(fromPrefix.length));
      done++;
      onProgress?.(done, keys.length);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await deleteKeys(s3, bucket, keys);
  return keys.length;
}
