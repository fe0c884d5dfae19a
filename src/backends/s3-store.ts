/**
 * S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Google Cloud Storage's interoperability
 * endpoint) through the AWS SDK for JavaScript v3: the only importer of `@aws-sdk/*`. Credentials come the
 * way every AWS SDK finds them (environment, shared config and profiles, web identity, instance roles);
 * endpoint and region may be overridden by the recipe.
 */
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { describeError } from '../core/errors.js';
import { collect, STORAGE_KIND_NOTE, StorageError, storageErrorKindOf, type ObjectInfo, type ObjectStore, type ReadOptions } from '../core/object-store.js';

// vlcurate supports Node 20 and pins an SDK release that does; its warning about later releases is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3Connection {
  /** e.g. `http://127.0.0.1:9000`; undefined: AWS, or the SDK's `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. */
  endpoint: string | undefined;
  /** undefined: the SDK's chain (`AWS_REGION`, the profile), else `us-east-1`. */
  region: string | undefined;
  /** Path-style addressing (`endpoint/bucket/key`), which MinIO and most self-hosted stores need. */
  forcePathStyle: boolean;
  /** A named profile of the shared config files; undefined: `AWS_PROFILE` or `default`. */
  profile: string | undefined;
  /** Objects larger than this are uploaded in parts of this size (bytes, at least 5 MiB by S3's rules). */
  partSize: number;
}

const clients = new Map<string, S3Client>();

/** One client per connection setting, shared by every store of a process (it pools its sockets). */
function clientFor(connection: S3Connection): S3Client {
  const id = JSON.stringify(connection);
  let client = clients.get(id);
  if (!client) {
    const endpoint = connection.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    const config: S3ClientConfig = {
      region: connection.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: connection.forcePathStyle,
      ...(connection.endpoint !== undefined ? { endpoint: connection.endpoint } : {}),
      ...(connection.profile !== undefined ? { profile: connection.profile } : {}),
    };
    // Stores other than AWS reject the checksum trailers newer SDKs add by default; send them only when required.
    if (endpoint !== undefined) {
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
      config.responseChecksumValidation = 'WHEN_REQUIRED';
    }
    client = new S3Client(config);
    clients.set(id, client);
  }
  return client;
}

export class S3Store implements ObjectStore {
  readonly writable = true;
  private readonly client: S3Client;

  constructor(
    readonly bucket: string,
    private readonly connection: S3Connection,
  ) {
    this.client = clientFor(connection);
  }

  get name(): string {
    return `s3://${this.bucket}`;
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    const range = options.start !== undefined || options.end !== undefined ? `bytes=${options.start ?? 0}-${options.end ?? ''}` : undefined;
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, IfMatch: options.ifMatch }));
      // Some S3-compatible stores ignore If-Match; the answer's own ETag says which version came.
      if (options.ifMatch !== undefined && response.ETag !== undefined && response.ETag !== options.ifMatch) {
        (response.Body as Readable).destroy();
        throw new StorageError('changed', `s3://${this.bucket}/${key}${STORAGE_KIND_NOTE.changed}`);
      }
      return response.Body as Readable;
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw this.storageError(key, err);
    }
  }

  async readBytes(key: string, options: ReadOptions = {}): Promise<Buffer> {
    return collect(await this.read(key, options));
  }

  /** Undefined for a missing object, and also for a missing bucket (a HEAD answer has no body to tell them apart). */
  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { key, size: head.ContentLength ?? 0, etag: head.ETag };
    } catch (err) {
      const error = this.storageError(key, err);
      if (error.kind === 'missing') return undefined;
      throw error;
    }
  }

  async put(key: string, body: Buffer | Readable, options: { contentType?: string } = {}): Promise<void> {
    try {
      if (Buffer.isBuffer(body) && body.length <= this.connection.partSize) {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: options.contentType }));
        return;
      }
      // A multipart upload becomes visible only when it completes, whole; a failed one is aborted.
      const upload = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key: key, Body: body, ContentType: options.contentType },
        partSize: this.connection.partSize,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      throw this.storageError(key, err);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (err) {
        throw this.storageError(prefix, err);
      }
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield { key: object.Key, size: object.Size ?? 0, etag: object.ETag };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const error = this.storageError(key, err);
      if (error.kind !== 'missing' || isMissingBucket(err)) throw error;
    }
  }

  /** The SDK's error as a StorageError saying what kind of failure it is and where. */
  private storageError(key: string, err: unknown): StorageError {
    const where = `s3://${this.bucket}/${key}`;
    if (err instanceof S3ServiceException) {
      const status = err.$metadata.httpStatusCode;
      const what = `${where}: ${err.name}${err.message && err.message !== err.name ? ` (${err.message})` : ''}`;
      if (isMissingBucket(err)) return new StorageError('missing', `${what}: no such bucket`, { cause: err });
      const kind = err.name === 'NoSuchKey' || err.name === 'NotFound' ? 'missing' : storageErrorKindOf(status);
      const note = kind === 'denied' ? ': check the credentials and the bucket policy' : (STORAGE_KIND_NOTE[kind] ?? '');
      return new StorageError(kind, `${what}${note}`, { cause: err });
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const name = (err as Error | undefined)?.name;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EPIPE' || name === 'TimeoutError' || code === 'ENOTFOUND') {
      return new StorageError('network', `${where}: ${describeError(err)}`, { cause: err });
    }
    if (name === 'CredentialsProviderError') return new StorageError('denied', `${where}: no credentials found (${describeError(err)}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role`, { cause: err });
    return new StorageError('other', `${where}: ${describeError(err)}`, { cause: err });
  }
}

function isMissingBucket(err: unknown): boolean {
  return err instanceof S3ServiceException && err.name === 'NoSuchBucket';
}
