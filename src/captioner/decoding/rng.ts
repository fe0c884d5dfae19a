/**
 * Seeded random streams for sampling. Each stream is xoshiro128** seeded from the first 16 bytes of
 * sha256(`${seed}:${key}:${sample}`), so a caption depends only on the seed, its image's key and its sample
 * index, never on which other images share the batch. tools/make_captioner_fixtures.py has the same
 * generator in Python (its reference samples are checked against this one).
 */
import { createHash } from 'node:crypto';

/** A stream of uniform numbers in [0, 1). */
export interface RandomStream {
  /** The next uniform number in [0, 1), with 53 random bits. */
  uniform(): number;
  /** The next raw 32-bit output. */
  next32(): number;
}

class Xoshiro128StarStar implements RandomStream {
  private readonly s: Uint32Array;

  constructor(state: Uint32Array) {
    this.s = state;
    if (state.every((v) => v === 0)) state[0] = 1;
  }

  next32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  uniform(): number {
    const a = this.next32() >>> 5;
    const b = this.next32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The stream for one sample of one image. */
export function createStream(seed: number, key: string, sample: number): RandomStream {
  const digest = createHash('sha256').update(`${seed}:${key}:${sample}`, 'utf8').digest();
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i++) state[i] = digest.readUInt32LE(i * 4);
  return new Xoshiro128StarStar(state);
}
