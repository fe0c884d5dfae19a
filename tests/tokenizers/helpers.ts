/**
 * The real tokenizers in ../shared/tokenizers (see SOURCE.md in each): llama2 (the vocabulary LLaVA-1.5
 * trains with) and qwen2 (vocab.json + merges.txt, as Qwen2-VL uses). Tests that need them are skipped,
 * saying why, only when the folder is absent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const TOKENIZERS = resolve(import.meta.dirname, '../../../shared/tokenizers');
export const LLAMA2 = join(TOKENIZERS, 'llama2');
export const QWEN2 = join(TOKENIZERS, 'qwen2');
/** The Qwen2.5 config declares the vision tokens and a ChatML chat_template with a Qwen system prompt. */
export const QWEN25_CONFIG = join(QWEN2, 'tokenizer_config.qwen2_5.json');

export const MISSING_TOKENIZERS = !existsSync(join(LLAMA2, 'tokenizer.json')) || !existsSync(join(QWEN2, 'vocab.json'));
export const SKIP_REASON = `real tokenizers not found in ${TOKENIZERS}`;

let llama: Record<string, number> | null = null;
let qwen: Record<string, number> | null = null;

/** Llama 2 piece -> id, read straight from tokenizer.json's vocabulary. */
export function llamaVocab(): Record<string, number> {
  llama ??= (JSON.parse(readFileSync(join(LLAMA2, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
  return llama;
}

/** Qwen2 byte-level token -> id, read straight from vocab.json (added tokens are not in it). */
export function qwenVocab(): Record<string, number> {
  qwen ??= JSON.parse(readFileSync(join(QWEN2, 'vocab.json'), 'utf8')) as Record<string, number>;
  return qwen;
}

/** Ids of pieces, failing loudly when a piece is not in the vocabulary. */
export function idsOf(vocab: Record<string, number>, pieces: readonly string[]): number[] {
  return pieces.map((p) => {
    const id = vocab[p];
    if (id === undefined) throw new Error(`piece ${JSON.stringify(p)} is not in the vocabulary`);
    return id;
  });
}
