/**
 * The mask verifier. Reads the mask back from `labels` alone (not from how it was built) and requires:
 *
 * - every label is -100 or equal to its input id, and no image position is trained,
 * - the trained positions form exactly one run per expected span (one per assistant turn for chat templates),
 * - each run decodes to its span's text exactly, where the first token may also carry whitespace that sat just
 *   before the span (a sentencepiece dummy prefix, or the space after `ASSISTANT:` merged into the first word),
 *   or, where the template masks a straddling token (Qwen), lack leading whitespace that token took.
 *
 * Anything else fails the sample with a reason. LLaVA, for comparison, silently masks a whole sample when its
 * length arithmetic disagrees.
 */
import type { ChatTokenizer } from '../../tokenizers/chat-tokenizer.js';
import { IGNORE_INDEX, type TokenizedConversation } from './template.js';

export type MaskVerdict = { ok: true } | { ok: false; code: 'mask_mismatch'; message: string };

function show(text: string): string {
  const json = JSON.stringify(text);
  return json.length > 80 ? `${json.slice(0, 77)}..."` : json;
}

function fail(message: string): MaskVerdict {
  return { ok: false, code: 'mask_mismatch', message };
}

export function verifyMasks(tokenized: TokenizedConversation, tokenizer: ChatTokenizer): MaskVerdict {
  const { inputIds, labels, spans, imageRuns } = tokenized;
  if (labels.length !== inputIds.length) return fail(`labels has ${labels.length} positions, input_ids ${inputIds.length}`);
  const inImage = new Uint8Array(inputIds.length);
  for (const [start, end] of imageRuns) inImage.fill(1, start, end);

  const runs: [number, number][] = [];
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i]!;
    if (label === IGNORE_INDEX) continue;
    if (label !== inputIds[i]) return fail(`position ${i}: label ${label} differs from input id ${inputIds[i]}`);
    if (inImage[i]) return fail(`position ${i}: an image position is trained`);
    const last = runs[runs.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
  }
  if (spans.length === 0) return fail('the conversation has no assistant text to train');
  if (runs.length !== spans.length) {
    return fail(`${runs.length} trained run(s) of tokens, expected ${spans.length} (one per assistant turn)`);
  }
  for (let r = 0; r < runs.length; r++) {
    const [start, end] = runs[r]!;
    const span = spans[r]!;
    const decoded = tokenizer.decode(inputIds.subarray(start, end));
    if (decoded === span.text) continue;
    const extra = decoded.endsWith(span.text) ? decoded.slice(0, decoded.length - span.text.length) : null;
    if (extra !== null && extra.length > 0 && span.absorbable.endsWith(extra)) continue;
    const dropped = span.text.length - decoded.length;
    if (decoded.length > 0 && dropped > 0 && dropped <= (span.droppable?.length ?? 0) && span.text.endsWith(decoded)) continue;
    return fail(`turn ${span.turn}: trained tokens decode to ${show(decoded)}, expected ${show(span.text)}`);
  }
  return { ok: true };
}
