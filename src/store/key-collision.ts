/**
 * Two sources that yield the same key (two img2dataset outputs both start at `000000000`) would share one
 * sample row. The first source to record a key owns it; a later sample with that key from another source
 * is recorded as failed (`key_duplicate`) under a key of its own, so nothing is overwritten or lost, and
 * the message says how to keep both: a `keyPrefix` per source.
 */
import type { DecodedPair } from '../core/sample.js';
import { toKey } from '../core/sample.js';

export const KEY_COLLISION_STAGE = 'record';

/** The key a colliding sample is recorded under: deterministic, so a resumed run finds it again. */
export function collisionKey(key: string, source: string): string {
  return `${key}__${toKey(source)}`;
}

/** The colliding sample as a failure under its own key; the original's image and captions stay visible. */
export function asCollision(sample: DecodedPair, owner: string): DecodedPair {
  return {
    ...sample,
    key: collisionKey(sample.key, sample.source),
    failure: {
      code: 'key_duplicate',
      message: `key "${sample.key}" of source "${sample.source}" is already used by source "${owner}"; give the sources distinct \`keyPrefix\` to keep both`,
      stage: KEY_COLLISION_STAGE,
    },
  };
}
