/**
 * What LLaVA's own data code does to a record before it tokenizes it (haotian-liu/LLaVA
 * llava/train/train.py), so LLaVA-family exports write and tokenize what the trainer trains on:
 *
 * - {@link llavaImageFirst}: `preprocess_multimodal` moves `<image>` to the start of its turn,
 *   `"<image>\n" + text.replace("<image>", "").strip()`, then `.strip()`. LLaVA-1.5 trains with
 *   `mm_use_im_start_end: false` and conversation version `v1` (not an `mmtag` one), so neither the
 *   `<im_start>`/`<im_end>` wrapping nor the `<Image>` tags apply. A record without an image is left
 *   alone, as LLaVA leaves it.
 * - {@link llavaV1RoundsProblem}: `preprocess_v1` renders `system + " " + "USER: q ASSISTANT: a</s>" ...`,
 *   splits the prompt at `</s>` into rounds and each round at `" ASSISTANT: "` into instruction and
 *   answer, and counts tokens per piece. Text that moves a split (a turn saying `" ASSISTANT: "` or
 *   `</s>`, or ending so that the template's separator is found earlier) makes it count wrong: it masks
 *   the whole sample ("tokenization mismatch") or trains the wrong tokens. Such a record is refused.
 */
import { IMAGE_TOKEN, type Turn } from '../../core/conversation.js';
import { pythonStrip } from './qwen-user-text.js';

/** `preprocess_multimodal` for LLaVA-1.5 (train.py lines 316-327 at c121f04): `<image>` first in its turn. */
export function llavaImageFirst(turns: readonly Turn[]): Turn[] {
  return turns.map((turn) => {
    if (!turn.value.includes(IMAGE_TOKEN)) return turn;
    const rest = pythonStrip(turn.value.replaceAll(IMAGE_TOKEN, ''));
    return { from: turn.from, value: pythonStrip(`${IMAGE_TOKEN}\n${rest}`) };
  });
}

/** LLaVA-1.5's `conv_vicuna_v1` (llava/conversation.py): separator style TWO. */
export const LLAVA_V1 = { sep: ' ', sep2: '</s>', user: 'USER', assistant: 'ASSISTANT' } as const;

export interface RoundsProblem {
  /** The turn whose text moves a split (the first one found). */
  turn: number;
  message: string;
}

/**
 * Why `preprocess_v1` would not split this conversation at the template's own boundaries, or null when it
 * would. `sep2` is the text that ends an answer (`</s>`, LLaVA's literal; the tokenizer's EOS text).
 */
export function llavaV1RoundsProblem(system: string, turns: readonly Turn[], sep2: string = LLAVA_V1.sep2): RoundsProblem | null {
  const { sep, user, assistant } = LLAVA_V1;
  const answerSep = `${sep}${assistant}: `;
  // What the template means: the prompt, and each round (up to, not including, its sep2).
  let prompt = `${system}${sep}`;
  const rounds: { instruction: string; answer: string }[] = [];
  for (let i = 0; i + 1 < turns.length; i += 2) {
    const instruction = `${rounds.length === 0 ? `${system}${sep}` : ''}${user}: ${turns[i]!.value}`;
    const answer = turns[i + 1]!.value;
    rounds.push({ instruction, answer });
    prompt += `${user}: ${turns[i]!.value}${sep}${assistant}: ${answer}${sep2}`;
  }
  // What preprocess_v1 finds (train.py lines 456-466 at c121f04): `conversation.split(conv.sep2)`,
  // stop at an empty round, `rou.split(sep)` must give two parts.
  const split = prompt.split(sep2);
  const blame = (round: number): RoundsProblem => {
    const q = 2 * round;
    const culprit = [q, q + 1].find((t) => turns[t] !== undefined && (turns[t]!.value.includes(sep2) || turns[t]!.value.includes(answerSep))) ?? q;
    const said = turns[culprit]?.value.includes(sep2) ? JSON.stringify(sep2) : turns[culprit]?.value.includes(answerSep) ? JSON.stringify(answerSep) : null;
    const what = said
      ? `contains ${said}`
      : `runs into the template's ${JSON.stringify(answerSep)} so that the split falls elsewhere`;
    return {
      turn: culprit,
      message:
        `turn ${culprit} ${what}; LLaVA's preprocess_v1 splits rounds at ${JSON.stringify(sep2)} and answers at ${JSON.stringify(answerSep)}, ` +
        'so it would count this sample wrong and mask all of it (tokenization mismatch) or train the wrong tokens',
    };
  };
  for (let k = 0; k < rounds.length; k++) {
    const { instruction, answer } = rounds[k]!;
    const found = split[k];
    if (found !== `${instruction}${answerSep}${answer}`) return blame(k);
    const parts = found.split(answerSep);
    if (parts.length !== 2 || parts[0] !== instruction || parts[1] !== answer) return blame(k);
  }
  // After the last round's sep2 comes one empty string; anything more means a sep2 was found in the text.
  if (split.length !== rounds.length + 1 || split[rounds.length] !== '') return blame(Math.max(0, rounds.length - 1));
  return null;
}
