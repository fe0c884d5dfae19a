/**
 * Bring a WebDataset export's shards to the samples that are kept now. After `vlcurate refilter` drops
 * samples, the shards written earlier still hold them; this runs when the export starts (in `vlcurate
 * export` and in a build), after recovery has made the folder agree with the store.
 *
 * Only shards that hold a sample no longer kept are touched. Each is copied, member for member and without
 * reading any source again, into a new shard under a new file index that holds only its kept samples (a
 * shard left with none is simply removed); samples the refilter revived are appended by the export as new
 * samples. Per shard the order is the export's exactly-once protocol:
 *
 * 1. write the new shard to `NAME.tar.tmp` and fsync it (its bytes are checked against the old shard's
 *    recorded sha256 while it is read);
 * 2. in one transaction: record the new shard, move the kept samples to it, forget the old shard, its
 *    dropped samples and their export records;
 * 3. rename the new `.tmp` into place; 4. delete the old file.
 *
 * Killed before 2, the `.tmp` is unrecorded and recovery deletes it (the old shard still stands and is
 * pruned again); killed after 2, recovery renames the recorded `.tmp` and deletes the old, now unrecorded
 * file. Either way the next run ends with every kept sample exactly once.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract } from 'tar-stream';
import type { ExportLedger, ShardRecord } from '../store/stage-ports.js';
import { syncDir } from './durable-fs.js';
import { shardFileName, WebDatasetWriter, type SampleMember, type ShardInfo } from './webdataset-writer.js';

/**
 * A shard removed because nothing in it is kept any more: its record stays (count 0, no sha256) so that
 * its file name, maybe the highest, is never given to another shard; manifests and recovery skip it.
 */
export function isRemoved(record: ShardRecord): boolean {
  return record.sampleCount === 0 && record.sha256 === '';
}

export interface PruneReport {
  /** Shards copied without their dropped samples: old file -> new file. */
  rewritten: { from: string; to: string }[];
  /** Shards removed because none of their samples is kept. */
  removed: string[];
  /** Recorded shards that were missing: forgotten, so their kept samples are written again. */
  missing: string[];
  /** Samples taken out of the shards (no longer kept). */
  dropped: number;
  /** Kept samples the rewritten shards hold. */
  kept: number;
  /** The next free file index. */
  nextIndex: number;
}

export interface PruneHooks {
  /** Called after the transaction of step 2, before the rename (tests simulate a crash there). */
  afterRecord?: (info: ShardInfo) => Promise<void> | void;
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Stream one shard's samples (consecutive members sharing a key), hashing the file's bytes on the way. */
async function copySamples(path: string, onSample: (key: string, members: SampleMember[]) => Promise<void>): Promise<string> {
  const hash = createHash('sha256');
  const tar = extract();
  let key: string | null = null;
  let members: SampleMember[] = [];
  const flush = async () => {
    if (key !== null) await onSample(key, members);
    key = null;
    members = [];
  };
  const done = (async () => {
    for await (const entry of tar) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const name = entry.header.name;
      const dot = name.indexOf('.');
      if (entry.header.type !== 'file' || dot <= 0) continue;
      const memberKey = name.slice(0, dot);
      if (memberKey !== key) await flush();
      key = memberKey;
      members.push({ ext: name.slice(dot + 1), data: Buffer.concat(chunks) });
    }
    await flush();
  })();
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  await Promise.all([pipeline(createReadStream(path), hashing, tar), done]);
  return hash.digest('hex');
}

/**
 * Prune the shards of one export and prefix (`own`: recorded shards by file index) to the kept samples.
 * New shards take file indexes from `nextIndex` on.
 */
export async function pruneShards(params: {
  dir: string;
  prefix: string;
  exportName: string;
  store: ExportLedger;
  own: ReadonlyMap<number, ShardRecord>;
  nextIndex: number;
  hooks?: PruneHooks;
}): Promise<PruneReport> {
  const { dir, prefix, exportName, store, own, hooks } = params;
  const report: PruneReport = { rewritten: [], removed: [], missing: [], dropped: 0, kept: 0, nextIndex: params.nextIndex };
  const keptPerShard = store.keptPerShard(exportName);
  const stale = [...own].filter(([, record]) => (keptPerShard.get(record.shardIndex) ?? 0) < record.sampleCount).sort(([a], [b]) => a - b);
  for (const [fileIndex, record] of stale) {
    const name = shardFileName(prefix, fileIndex);
    const path = join(dir, name);
    const kept = store.keptInShard(exportName, record.shardIndex);
    if (!existsSync(path)) {
      // Nothing to copy from: forget it, so the export writes its kept samples again.
      store.replaceShard(exportName, record.shardIndex, null, []);
      report.missing.push(name);
      continue;
    }
    if (kept.length === 0) {
      store.replaceShard(exportName, record.shardIndex, null, []);
      await rm(path, { force: true });
      await syncDir(dir);
      report.removed.push(name);
      report.dropped += record.sampleCount;
      continue;
    }
    const keep = new Set(kept);
    let sha256 = '';
    // The old file must be what was recorded: a shard changed on disk is not copied into the export.
    const checkSource = () => {
      if (sha256 !== record.sha256) {
        throw new Error(
          `export ${exportName}: ${path} does not match its recorded shard (sha256 ${record.sha256}); ` +
            'it was changed after it was written. Restore it, or start the export over (vlcurate export ... --fresh)',
        );
      }
    };
    const writer = new WebDatasetWriter({
      dir,
      prefix,
      startIndex: report.nextIndex,
      maxCount: kept.length,
      maxSize: Number.MAX_SAFE_INTEGER,
      onShardComplete: async (info, keys) => {
        checkSource();
        store.replaceShard(exportName, record.shardIndex, { path: info.path, sampleCount: info.count, byteLength: info.bytes, sha256: info.sha256 }, keys);
        await hooks?.afterRecord?.(info);
      },
    });
    try {
      try {
        sha256 = await copySamples(path, async (key, members) => {
          if (keep.has(key)) await writer.write({ key, members });
        });
      } catch (err) {
        // A file that cannot be read as a tar: say it changed, when it did.
        sha256 = await sha256File(path);
        checkSource();
        throw err;
      }
      await writer.close();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    if (writer.shards.length > 0) {
      report.nextIndex++;
    } else {
      // None of its kept samples was in the file: forget it, so the export writes them again.
      checkSource();
      store.replaceShard(exportName, record.shardIndex, null, []);
    }
    await rm(path, { force: true });
    await syncDir(dir);
    const written = writer.shards[0];
    report.rewritten.push({ from: name, to: written ? basename(written.path) : '(none)' });
    report.kept += written?.count ?? 0;
    report.dropped += record.sampleCount - kept.length;
  }
  return report;
}
