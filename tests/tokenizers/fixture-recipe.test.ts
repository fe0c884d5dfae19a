/**
 * The mini tokenizers in tests/fixtures/tokenizers are exactly what their recipe builds: the script is run
 * in --check mode, which rebuilds every file in memory and compares it byte for byte with the committed one.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURE_TOKENIZERS } from '../fixtures/tokenizers.js';

const SCRIPT = resolve(import.meta.dirname, '../../tools/make_test_tokenizers.mjs');

describe('mini tokenizer fixtures', () => {
  it('are rebuilt byte for byte by tools/make_test_tokenizers.mjs', () => {
    // Throws (exit status 1, naming the stale files) when a committed file differs from the recipe's output.
    execFileSync(process.execPath, [SCRIPT, '--check'], { stdio: ['ignore', 'pipe', 'pipe'] });
  });

  it('stay small', () => {
    const files = [
      'llama-mini/tokenizer.json',
      'llama-mini/tokenizer_config.json',
      'llama-mini/tokenizer_config.nonlegacy.json',
      'llama-mini/special_tokens_map.json',
      'qwen-mini/vocab.json',
      'qwen-mini/merges.txt',
      'qwen-mini/tokenizer_config.json',
      'qwen-mini/special_tokens_map.json',
    ];
    const total = files.reduce((n, f) => n + statSync(join(FIXTURE_TOKENIZERS, f)).size, 0);
    expect(total).toBeLessThan(300_000);
  });
});
