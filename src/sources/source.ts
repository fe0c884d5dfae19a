import type { z } from 'zod';
import type { Pair } from '../core/sample.js';
import type { ShardSpec } from '../core/shard.js';
import type { StorageSettings } from '../storage/storage-settings.js';

export interface SourceContext {
  readonly signal: AbortSignal;
  /** This process's share of the inputs; a reader yields only pairs whose key is `inShard`. */
  readonly shard: ShardSpec;
  /** Relative paths in the source options resolve against this folder (the recipe's folder). */
  readonly baseDir: string;
  /**
   * Keys already finished in an earlier run. A reader may call it to skip reading image bytes for them
   * (it must still not yield them). Returns the subset of `keys` that is done.
   */
  readonly isDone?: (keys: string[]) => Set<string>;
  /** Where URL sources keep downloaded images (content-addressed), so a resumed run never fetches twice. */
  readonly downloadCacheDir?: string;
  /**
   * Most bytes one local file or tar member may have (`decode.maxBytes`); larger ones are never read into
   * memory. Default `DEFAULT_MAX_FILE_BYTES` (64 MiB).
   */
  readonly maxFileBytes?: number;
  /** How `s3://` inputs are reached (the recipe's `storage` section). Default: the AWS SDK's own settings. */
  readonly storage?: StorageSettings;
}

/** A configured source: yields pairs, each with a unique key, failures as data. */
export interface Source {
  /** Recipe name of this source (`name` option, or `<type>-<position>`). */
  readonly name: string;
  read(ctx: SourceContext): AsyncIterable<Pair>;
  /** Number of pairs the source will yield for the whole input when cheaply known (for ETA); else null. */
  count?(ctx: SourceContext): Promise<number | null>;
}

/** A registered source type: its recipe options schema and a factory. */
export interface SourceType<Options extends { type: string }> {
  readonly type: Options['type'];
  /** zod schema of the recipe entry, including `type: z.literal(...)`. */
  readonly schema: z.ZodType<Options>;
  create(options: Options, name: string): Source;
}
