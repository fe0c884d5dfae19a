/**
 * An HTTP(S) server as a read-only object store: keys are paths under a base URL. Ranged reads use `Range`
 * (a server that ignores it and sends the whole object still gives the right bytes: the head is skipped),
 * and `If-Match` keeps a resumed read from splicing two versions of an object.
 */
import { Readable, Transform } from 'node:stream';
import { describeError } from '../core/errors.js';
import { collect, STORAGE_KIND_NOTE, StorageError, storageErrorKindOf, type ObjectInfo, type ObjectStore, type ReadOptions } from '../core/object-store.js';

export class HttpStore implements ObjectStore {
  readonly writable = false;

  /** `base`: the URL keys are relative to, e.g. `https://example.org/` (a trailing '/' is added). */
  constructor(readonly base: string) {
    if (!this.base.endsWith('/')) this.base = `${this.base}/`;
  }

  get name(): string {
    return this.base;
  }

  urlOf(key: string): string {
    return new URL(key.replace(/^\/+/, ''), this.base).href;
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    const url = this.urlOf(key);
    const start = options.start ?? 0;
    const headers: Record<string, string> = {};
    if (start > 0 || options.end !== undefined) headers.range = `bytes=${start}-${options.end ?? ''}`;
    if (options.ifMatch !== undefined) headers['if-match'] = options.ifMatch;
    const response = await this.request(url, 'GET', headers);
    if (!response.body) throw new StorageError('other', `${url}: the server sent no body`);
    const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
    if (response.status === 206 || (start === 0 && options.end === undefined)) return body;
    // The server ignored the range and sent everything: keep only the bytes asked for.
    return body.pipe(sliceStream(start, options.end));
  }

  async readBytes(key: string, options: ReadOptions = {}): Promise<Buffer> {
    return collect(await this.read(key, options));
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const response = await this.request(this.urlOf(key), 'HEAD', {});
      const length = response.headers.get('content-length');
      return { key, size: length === null ? NaN : Number(length), etag: response.headers.get('etag') ?? undefined };
    } catch (err) {
      if (err instanceof StorageError && err.kind === 'missing') return undefined;
      throw err;
    }
  }

  put(key: string): Promise<void> {
    return Promise.reject(new StorageError('unsupported', `${this.urlOf(key)}: HTTP(S) locations are read-only; write to s3:// or a local folder`));
  }

  // eslint-disable-next-line require-yield
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    throw new StorageError('unsupported', `${this.urlOf(prefix)}: an HTTP(S) server cannot be listed; name the files (brace patterns like shard-{000..099}.tar work)`);
  }

  delete(key: string): Promise<void> {
    return Promise.reject(new StorageError('unsupported', `${this.urlOf(key)}: HTTP(S) locations are read-only`));
  }

  private async request(url: string, method: string, headers: Record<string, string>): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(url, { method, headers, redirect: 'follow' });
    } catch (err) {
      throw new StorageError('network', `${url}: ${describeError((err as Error).cause ?? err)}`, { cause: err });
    }
    if (response.ok) return response;
    await response.body?.cancel();
    const what = `${url}: HTTP ${response.status}`;
    const kind = storageErrorKindOf(response.status);
    throw new StorageError(kind, `${what}${STORAGE_KIND_NOTE[kind] ?? ''}`);
  }
}

/** Pass through bytes `start..end` (inclusive) of a stream. */
function sliceStream(start: number, end: number | undefined): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const from = Math.max(0, start - offset);
      const to = end === undefined ? chunk.length : Math.min(chunk.length, end + 1 - offset);
      offset += chunk.length;
      callback(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}
