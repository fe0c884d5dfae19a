import type { z } from 'zod';
import type { ShardSpec } from '../core/shard.js';
import type { Stage } from '../core/stage.js';
import type { ExportLedger } from '../store/stage-ports.js';
import type { StorageSettings } from '../storage/storage-settings.js';
import type { ExportableSample } from './webdataset-sample.js';

/** What every export needs from the run. */
export interface ExportContext {
  /** Where finished shards and exported keys are recorded; the source of truth for resume. */
  readonly store: ExportLedger;
  /** Relative `out` paths resolve against this folder (the recipe's folder). */
  readonly baseDir: string;
  /** This process's `--shard I/N`; with N > 1 file names carry it so processes never collide. */
  readonly shard: ShardSpec;
  /** How to reach object storage for an `out` of `s3://...` (the recipe's `storage`; default: the SDK's own settings). */
  readonly storage?: StorageSettings;
  /**
   * Save the part's state now (`run/part-state.ts`: a snapshot of the run database to shared storage).
   * An export to object storage calls it once it has claimed its prefix in the run database and before
   * its first object, so a database restored from a snapshot knows every object of its prefix is its own.
   */
  readonly checkpoint?: () => Promise<void>;
}

/**
 * A registered export format: its recipe options schema (an object with `type: z.literal(...)`) and a factory
 * for a pass-through stage that writes every exportable sample once and hands every sample on unchanged.
 */
export interface ExportType<Schema extends z.core.$ZodTypeDiscriminable & z.ZodType<{ type: string; name: string }>> {
  readonly type: z.output<Schema>['type'];
  readonly schema: Schema;
  create<T extends ExportableSample>(options: z.output<Schema>, ctx: ExportContext): Stage<T, T>;
}
