import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import tarStream from 'tar-stream';
import { isValidKey, KEY_CHARACTERS } from '../core/sample.js';
import { markWriting, uniqueTmpPath } from '../core/temp-file.js';
import { FileExistsError, renameNoReplace, syncDir } from './durable-fs.js';
import { fileStem } from './file-name.js';

/**
 * Streaming WebDataset shard writer. Samples go into POSIX ustar archives, one sample's members one after
 * another and sorted by name, with fixed metadata so that the same samples always give the same bytes:
 *
 * - mtime is {@link SHARD_MTIME} (2000-01-01T00:00:00Z; not epoch 0, which some tools flag as implausible),
 * - mode 0644, uid/gid 0, empty uname/gname, no end-of-archive padding beyond tar's two zero blocks.
 * - member names are `KEY.ext`, a key too long for a file name shortened with a hash (`file-name.ts`), so
 *   an unpacked shard fits any file system; `KEY.json` keeps the full key.
 *
 * A shard is written to `NAME.PID.RANDOM.tmp` (`core/temp-file.ts`: no two writers share a temporary name, and
 * recovery can tell a live writer's file from a dead one's). Finishing it flushes and fsyncs the file,
 * computes its sha256 and size, awaits `onShardComplete(info, keys)`, and only then renames it to the final
 * name, so a final name always means a complete shard that the hook has seen. The rename never replaces an
 * existing file: a final name is never reused.
 */

/** Modification time stamped on every member. */
export const SHARD_MTIME = new Date(Date.UTC(2000, 0, 1));

/** Default width of the zero-padded shard index in file names (`wds-000042.tar`). */
const INDEX_DIGITS = 6;
const BLOCK = 512;
/** tar-stream ends an archive with two zero blocks. */
const END_OF_ARCHIVE = 2 * BLOCK;
/** Bytes gathered before one write to disk. */
const WRITE_CHUNK = 1 << 20;

/** Extensions may hold dots (`input_ids.npy`); readers split the name at its first dot. */
const EXT_PATTERN = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

export interface SampleMember {
  /** Extension without the leading dot: `jpg`, `txt`, `json`, `input_ids.npy`. The member is `key.ext`. */
  ext: string;
  data: Uint8Array;
}

export interface WebDatasetSample {
  /** A valid key (`isValidKey`: letters, marks, digits, `_`, `-`; no dots: readers split member names at the first dot). */
  key: string;
  members: readonly SampleMember[];
}

export interface ShardInfo {
  /** Index in the file name. */
  index: number;
  /** File name, e.g. `wds-000003.tar`. */
  name: string;
  /** Final path (where the shard is once renamed). */
  path: string;
  /** Path it was written to before the rename. */
  tmpPath: string;
  /** Samples in the shard. */
  count: number;
  bytes: number;
  /** Lowercase hex sha256 of the whole file. */
  sha256: string;
}

export interface WebDatasetWriterOptions {
  /** Folder the shards go to; created when missing. */
  dir: string;
  /** Shards are named `{prefix}-{index:06d}.tar`. */
  prefix: string;
  /** Index of the first shard this writer creates. Default 0. */
  startIndex?: number;
  /** Most samples in one shard. */
  maxCount: number;
  /**
   * Most bytes in one shard (the whole file, headers and padding included). A single sample bigger than this
   * gets a shard of its own.
   */
  maxSize: number;
  /**
   * Called once a shard's `.tmp` file is complete and fsynced, before it is renamed. It may return another
   * file index for the final name (the store picks one no other shard has). If it throws, the `.tmp` file
   * stays where it is, the writer stops, and the error propagates to the caller.
   */
  onShardComplete?: (info: ShardInfo, keys: readonly string[]) => Promise<number | void> | number | void;
  /**
   * Delete each finished shard's `.tmp` file after `onShardComplete` instead of renaming it: the hook put
   * the shard somewhere else (object storage), and this folder is only where it was staged.
   */
  discardFinished?: boolean;
}

/** Shard file name for a prefix and index. */
export function shardFileName(prefix: string, index: number): string {
  return `${prefix}-${String(index).padStart(INDEX_DIGITS, '0')}.tar`;
}

export function assertValidKey(key: string): void {
  if (!isValidKey(key)) {
    throw new Error(`WebDataset key ${JSON.stringify(key)} is invalid: keys hold only ${KEY_CHARACTERS} (NFC)`);
  }
}

const roundUp = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;

/** Length of tar-stream's pax record `LEN path=NAME\n`, where LEN counts its own digits. */
function paxRecordLength(name: string): number {
  const body = Buffer.byteLength(` path=${name}\n`);
  let digits = String(body).length;
  if (body + digits >= 10 ** digits) digits++;
  return body + digits;
}

/**
 * Bytes a member takes in the archive: header + padded data. tar-stream writes a pax header (the name as
 * UTF-8 in a `path` record) when the name is not ASCII or exceeds the ustar field's 100 bytes.
 */
function memberBytes(name: string, size: number): number {
  const bytes = Buffer.byteLength(name);
  const header = bytes === name.length && bytes <= 100 ? BLOCK : BLOCK + roundUp(paxRecordLength(name)) + BLOCK;
  return header + roundUp(size);
}

interface PreparedSample {
  key: string;
  members: { name: string; data: Uint8Array }[];
  bytes: number;
}

/** Validate a sample and lay out its members in name order; `bytes` is its exact size in the archive. */
function prepare(sample: WebDatasetSample): PreparedSample {
  assertValidKey(sample.key);
  const seen = new Set<string>();
  const members = sample.members.map((member) => {
    if (!EXT_PATTERN.test(member.ext)) {
      throw new Error(`sample ${sample.key}: member extension ${JSON.stringify(member.ext)} is invalid`);
    }
    if (seen.has(member.ext)) throw new Error(`sample ${sample.key}: member extension "${member.ext}" appears twice`);
    seen.add(member.ext);
    return { name: `${fileStem(sample.key)}.${member.ext}`, data: member.data };
  });
  if (members.length === 0) throw new Error(`sample ${sample.key}: has no members`);
  members.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const bytes = members.reduce((sum, m) => sum + memberBytes(m.name, m.data.byteLength), 0);
  return { key: sample.key, members, bytes };
}

/** One shard being written: a tar-stream pack drained into a file handle, hashing on the way. */
class OpenShard {
  readonly keys: string[] = [];
  /** Bytes the archive will have once finished (members so far + end-of-archive blocks). */
  plannedBytes = END_OF_ARCHIVE;
  private readonly pack = tarStream.pack();
  private readonly hash: Hash = createHash('sha256');
  private written = 0;
  private readonly drained: Promise<void>;

  private constructor(
    readonly index: number,
    readonly name: string,
    readonly path: string,
    readonly tmpPath: string,
    private readonly handle: FileHandle,
    /** Tell recovery that this process no longer writes `tmpPath` (renamed, or left for recovery). */
    readonly doneWriting: () => void,
  ) {
    this.drained = this.drain();
    // Errors surface through `add`/`finish`; keep Node from reporting them as unhandled meanwhile.
    this.drained.catch(() => undefined);
  }

  static async create(dir: string, prefix: string, index: number): Promise<OpenShard> {
    const name = shardFileName(prefix, index);
    const path = join(dir, name);
    const tmpPath = uniqueTmpPath(path);
    // Marked before it exists, so that recovery in this process never takes it for a dead writer's.
    const doneWriting = markWriting(tmpPath);
    try {
      // 'wx': a name that exists is never written into.
      const handle = await open(tmpPath, 'wx', 0o644);
      return new OpenShard(index, name, path, tmpPath, handle, doneWriting);
    } catch (err) {
      doneWriting();
      throw err;
    }
  }

  private async drain(): Promise<void> {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const chunks = pending;
      pending = [];
      pendingBytes = 0;
      await this.handle.writev(chunks);
    };
    try {
      for await (const chunk of this.pack as AsyncIterable<Buffer>) {
        this.hash.update(chunk);
        this.written += chunk.byteLength;
        pending.push(chunk);
        pendingBytes += chunk.byteLength;
        if (pendingBytes >= WRITE_CHUNK) await flush();
      }
      await flush();
    } catch (err) {
      this.pack.destroy(err as Error);
      throw err;
    }
  }

  async add(sample: PreparedSample): Promise<void> {
    for (const member of sample.members) {
      const data = Buffer.from(member.data.buffer, member.data.byteOffset, member.data.byteLength);
      await new Promise<void>((resolve, reject) => {
        this.pack.entry(
          { name: member.name, size: data.byteLength, mode: 0o644, mtime: SHARD_MTIME, uid: 0, gid: 0, type: 'file' },
          data,
          (err) => (err ? reject(err) : resolve()),
        );
      });
    }
    this.keys.push(sample.key);
    this.plannedBytes += sample.bytes;
  }

  /** End the archive, write everything out, fsync and close. The file stays at `tmpPath`. */
  async finish(): Promise<ShardInfo> {
    try {
      this.pack.finalize();
      await this.drained;
      await this.handle.sync();
    } finally {
      await this.handle.close();
    }
    if (this.written !== this.plannedBytes) {
      throw new Error(`shard ${this.name}: wrote ${this.written} bytes, expected ${this.plannedBytes}`);
    }
    return {
      index: this.index,
      name: this.name,
      path: this.path,
      tmpPath: this.tmpPath,
      count: this.keys.length,
      bytes: this.written,
      sha256: this.hash.digest('hex'),
    };
  }

  /** Stop without finishing; the partial `.tmp` stays on disk (recovery deletes it). */
  async abandon(): Promise<void> {
    this.pack.destroy(new Error('shard abandoned'));
    await this.drained.catch(() => undefined);
    await this.handle.close().catch(() => undefined);
    this.doneWriting();
  }
}

export class WebDatasetWriter {
  private readonly options: WebDatasetWriterOptions;
  private nextIndex: number;
  private current: OpenShard | null = null;
  private readonly finished: ShardInfo[] = [];
  private closed = false;
  private broken: unknown = null;
  private dirReady = false;

  constructor(options: WebDatasetWriterOptions) {
    const { maxCount, maxSize, startIndex = 0 } = options;
    if (!Number.isInteger(maxCount) || maxCount < 1) {
      throw new RangeError(`Expected \`maxCount\` to be an integer from 1 and up, got ${maxCount}`);
    }
    if (!Number.isInteger(maxSize) || maxSize < 1) {
      throw new RangeError(`Expected \`maxSize\` to be a whole number of bytes from 1 and up, got ${maxSize}`);
    }
    if (!Number.isInteger(startIndex) || startIndex < 0) {
      throw new RangeError(`Expected \`startIndex\` to be an integer from 0 and up, got ${startIndex}`);
    }
    this.options = options;
    this.nextIndex = startIndex;
  }

  /** Shards finished (and renamed) so far, in order. */
  get shards(): readonly ShardInfo[] {
    return this.finished;
  }

  /** Keys in the shard being written, not yet finished. */
  get pendingKeys(): readonly string[] {
    return this.current?.keys ?? [];
  }

  /**
   * Append one sample. Finishes the current shard first when adding the sample would exceed `maxCount`
   * samples or `maxSize` bytes. Throws, naming the key, when the key or a member extension is invalid.
   */
  async write(sample: WebDatasetSample): Promise<void> {
    this.assertUsable();
    const prepared = prepare(sample);
    const open = this.current;
    if (
      open &&
      (open.keys.length + 1 > this.options.maxCount || open.plannedBytes + prepared.bytes > this.options.maxSize)
    ) {
      await this.finishCurrent();
    }
    await this.guard(async () => {
      this.current ??= await this.openNext();
      await this.current.add(prepared);
    });
  }

  /** Finish the partial shard, if any, and stop. Returns every shard this writer finished. */
  async close(): Promise<readonly ShardInfo[]> {
    this.assertUsable();
    if (this.current) await this.finishCurrent();
    this.closed = true;
    return this.finished;
  }

  /** Stop without finishing the partial shard: its `.tmp` file stays for recovery to delete. */
  async abort(): Promise<void> {
    this.closed = true;
    const open = this.current;
    this.current = null;
    if (open) await open.abandon();
  }

  private assertUsable(): void {
    if (this.broken) throw new Error('WebDataset writer failed earlier', { cause: this.broken });
    if (this.closed) throw new Error('WebDataset writer is closed');
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.broken = err;
      const open = this.current;
      this.current = null;
      if (open) await open.abandon();
      throw err;
    }
  }

  private async openNext(): Promise<OpenShard> {
    if (!this.dirReady) {
      await mkdir(this.options.dir, { recursive: true });
      this.dirReady = true;
    }
    return OpenShard.create(this.options.dir, this.options.prefix, this.nextIndex++);
  }

  private async finishCurrent(): Promise<void> {
    const open = this.current;
    if (!open) return;
    this.current = null;
    try {
      let info = await open.finish();
      const index = await this.options.onShardComplete?.(info, [...open.keys]);
      if (typeof index === 'number' && index !== info.index) {
        const name = shardFileName(this.options.prefix, index);
        info = { ...info, index, name, path: join(this.options.dir, name) };
        this.nextIndex = Math.max(this.nextIndex, index + 1);
      }
      if (this.options.discardFinished) {
        await rm(info.tmpPath, { force: true });
        this.finished.push(info);
        return;
      }
      try {
        await renameNoReplace(info.tmpPath, info.path);
      } catch (err) {
        if (!(err instanceof FileExistsError)) throw err;
        throw new Error(
          `cannot move the finished shard ${info.tmpPath} into place: ${info.path} exists (another process writes shards of ` +
            'this name into this folder?); it was not replaced',
          { cause: err },
        );
      }
      await syncDir(this.options.dir);
      this.finished.push(info);
    } catch (err) {
      this.broken = err;
      throw err;
    } finally {
      open.doneWriting();
    }
  }
}
