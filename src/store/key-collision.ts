/**
 * Two sources that yield the same key (two img2dataset outputs both start at `000000000`) would share one
 * sample row. The first source to record a key owns it; a later sample with that key from another source
 * is recorded as failed (`key_duplicate`) under a key of its own, so nothing is overwritten or lost, and
 * the message says how to keep both: a `keyPrefix` per source.
 */
import type { Pair } from '../core/sample.js';
import { toKey } from '../core/sample.js';

export const KEY_COLLISION_STAGE = 'record';

/**
 * The key a colliding sample is recorded under: deterministic, so a resumed run finds it again. `n` > 1
 * only when that key is itself taken by yet another source (`KEY__source__2`, ...).
 */
function collisionKey(key: string, source: string, n = 1): string {
  return `${key}__${toKey(source)}${n > 1 ? `__${n}` : ''}`;
}

/** The colliding sample as a failure under its own key; the original's image and captions stay visible. */
export function asCollision<T extends Pair>(sample: T, owner: string, n = 1): T {
  return {
    ...sample,
    key: collisionKey(sample.key, sample.source, n),
    fate: {
      kind: 'failed',
      code: 'key_duplicate',
      message: `key "${sample.key}" of source "${sample.source}" is already used by source "${owner}"; give the sources distinct \`keyPrefix\` to keep both`,
      stage: KEY_COLLISION_STAGE,
    },
  };
}
