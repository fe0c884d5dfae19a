/**
 * Keeping sequences within `maxLength` tokens (visual tokens included). A longer sequence is either dropped,
 * or truncated. Truncation keeps whole rounds: it cuts right after the last trained run (an answer with
 * its terminator, e.g. `</s>` or `<|im_end|>\n`) that fits, so no sample teaches the model to stop in the
 * middle of an answer. `input_ids` and `labels` are cut at the same position, so the mask stays the verified
 * mask's prefix. The sample fails when not even the first answer fits (`truncated_no_target`), or when the
 * cut would fall inside an image's tokens (`truncated_image`: fewer image positions than features).
 */
import { IGNORE_INDEX, type TokenizedConversation } from './template.js';

export type OverLength = 'drop' | 'truncate';

export type FitResult =
  /** `answers`: how many answers (trained runs) the kept tokens hold; all of them when not truncated. */
  | { ok: true; tokenized: TokenizedConversation; truncated: boolean; answers: number }
  | { ok: false; code: 'over_length' | 'truncated_no_target' | 'truncated_image'; message: string };

export function fitLength(tokenized: TokenizedConversation, maxLength: number | undefined, mode: OverLength): FitResult {
  const length = tokenized.inputIds.length;
  if (maxLength === undefined || length <= maxLength) return { ok: true, tokenized, truncated: false, answers: answerEnds(tokenized.labels, length).length };
  if (mode === 'drop') return { ok: false, code: 'over_length', message: `${length} tokens, over maxLength ${maxLength}` };
  const ends = answerEnds(tokenized.labels, maxLength);
  const cut = ends.at(-1) ?? 0;
  if (cut === 0) {
    return { ok: false, code: 'truncated_no_target', message: `truncating ${length} tokens to ${maxLength} leaves no whole answer` };
  }
  for (const [start, end] of tokenized.imageRuns) {
    if (start < cut && end > cut) {
      return { ok: false, code: 'truncated_image', message: `truncating ${length} tokens to ${cut} would cut the image's tokens ${start}-${end}` };
    }
  }
  return {
    ok: true,
    truncated: true,
    answers: ends.length,
    tokenized: {
      inputIds: tokenized.inputIds.slice(0, cut),
      labels: tokenized.labels.slice(0, cut),
      spans: tokenized.spans,
      imageRuns: tokenized.imageRuns.filter(([start]) => start < cut),
    },
  };
}

/** Ends (exclusive) of the runs of trained positions (one per answer) that end within `limit`. */
function answerEnds(labels: Int32Array, limit: number): number[] {
  const ends: number[] = [];
  for (let i = 1; i <= Math.min(limit, labels.length); i++) {
    const trainedBefore = labels[i - 1] !== IGNORE_INDEX;
    const trainedHere = i < labels.length && labels[i] !== IGNORE_INDEX;
    if (trainedBefore && !trainedHere) ends.push(i);
  }
  return ends;
}
