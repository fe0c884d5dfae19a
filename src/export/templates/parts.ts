/**
 * Tokenizing a rendered conversation with its loss mask.
 *
 * A template renders a conversation into {@link Part}s: text (trained or not), special tokens, and images.
 * Text between two specials/images forms one **chunk**, encoded in one piece, exactly as a training-time
 * preprocessor encodes it (LLaVA encodes the text between `<image>` placeholders separately; special tokens
 * always split the text). Inside a chunk the mask boundary is found by **prefix difference**: the chunk's
 * text before the boundary is encoded on its own, and the boundary falls after the longest common prefix of
 * those ids and the chunk's ids. When the prefix ends in a token that merges with what follows (`ASSISTANT:`
 * + ` The` → `:` `▁The`), the merged token goes to the later side (LLaVA's arithmetic trains it), or, with
 * `straddling: 'masked'`, a token that straddles the start of a trained run stays masked (Qwen's finetune
 * code masks the whole first token after `assistant`, so `assistant\n` + `\nThe` leaves `\n\n` masked);
 * the verifier then checks that every trained run decodes to the text it should.
 */
import type { ChatTokenizer, ChunkPosition } from '../../tokenizers/chat-tokenizer.js';
import { IGNORE_INDEX, TemplateError, type ExpectedSpan, type TokenizedConversation } from './template.js';

export type Part =
  /** Text; may hold added-token strings a renderer put there on purpose (grounding tokens), split out here. */
  | { kind: 'text'; text: string; train: boolean; turn: number }
  /** One special token by its text (`</s>`, `<|im_end|>`). */
  | { kind: 'special'; token: string; train: boolean; turn: number }
  /** An image: its ids, and how the chunk after it is positioned (LLaVA encodes it as a fresh text). */
  | { kind: 'image'; ids: readonly number[]; after: ChunkPosition };

export interface PartsOptions {
  /** Put the tokenizer's BOS first (masked). */
  bos: boolean;
  /** Where a token that straddles the start of a trained run goes. Default `trained`. */
  straddling?: 'trained' | 'masked';
}

interface Piece {
  text: string;
  train: boolean;
  turn: number;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The longest whitespace-only suffix of `text`. */
function whitespaceSuffix(text: string): string {
  const match = /\s*$/u.exec(text);
  return match ? match[0] : '';
}

/** The longest whitespace-only prefix of `text`. */
function whitespacePrefix(text: string): string {
  const match = /^\s*/u.exec(text);
  return match ? match[0] : '';
}

/** Tokenize parts into ids and labels, with the spans the trained runs must decode to. */
export function tokenizeParts(parts: readonly Part[], tokenizer: ChatTokenizer, options: PartsOptions): TokenizedConversation {
  const ids: number[] = [];
  const train: boolean[] = [];
  const imageRuns: [number, number][] = [];
  const spans: ExpectedSpan[] = [];

  // The span being collected, and the untrained text seen in the current chunk (for `absorbable`).
  let open: ExpectedSpan | null = null;
  let chunkText = '';
  const straddleMasked = options.straddling === 'masked';
  const addTrained = (text: string, turn: number, boundary: string) => {
    if (text.length === 0) return;
    if (!open) {
      open = straddleMasked ? { text: '', absorbable: '', droppable: whitespacePrefix(text), turn } : { text: '', absorbable: whitespaceSuffix(boundary), turn };
      spans.push(open);
    }
    open.text += text;
  };
  const closeSpan = (text: string) => {
    // Empty untrained text does not separate two trained runs: they are one run of tokens.
    if (text.length > 0) open = null;
  };

  if (options.bos) {
    const bos = tokenizer.bosId;
    if (bos === null) throw new TemplateError('template_error', `tokenizer ${tokenizer.source} has no BOS token`);
    ids.push(bos);
    train.push(false);
  }

  let position: ChunkPosition = 'start';
  let chunk: Piece[] = [];

  const flush = () => {
    const pieces = chunk;
    chunk = [];
    const text = pieces.map((p) => p.text).join('');
    if (text.length === 0) return;
    const dummy = tokenizer.dummyPrefix(position);
    const chunkIds = tokenizer.encodeText(text, dummy);
    let assigned = 0;
    let offset = 0;
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      offset += piece.text.length;
      const next = pieces[i + 1];
      if (next !== undefined && next.train === piece.train) continue;
      // Tokens up to the boundary: all that is left at the chunk's end, else the common prefix of the
      // chunk's ids and the ids of its text up to the boundary (plus the token straddling it, when that
      // one stays masked).
      let end = chunkIds.length;
      if (next !== undefined) {
        const prefixIds = tokenizer.encodeText(text.slice(0, offset), dummy);
        const common = commonPrefix(prefixIds, chunkIds);
        const straddles = common < prefixIds.length;
        end = Math.max(assigned, straddles && straddleMasked && next.train ? Math.min(common + 1, chunkIds.length) : common);
      }
      for (let k = assigned; k < end; k++) {
        ids.push(chunkIds[k]!);
        train.push(piece.train);
      }
      assigned = end;
    }
    chunkText = '';
  };

  for (const part of parts) {
    if (part.kind === 'image') {
      flush();
      closeSpan('image');
      imageRuns.push([ids.length, ids.length + part.ids.length]);
      for (const id of part.ids) {
        ids.push(id);
        train.push(false);
      }
      position = part.after;
      continue;
    }
    const pieces = part.kind === 'special' ? [{ token: part.token, id: tokenizer.requireId(part.token, 'the template uses it') }] : tokenizer.splitAdded(part.text);
    for (const piece of pieces) {
      if (typeof piece === 'string') {
        if (chunk.length === 0) chunkText = tokenizer.dummyPrefix(position) ? ' ' : '';
        chunk.push({ text: piece, train: part.train, turn: part.turn });
        if (part.train) addTrained(piece, part.turn, chunkText);
        else closeSpan(piece);
        chunkText += piece;
      } else {
        flush();
        ids.push(piece.id);
        train.push(part.train);
        if (part.train) addTrained(piece.token, part.turn, '');
        else closeSpan(piece.token);
        position = 'after-special';
      }
    }
  }
  flush();

  const inputIds = Int32Array.from(ids);
  const labels = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) labels[i] = train[i] ? ids[i]! : IGNORE_INDEX;
  return { inputIds, labels, spans, imageRuns };
}

/**
 * Split a turn's text at `<image>` into text and image parts. Templates pass the ids one image becomes.
 */
export function withImages(
  text: string,
  turn: number,
  image: { ids: readonly number[]; after: ChunkPosition } | null,
): Part[] {
  const pieces = text.split('<image>');
  if (pieces.length > 1 && !image) {
    throw new TemplateError('image_token_count', `turn ${turn} has <image> but the sample has no image`);
  }
  const out: Part[] = [];
  pieces.forEach((piece, i) => {
    if (i > 0) out.push({ kind: 'image', ids: image!.ids, after: image!.after });
    if (piece.length > 0) out.push({ kind: 'text', text: piece, train: false, turn });
  });
  return out;
}
