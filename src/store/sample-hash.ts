import { stableHash } from '../core/shard.js';
import type { Db } from './database.js';

/** The SQL function name registered by {@link registerSampleHash}. */
export const SAMPLE_HASH = 'vlc_sample_hash';

/**
 * Register `vlc_sample_hash(text)` on a connection (read-only ones too) so queries can sample rows
 * deterministically: `ORDER BY vlc_sample_hash(key) LIMIT n` picks the same keys on every report of the
 * same run, spread over the whole run rather than its first shard.
 */
export function registerSampleHash(db: Db): void {
  db.function(SAMPLE_HASH, { deterministic: true }, (text: unknown) => stableHash(String(text)));
}
