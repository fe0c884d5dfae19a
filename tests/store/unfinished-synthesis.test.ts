import { describe, expect, it } from 'vitest';
import { RESUMABLE_CODES } from '../../src/backends/llm-errors.js';
import { unfinishedSynthesis } from '../../src/store/unfinished-synthesis.js';

describe('unfinishedSynthesis (the deferral rule shared by synthesis and re-export)', () => {
  it('defers a sample whose rows failed with resumable codes, naming each code once in row order', () => {
    expect(RESUMABLE_CODES.has('budget_exhausted')).toBe(true);
    expect(RESUMABLE_CODES.has('aborted')).toBe(true);
    const rows = [
      { status: 'ok', reason: null },
      { status: 'failed', reason: 'aborted: the run was stopped' },
      { status: 'failed', reason: 'budget_exhausted: --max-cost 1 reached' },
      { status: 'failed', reason: 'aborted' },
    ];
    expect(unfinishedSynthesis(rows)).toEqual({ reason: 'llm_unfinished: aborted, budget_exhausted', stage: 'synth' });
  });

  it('does not defer for final failures, rejections, a resumable word outside a failed row, or no reason', () => {
    const rows = [
      { status: 'failed', reason: 'leak_caption: mentions "caption"' },
      { status: 'rejected', reason: 'budget_exhausted: not a failed row' },
      { status: 'failed', reason: null },
      { status: 'ok', reason: null },
    ];
    expect(unfinishedSynthesis(rows)).toBeNull();
    expect(unfinishedSynthesis([])).toBeNull();
  });
});
