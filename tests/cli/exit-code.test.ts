import { describe, expect, it } from 'vitest';
import { exitCodeOf } from '../../src/cli/exit.js';
import type { RunSummary } from '../../src/core/events.js';

function heldBack(code: string, n: number): RunSummary {
  return {
    samples: { total: n + 1, ok: 1, failed: n, dropped: 0 },
    failures: { [code]: n },
    exported: { wds: 1 },
    captioning: { heldBack: n, reasons: { [code]: n } },
  };
}

describe('exit code of a build whose captioner held samples back', () => {
  it('is 0 when they wait on purpose (--max-cost, Ctrl-C), 1 when something must be fixed or retried', () => {
    expect(exitCodeOf(heldBack('budget_exhausted', 3))).toBe(0);
    expect(exitCodeOf(heldBack('aborted', 3))).toBe(0);
    expect(exitCodeOf(heldBack('server_unreachable', 3))).toBe(1);
    expect(exitCodeOf(heldBack('key_rejected', 3))).toBe(1);
    expect(exitCodeOf(heldBack('timeout', 3))).toBe(1);
    // A sample that failed for good besides the ones held on purpose still counts.
    const mixed = heldBack('budget_exhausted', 3);
    mixed.samples.failed += 1;
    mixed.failures['image_truncated'] = 1;
    expect(exitCodeOf(mixed)).toBe(1);
  });
});
