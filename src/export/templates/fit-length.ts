/**
 * Keeping sequences within `maxLength` tokens (visual tokens included). A longer sequence is either dropped,
 * or truncated at the end. Truncation cuts `input_ids` and `labels` at the same position, so the mask stays
 * the verified mask's prefix; it fails the sample when the cut would leave no trained token, or fall inside
 * an image's tokens (the model would get fewer image positions than features).
 */
import { IGNORE_INDEX, type TokenizedConversation } from './template.js';

export type OverLength = 'drop' | 'truncate';

export type FitResult =
  | { ok: true; tokenized: TokenizedConversation; truncated: boolean }
  | { ok: false; code: 'over_length' | 'truncated_no_target' | 'truncated_image'; message: string };

export function fitLength(tokenized: TokenizedConversation, maxLength: number | undefined, mode: OverLength): FitResult {
  const length = tokenized.inputIds.length;
  if (maxLength === undefined || length <= maxLength) return { ok: true, tokenized, truncated: false };
  if (mode === 'drop') return { ok: false, code: 'over_length', message: `${length} tokens, over maxLength ${maxLength}` };
  for (const [start, end] of tokenized.imageRuns) {
    if (start < maxLength && end > maxLength) {
      return { ok: false, code: 'truncated_image', message: `truncating ${length} tokens to ${maxLength} would cut the image's tokens ${start}-${end}` };
    }
  }
  const labels = tokenized.labels.slice(0, maxLength);
  if (!labels.some((l) => l !== IGNORE_INDEX)) {
    return { ok: false, code: 'truncated_no_target', message: `truncating ${length} tokens to ${maxLength} leaves no trained token` };
  }
  return {
    ok: true,
    truncated: true,
    tokenized: {
      inputIds: tokenized.inputIds.slice(0, maxLength),
      labels,
      spans: tokenized.spans,
      imageRuns: tokenized.imageRuns.filter(([start]) => start < maxLength),
    },
  };
}
