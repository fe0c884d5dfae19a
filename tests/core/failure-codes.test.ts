/**
 * The failure-code registry (src/core/failure-codes.ts) is the one list of codes a sample can be recorded
 * with: the README table is generated from it, the resumable LLM codes are the ones the store and the
 * stages use, and every code it lists is one the code base produces.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  LlmAbortError,
  LlmBadResponseError,
  LlmBudgetError,
  LlmConnectionError,
  LlmContentFilterError,
  LlmKeyRejectedError,
  LlmLengthError,
  LlmUnreachableError,
  errorForStatus,
  type LlmError,
} from '../../src/backends/llm-errors.js';
import { FAILURE_CODES, RESUMABLE_LLM_CODES, STOP_CODES, failureCodeEntry, failureCodeTable, isResumableLlmCode } from '../../src/core/failure-codes.js';
import { failSample, failureOf, OPEN, type Pair } from '../../src/core/sample.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('failure-code registry', () => {
  it('the README table is exactly the one generated from the registry (npm run docs:failures)', () => {
    const readme = readFileSync(resolve(ROOT, 'README.md'), 'utf8');
    const section = /<!-- failure-codes:start[^>]*-->\n([\s\S]*?)<!-- failure-codes:end -->/.exec(readme);
    expect(section, 'README.md has the failure-codes markers').not.toBeNull();
    const table = section?.[1] ?? '';
    expect(table).toBe(`${failureCodeTable()}\n`);
    // One row per entry, none hand-added.
    expect(table.trim().split('\n')).toHaveLength(FAILURE_CODES.length + 2);
  });

  it('lists each code once per stage, with a one-line description', () => {
    const pairs = FAILURE_CODES.flatMap((e) => e.stages.map((stage) => `${e.code}@${stage}`));
    expect(new Set(pairs).size).toBe(pairs.length);
    expect(FAILURE_CODES.length).toBeGreaterThan(40);
    for (const entry of FAILURE_CODES) {
      expect(entry.code, entry.code).toMatch(/^[a-z][a-z0-9_]*$|^http_<status>$/);
      expect(entry.stages.length, entry.code).toBeGreaterThan(0);
      expect(entry.description.trim().length, entry.code).toBeGreaterThan(10);
      expect(entry.description, entry.code).not.toMatch(/\n|\|/);
    }
  });

  it('every listed code is produced somewhere in src/ (no stale entry)', () => {
    // String literals, and the start of template and string literals (`batch_incomplete: ...`).
    const src = execFileSync('git', ['grep', '-h', '-o', "['`][a-z][a-z0-9_]*['`:]", '--', 'src', ':!src/core/failure-codes.ts'], { cwd: ROOT, encoding: 'utf8' });
    const literals = new Set(src.split('\n').map((s) => s.slice(1, -1)));
    const listed = FAILURE_CODES.map((e) => e.code).filter((code) => !code.startsWith('http_'));
    expect(listed.length).toBeGreaterThan(40);
    expect(listed.filter((code) => !literals.has(code))).toEqual([]);
  });

  it('resumable LLM codes: the set the store and stages used before the registry, and batch_incomplete', () => {
    expect([...RESUMABLE_LLM_CODES].sort()).toEqual(
      [
        // A batch still running when maxWaitMs ran out: the next run collects it (tests/e2e/batch-incomplete.test.ts).
        'batch_incomplete',
        'budget_exhausted',
        'aborted',
        'rate_limited',
        'server_error',
        'timeout',
        'connection_error',
        'bad_response',
        'http_409',
        'key_rejected',
        'server_unreachable',
        'http_401',
        'http_403',
      ].sort(),
    );
    expect([...STOP_CODES].sort()).toEqual(['key_rejected', 'server_unreachable']);
    expect(isResumableLlmCode('finish_length')).toBe(false);
    // A download's timeout is recorded for good; an LLM request's is asked again.
    expect(failureCodeEntry('timeout', 'source')?.resumable).toBe(false);
    expect(failureCodeEntry('timeout', 'synth')?.resumable).toBe(true);
    expect(failureCodeEntry('http_404', 'source')?.code).toBe('http_<status>');
    expect(failureCodeEntry('http_409', 'synth')?.resumable).toBe(true);
    expect(failureCodeEntry('http_422', 'synth')?.resumable).toBe(false);
    expect(failureCodeEntry('no_such_code', 'decode')).toBeUndefined();
  });

  it('every LLM error is listed for synthesis; whatever the client retries, the next run asks again', () => {
    const errors: LlmError[] = [
      errorForStatus(429, 'x'),
      errorForStatus(408, 'x'),
      errorForStatus(503, 'x'),
      errorForStatus(409, 'x'),
      errorForStatus(400, 'x'),
      new LlmConnectionError('x'),
      new LlmBadResponseError('x'),
      new LlmKeyRejectedError(401, 'x'),
      new LlmUnreachableError('x'),
      new LlmLengthError('x'),
      new LlmContentFilterError('x'),
      new LlmBudgetError('x'),
      new LlmAbortError(),
    ];
    for (const err of errors) {
      const entry = failureCodeEntry(err.code, 'synth');
      expect(entry, err.code).toBeDefined();
      if (err.isRetryable) expect(entry!.resumable, err.code).toBe(true);
      expect(isResumableLlmCode(err.code), err.code).toBe(entry!.resumable);
      // The captioner records only what it holds back: the resumable codes.
      expect(failureCodeEntry(err.code, 'captioner') !== undefined, err.code).toBe(entry!.resumable);
    }
  });

  it('an unlisted code does not compile', () => {
    const pair: Pair = { key: 'k', source: 's', imageRef: 'x', imageBytes: null, captions: [], boxes: [], meta: {}, fate: OPEN };
    // @ts-expect-error -- 'no_such_code' is not in the registry (tsc --noEmit fails if this ever compiles)
    const failed = failSample(pair, 'decode', 'no_such_code', 'm');
    expect(failureOf(failed)?.code).toBe('no_such_code');
    expect(failureOf(failSample(pair, 'source', 'http_404', 'm'))?.code).toBe('http_404');
  });
});
