import { describe, expect, it } from 'vitest';

import { copyTensor, emptyFloatTensor, gatherRows, int64Matrix } from '../../src/backends/tensor-rows.js';

describe('tensor rows', () => {
  it('gathers rows along the first dim, repeating and reordering, in the same element type', () => {
    const t = { type: 'float16' as const, dims: [3, 2], data: new Uint16Array([1, 2, 3, 4, 5, 6]) };
    const out = gatherRows(t, [2, 0, 2]);
    expect(out.type).toBe('float16');
    expect(out.dims).toEqual([3, 2]);
    expect(Array.from(out.data as Uint16Array)).toEqual([5, 6, 1, 2, 5, 6]);
    expect(out.data).toBeInstanceOf(Uint16Array);
  });

  it('copies data so that the original survives the copy being moved or changed', () => {
    const t = { type: 'int64' as const, dims: [2], data: new BigInt64Array([7n, 8n]) };
    const copy = copyTensor(t);
    (copy.data as BigInt64Array)[0] = 0n;
    expect(Array.from(t.data)).toEqual([7n, 8n]);
  });

  it('makes empty float tensors of the declared type, float32 otherwise, and int64 matrices', () => {
    expect(emptyFloatTensor('float16', [2, 4, 0, 8]).data).toBeInstanceOf(Uint16Array);
    expect(emptyFloatTensor(undefined, [1, 0]).type).toBe('float32');
    const m = int64Matrix([2, 3], (r, c) => r * 10 + c);
    expect(m.dims).toEqual([2, 3]);
    expect(Array.from(m.data as BigInt64Array)).toEqual([0n, 1n, 2n, 10n, 11n, 12n]);
  });
});
