import type { Db } from '../store/database.js';

/** FNV-1a, 32 bits: a stable, well-spread order over keys for deterministic sampling. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The SQL function name registered by {@link registerSampleHash}. */
export const SAMPLE_HASH = 'vlc_sample_hash';

/**
 * Register `vlc_sample_hash(text)` on a connection (read-only ones too) so queries can sample rows
 * deterministically: `ORDER BY vlc_sample_hash(key) LIMIT n` picks the same keys on every report of the
 * same run, spread over the whole run rather than its first shard.
 */
export function registerSampleHash(db: Db): void {
  db.function(SAMPLE_HASH, { deterministic: true }, (text: unknown) => fnv1a32(String(text)));
}
