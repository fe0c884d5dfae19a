/**
 * WebDataset shards in object storage, exactly once without rename. Per shard:
 *
 * 1. the writer stages it in a local temporary file (fsynced, sha256 and size known);
 * 2. one atomic PUT (a multipart upload above the part size, which becomes visible only when it completes);
 * 3. one transaction records the shard and its samples (`recordNextShard`);
 * 4. the staged file is deleted.
 *
 * Killed before 3, the object (if the PUT completed) is not recorded and its samples are not exported: on
 * the next start, recovery deletes every object of this export's prefix the run database does not hold,
 * and the samples are written again. A recorded shard whose object is gone (a run database restored from
 * an older snapshot, where a later prune deleted it; or removed by hand) is forgotten, so its kept samples
 * are written again. The prefix carries `-sIofN` under `--shard`, so parts never touch each other's objects.
 */
import type { ExportLedger, ShardRecord } from '../store/stage-ports.js';
import { strangersError } from './export-folder.js';
import { remoteKey, type RemoteTarget } from './export-target.js';
import { isRemoved } from './webdataset-prune.js';
import { shardFileName } from './webdataset-writer.js';

export interface RemoteRecovery {
  /** Objects of this prefix the run database does not hold: deleted. */
  deleted: string[];
  /** Recorded shards with no object: forgotten, their kept samples written again. */
  forgotten: string[];
  /** Index for the next shard: after every recorded shard and every object seen. */
  nextIndex: number;
}

/**
 * Make the objects of one export and prefix agree with the run database (see above). `own`: the recorded
 * shards of this prefix by file index; `indexOf`: the file index of a shard name of this prefix, or null.
 * `claimed`: whether the run database had started this export before; if not, objects of this prefix are
 * another run database's, and the export is refused rather than deleting them.
 */
export async function recoverRemoteShards(params: {
  target: RemoteTarget;
  prefix: string;
  exportName: string;
  store: ExportLedger;
  own: ReadonlyMap<number, ShardRecord>;
  indexOf: (name: string) => number | null;
  claimed: boolean;
}): Promise<RemoteRecovery> {
  const { target, prefix, exportName, store, own, indexOf } = params;
  const report: RemoteRecovery = { deleted: [], forgotten: [], nextIndex: 0 };
  const objects = new Map<number, string>();
  const sizes = new Map<string, number>();
  for await (const object of target.store.list(remoteKey(target, `${prefix}-`))) {
    const name = object.key.slice(target.prefix.length);
    const index = name.includes('/') ? null : indexOf(name);
    if (index === null) continue;
    objects.set(index, name);
    sizes.set(name, object.size);
  }
  if (!params.claimed && objects.size > 0) throw strangersError(exportName, target.url, 'shards', [...objects.values()].sort());
  for (const [index, name] of objects) {
    const record = own.get(index);
    report.nextIndex = Math.max(report.nextIndex, index + 1);
    if (record && !isRemoved(record)) {
      // A recorded shard replaced by other bytes is not this export's any more: stop rather than list it.
      if (sizes.get(name) !== record.byteLength) {
        throw new Error(
          `export ${exportName}: ${target.url}/${name} is ${sizes.get(name)} bytes, recorded as ${record.byteLength}; it was changed after it was written. ` +
            'Restore it, or start the export over (vlcurate export ... --fresh)',
        );
      }
      continue;
    }
    await target.store.delete(remoteKey(target, name));
    report.deleted.push(name);
  }
  for (const [index, record] of own) {
    report.nextIndex = Math.max(report.nextIndex, index + 1);
    if (isRemoved(record) || objects.has(index)) continue;
    store.replaceShard(exportName, record.shardIndex, null, []);
    report.forgotten.push(shardFileName(prefix, index));
  }
  report.deleted.sort();
  report.forgotten.sort();
  return report;
}

/**
 * Take samples no longer kept (after a refilter) out of the remote shards: a shard holding one is forgotten
 * (its record kept, holding nothing, so its name is never reused) and then deleted; its kept samples are
 * written again into new shards by the export. Killed between the two, the object is unrecorded and the
 * next recovery deletes it. (A local folder copies the kept samples instead, `webdataset-prune.ts`; here
 * that would download and upload every such shard.)
 */
export async function pruneRemoteShards(params: {
  target: RemoteTarget;
  prefix: string;
  exportName: string;
  store: ExportLedger;
  own: ReadonlyMap<number, ShardRecord>;
}): Promise<{ removed: string[]; dropped: number; rewritten: number }> {
  const { target, prefix, exportName, store, own } = params;
  const keptPerShard = store.keptPerShard(exportName);
  const report = { removed: [] as string[], dropped: 0, rewritten: 0 };
  for (const [index, record] of [...own].sort(([a], [b]) => a - b)) {
    if (isRemoved(record)) continue;
    const kept = keptPerShard.get(record.shardIndex) ?? 0;
    if (kept >= record.sampleCount) continue;
    store.replaceShard(exportName, record.shardIndex, null, []);
    const name = shardFileName(prefix, index);
    await target.store.delete(remoteKey(target, name));
    report.removed.push(name);
    report.dropped += record.sampleCount - kept;
    report.rewritten += kept;
  }
  return report;
}
