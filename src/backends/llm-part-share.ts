/**
 * LLM limits across the parts of a split build (`--shard I/N`). `rpm`, `tpm` and `concurrency` describe
 * what one account may send, and N parts share that account, each with its own client and no coordinator:
 * so by default (`limitsPer: account`) each part takes an even share — rpm/N, tpm/N and floor(c/N) requests
 * in flight (at least 1) — and the N parts together stay within the account's limits. `limitsPer: part`
 * says the limits are already each part's (an endpoint per part, or limits divided by hand): used as given.
 */
import type { ShardSpec } from '../core/shard.js';
import type { LlmOptions } from './llm-options.js';

type Limits = Pick<LlmOptions, 'rpm' | 'tpm' | 'concurrency' | 'limitsPer'>;

/** The limits one part of `shard` uses. */
export function partShare<T extends Limits>(options: T, shard: ShardSpec): T {
  if (shard.count === 1 || options.limitsPer === 'part') return options;
  return {
    ...options,
    rpm: options.rpm / shard.count,
    tpm: options.tpm / shard.count,
    concurrency: Math.max(1, Math.floor(options.concurrency / shard.count)),
  };
}

/** One line saying what a part takes (null when the limits are used as given). */
export function describePartShare(path: string, options: Limits, shard: ShardSpec): string | null {
  if (shard.count === 1) return null;
  const round = (n: number) => Math.round(n * 100) / 100;
  if (options.limitsPer === 'part') {
    return `${path}: limitsPer: part — part ${shard.index}/${shard.count} uses rpm ${options.rpm}, tpm ${options.tpm}, concurrency ${options.concurrency} as given (the ${shard.count} parts together up to ${shard.count} times that)`;
  }
  const share = partShare(options, shard);
  const over = options.concurrency < shard.count ? ` (concurrency ${options.concurrency} is below ${shard.count} parts: each keeps 1 in flight)` : '';
  return (
    `${path}: part ${shard.index}/${shard.count} takes 1/${shard.count} of the account's limits: rpm ${round(share.rpm)}, tpm ${round(share.tpm)}, ` +
    `concurrency ${share.concurrency}${over} (limitsPer: part when the limits are each part's already)`
  );
}
