/**
 * The keys a reader has handed out, so that a key met again is told apart by what it was made from:
 *
 * - the same input key again (`a_b`, then `a_b`): `key_duplicate`, a repeat in the input itself;
 * - another input key that cleans to the same key (`a b.jpg`, then `a_b.jpg`: both `a_b`):
 *   `key_collision`, which the input alone does not show, so the message names both.
 *
 * Either way the later sample is recorded, failed, under `KEY__dupN` (`N` from 2), so nothing is lost.
 * Only keys that cleaning changed keep their input key here; the rest are their own input key.
 */
import { KEY_CHARACTERS } from '../core/sample.js';

export type KeyClaim =
  | { key: string; clash: null }
  | { key: string; clash: { code: 'key_duplicate' | 'key_collision'; earlier: string } };

export class KeyClaims {
  private readonly used = new Set<string>();
  private readonly madeFrom = new Map<string, string>();

  /** Whether `key` is taken (by a claim or a `__dupN` key). */
  has(key: string): boolean {
    return this.used.has(key);
  }

  /**
   * Claim `key`, made from the input key `raw` (after `prefix`, which both share). A clash gives the
   * `__dupN` key the later sample is recorded under and what the earlier input key was.
   */
  claim(key: string, raw: string, prefix = ''): KeyClaim {
    if (!this.used.has(key)) {
      this.used.add(key);
      if (key !== prefix + raw) this.madeFrom.set(key, raw);
      return { key, clash: null };
    }
    const earlier = this.madeFrom.get(key) ?? key.slice(prefix.length);
    let n = 2;
    while (this.used.has(`${key}__dup${n}`)) n++;
    const renamed = `${key}__dup${n}`;
    this.used.add(renamed);
    return { key: renamed, clash: { code: earlier === raw ? 'key_duplicate' : 'key_collision', earlier } };
  }
}

/** The end of a `key_collision` message: why two input keys became one. */
export function collisionReason(earlier: string, raw: string, key: string): string {
  return `"${raw}" and the earlier "${earlier}" both become key "${key}" (keys keep only ${KEY_CHARACTERS}); rename one of them`;
}
