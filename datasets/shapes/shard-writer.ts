/**
 * WebDataset shards the way img2dataset writes them: `{prefix}-000000.tar`, ... with each sample's
 * members consecutive and in sorted order, a fixed mtime and owner so shards are reproducible, and a new
 * shard every `shardSize` samples. Each shard is written under a temporary name and renamed when complete.
 */
import { createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tarStream from 'tar-stream';
import { TEMP_SUFFIX } from './atomic-write.js';

/** mtime of every member: the Unix epoch. */
const FIXED_MTIME = new Date(0);

export interface ShardMember {
  /** Extension after the key, without the dot: `jpg`, `txt`, `json`. */
  ext: string;
  data: Buffer;
}

interface OpenShard {
  path: string;
  pack: tarStream.Pack;
  done: Promise<void>;
  samples: number;
}

export class ShardWriter {
  private current: OpenShard | null = null;
  private readonly written: string[] = [];

  constructor(
    private readonly dir: string,
    private readonly prefix: string,
    private readonly shardSize: number,
  ) {}

  /** Add one sample; its members are written consecutively, sorted by name. */
  async add(key: string, members: readonly ShardMember[]): Promise<void> {
    if (this.current && this.current.samples >= this.shardSize) await this.closeCurrent();
    const shard = this.current ?? this.open();
    const sorted = members.map((m) => ({ name: `${key}.${m.ext}`, data: m.data })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const member of sorted) {
      await new Promise<void>((resolve, reject) => {
        shard.pack.entry(
          { name: member.name, size: member.data.length, mtime: FIXED_MTIME, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', type: 'file' },
          member.data,
          (err) => (err ? reject(err) : resolve()),
        );
      });
    }
    shard.samples += 1;
  }

  /** Finish the last shard; returns the paths of all shards written, in order. */
  async close(): Promise<string[]> {
    await this.closeCurrent();
    return this.written.slice();
  }

  private open(): OpenShard {
    const name = `${this.prefix}-${String(this.written.length).padStart(6, '0')}.tar`;
    const path = join(this.dir, name);
    const pack = tarStream.pack();
    const done = pipeline(pack, createWriteStream(path + TEMP_SUFFIX));
    done.catch(() => undefined);
    this.current = { path, pack, done, samples: 0 };
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const shard = this.current;
    if (!shard) return;
    this.current = null;
    shard.pack.finalize();
    await shard.done;
    await rename(shard.path + TEMP_SUFFIX, shard.path);
    this.written.push(shard.path);
  }
}
