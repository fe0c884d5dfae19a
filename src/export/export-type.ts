import type { z } from 'zod';
import type { ShardSpec } from '../core/shard.js';
import type { Stage } from '../core/stage.js';
import type { ExportLedger } from '../store/stage-ports.js';
import type { ExportableSample } from './webdataset-sample.js';

/** What every export needs from the run. */
export interface ExportContext {
  /** Where finished shards and exported keys are recorded; the source of truth for resume. */
  readonly store: ExportLedger;
  /** Relative `out` paths resolve against this folder (the recipe's folder). */
  readonly baseDir: string;
  /** This process's `--shard I/N`; with N > 1 file names carry it so processes never collide. */
  readonly shard: ShardSpec;
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
