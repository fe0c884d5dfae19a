/**
 * A folder as an object store: keys are relative paths. `put` writes a temporary file of this process
 * (`core/temp-file.ts`), fsyncs it and renames it into place, so readers never see half an object.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeError } from '../core/errors.js';
import { markWriting, parseTmpName, uniqueTmpPath } from '../core/temp-file.js';
import { collect, StorageError, type ObjectInfo, type ObjectStore, type ReadOptions } from '../core/object-store.js';

export class LocalStore implements ObjectStore {
  readonly writable = true;
  readonly root: string;
  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get name(): string {
    return this.root;
  }

  async read(key: string, options: ReadOptions = {}): Promise<Readable> {
    const file = this.pathOf(key);
    const info = await this.stat(key);
    if (!info) throw new StorageError('missing', `${file} does not exist`);
    if (options.ifMatch !== undefined && options.ifMatch !== info.etag) throw new StorageError('changed', `${file} changed while it was read`);
    return createReadStream(file, { start: options.start ?? 0, end: options.end, highWaterMark: 256 * 1024 });
  }

  async readBytes(key: string, options: ReadOptions = {}): Promise<Buffer> {
    return collect(await this.read(key, options));
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const info = await stat(this.pathOf(key));
      if (!info.isFile()) return undefined;
      return { key, size: info.size, etag: `${info.size}-${Math.trunc(info.mtimeMs * 1000)}` };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw new StorageError('other', `cannot read ${this.pathOf(key)}: ${describeError(err)}`, { cause: err });
    }
  }

  async put(key: string, body: Buffer | Readable): Promise<void> {
    const file = this.pathOf(key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = uniqueTmpPath(file);
    const done = markWriting(tmp);
    try {
      await pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, createWriteStream(tmp));
      const handle = await open(tmp, 'r+');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      // A failure of the body's own source (a download that broke) keeps its kind.
      if (err instanceof StorageError) throw err;
      throw new StorageError('other', `cannot write ${file}: ${describeError(err)}`, { cause: err });
    } finally {
      done();
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk only the folder the prefix reaches into; keys are compared as '/'-joined strings.
    const slash = prefix.lastIndexOf('/');
    const start = slash < 0 ? '' : prefix.slice(0, slash);
    const keys: string[] = [];
    await this.walk(start, keys);
    for (const key of keys.filter((k) => k.startsWith(prefix)).sort()) {
      const info = await this.stat(key);
      if (info) yield info;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  private async walk(dir: string, into: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(this.pathOf(dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const key = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) await this.walk(key, into);
      else if (entry.isFile() && !parseTmpName(entry.name)) into.push(key);
    }
  }

  /** The file of `key`; a key that would leave the root is refused. */
  private pathOf(key: string): string {
    const file = path.resolve(this.root, ...key.split('/'));
    if (file !== this.root && !file.startsWith(this.root.endsWith(path.sep) ? this.root : this.root + path.sep)) {
      throw new StorageError('other', `the key ${JSON.stringify(key)} leaves the folder ${this.root}`);
    }
    return file;
  }
}
