import { describe, expect, it } from 'vitest';
import { RESUMABLE_LLM_CODES } from '../../src/core/failure-codes.js';
import { unfinishedSynthesis } from '../../src/store/unfinished-synthesis.js';

describe('unfinishedSynthesis (the deferral rule shared by synthesis and re-export)', () => {
  it('defers a sample whose rows failed with resumable codes, naming each code once in row order', () => {
    expect(RESUMABLE_LLM_CODES.has('budget_exhausted')).toBe(true);
    expect(RESUMABLE_LLM_CODES.has('aborted')).toBe(true);
    const rows = [
      { status: 'ok', code: null },
      { status: 'failed', code: 'aborted', message: 'the run was stopped' },
      { status: 'failed', code: 'budget_exhausted', message: '--max-cost 1 reached' },
      { status: 'failed', code: 'aborted' },
    ];
    expect(unfinishedSynthesis(rows)).toEqual({ reason: 'llm_unfinished: aborted, budget_exhausted', stage: 'synth' });
  });

  it('does not defer for final failures, rejections, a resumable word outside a failed row, or no reason', () => {
    const rows = [
      { status: 'failed', code: 'leak_caption', message: 'mentions "caption"' },
      { status: 'rejected', code: 'budget_exhausted', message: 'not a failed row' },
      { status: 'failed', code: null },
      { status: 'ok', code: null },
    ];
    expect(unfinishedSynthesis(rows)).toBeNull();
    expect(unfinishedSynthesis([])).toBeNull();
  });
});
