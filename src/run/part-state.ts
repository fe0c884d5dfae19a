/**
 * A part's state on shared storage (`run.state` / `--state`: `s3://bucket/parts/` or a shared folder), so
 * that a part killed on one machine resumes on another with a fresh local disk.
 *
 * SQLite is never opened over the network: the run database stays on the local disk, and consistent
 * snapshots of it (SQLite's online backup API, taken between transactions, so a snapshot holds whole
 * commits only) are uploaded, each replacing the last with one atomic PUT:
 * - every `run.snapshot.seconds` seconds or `run.snapshot.samples` newly recorded samples, whichever comes first;
 * - when an export to object storage has claimed its prefix, before its first object (`ExportContext.checkpoint`);
 * - when the build ends: finished, failed, or stopped by Ctrl-C / SIGTERM (a scheduler's preemption).
 * On start, when the local database is missing, the latest snapshot is downloaded in its place.
 *
 * What a kill costs: the work since the last snapshot is done again (recorded samples, LLM answers: the
 * LLM cache is in the database, so it too holds what the snapshot holds). No sample is exported twice:
 * shards uploaded after the snapshot are not in the restored database, so the export deletes them and
 * writes their samples again (`export/remote-shards.ts`).
 */
import { createReadStream, existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import { fetchObjectToFile } from '../storage/fetch-to-file.js';
import { formatLocation, joinKey, parseLocation } from '../storage/location.js';
import { openLocation } from '../storage/open-store.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import type { Db } from '../store/database.js';
import { backupDatabase, changesSinceOpen } from '../store/database-snapshot.js';
import type { PipelineEvent } from '../core/events.js';

export interface SnapshotPolicy {
  /** Most seconds between snapshots while samples are recorded. */
  seconds: number;
  /** Most newly recorded samples between snapshots. */
  samples: number;
}

export const DEFAULT_SNAPSHOT_POLICY: SnapshotPolicy = { seconds: 300, samples: 10_000 };

/** How often the snapshot policy is checked. */
const TICK_MS = 250;

export class PartState {
  private db: Db | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastAt = Date.now();
  /** Samples the record stage has passed on, as the progress events count them, and at the last snapshot. */
  private recorded = 0;
  private lastRecorded = 0;
  /** The connection's `total_changes()` at the last snapshot. */
  private lastVersion: number | null = null;
  /** Why the last periodic snapshot failed, until one succeeds. */
  private failure: unknown = null;
  /** Snapshots uploaded by this process. */
  taken = 0;

  private constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    /** The object's URL, for messages. */
    readonly url: string,
    private readonly dbPath: string,
    private readonly policy: SnapshotPolicy,
  ) {}

  /**
   * The state of the part whose local run database is `dbPath`, kept under `location` (an s3:// URL or a
   * folder; `field` names the option in errors). The snapshot's name is the database's file name, so the
   * parts of `--shard I/N` (`run-s1of4.db`) share one location.
   */
  static open(location: string, field: string, baseDir: string, dbPath: string, storage: StorageSettings | undefined, policy: SnapshotPolicy): PartState {
    const parsed = parseLocation(location, field, baseDir);
    if (parsed.kind === 'http') throw new ConfigError(`${field}: ${JSON.stringify(location)} is read-only; a part's state goes to s3://BUCKET/PREFIX or a shared folder`);
    const { store, key } = openLocation(parsed, storage);
    const objectKey = joinKey(key, basename(dbPath));
    const url = parsed.kind === 'local' ? join(parsed.path, basename(dbPath)) : formatLocation({ ...parsed, key: objectKey } as typeof parsed);
    return new PartState(store, objectKey, url, dbPath, policy);
  }

  /**
   * Put the latest snapshot where the local database should be, when there is none there (a fresh
   * machine). A local database is newer than any snapshot of it, so it is kept. Returns what happened.
   */
  async restore(): Promise<'local' | 'restored' | 'none'> {
    if (existsSync(this.dbPath)) return 'local';
    const info = await this.store.stat(this.key);
    if (!info) return 'none';
    // A write-ahead log without its database belongs to no snapshot.
    for (const suffix of ['-wal', '-shm', '-journal']) await rm(`${this.dbPath}${suffix}`, { force: true });
    await fetchObjectToFile(this.store, this.key, this.dbPath);
    return 'restored';
  }

  /** Start taking snapshots of `db` (the open local database) by the policy. */
  start(db: Db): void {
    this.db = db;
    this.lastAt = Date.now();
    this.lastVersion = this.totalChanges();
    this.timer = setInterval(() => {
      if (this.running || !this.due()) return;
      this.snapshot().catch((err: unknown) => {
        this.failure = err;
      });
    }, TICK_MS);
    this.timer.unref();
  }

  /** Follow the run's progress events: the record stage's count decides `snapshot.samples`. */
  observe(event: PipelineEvent): void {
    if (event.type !== 'progress' && event.type !== 'run-end') return;
    this.recorded = event.stages.find((s) => s.stage === 'record')?.out ?? this.recorded;
  }

  /** Take a snapshot now (after the one in progress, if any) and upload it. */
  async snapshot(): Promise<void> {
    while (this.running) await this.running.catch(() => undefined);
    if (!this.db || !this.db.open) return;
    this.running = this.upload(this.db);
    try {
      await this.running;
      this.failure = null;
    } finally {
      this.running = null;
    }
  }

  /** Stop the timer and take the last snapshot (the build has ended: finished, failed or interrupted). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.snapshot();
  }

  /** Why periodic snapshots have been failing, or null. */
  get lastFailure(): unknown {
    return this.failure;
  }

  private due(): boolean {
    // Nothing written since the last snapshot: nothing to save.
    if (this.lastVersion === this.totalChanges()) return false;
    return Date.now() - this.lastAt >= this.policy.seconds * 1000 || this.recorded - this.lastRecorded >= this.policy.samples;
  }

  private totalChanges(): number {
    if (!this.db?.open) return 0;
    return changesSinceOpen(this.db);
  }

  private async upload(db: Db): Promise<void> {
    const recorded = this.recorded;
    const version = this.totalChanges();
    const tmp = join(dirname(this.dbPath), `.${basename(this.dbPath)}.snapshot.tmp`);
    try {
      // The online backup copies a consistent state of the database while the build goes on writing.
      await backupDatabase(db, tmp);
      await this.store.put(this.key, createReadStream(tmp, { highWaterMark: 1 << 20 }), { contentType: 'application/vnd.sqlite3' });
    } finally {
      await rm(tmp, { force: true });
    }
    this.lastAt = Date.now();
    this.lastRecorded = recorded;
    this.lastVersion = version;
    this.taken++;
  }
}
