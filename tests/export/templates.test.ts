/**
 * Chat templates and loss masks with a sentencepiece-style (Llama) and a byte-level (Qwen2) tokenizer: the
 * real Llama 2 and Qwen2 ones when present, else the mini fixtures (see tests/fixtures/tokenizers.ts).
 * The built-in templates are checked against reference computations written here from the published training code:
 * LLaVA's `preprocess_v1` / `preprocess_plain` (round lengths, `instruction_len - 2`, the non-legacy `-1`,
 * `tokenizer_image_token`) and Qwen2-VL's finetuning preprocessing (each message tokenized whole, the first
 * three tokens of an assistant message masked). The references tokenize with @huggingface/tokenizers
 * directly on the unmodified files, splitting special tokens the way the slow tokenizers do.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Turn } from '../../src/core/conversation.js';
import {
  createTemplate,
  fitLength,
  IGNORE_INDEX,
  TemplateError,
  verifyMasks,
  VICUNA_V1_SYSTEM,
  type TokenizedConversation,
} from '../../src/export/templates/index.js';
import { llavaImageFirst } from '../../src/export/templates/llava-preprocess.js';
import { assembleByteLevelBpe, parseMerges } from '../../src/tokenizers/assemble-bpe.js';
import { ChatTokenizer } from '../../src/tokenizers/chat-tokenizer.js';
import { LlavaReference, preprocessMultimodal, QwenReference } from '../fixtures/trainer-reference.js';
import { idsOf, llamaTokenizerDir, llamaVocab, qwenAddedIds, QWEN25_CONFIG, qwenTokenizerDir, REAL, REAL_SKIP_REASON, TOKENIZERS } from '../fixtures/tokenizers.js';
import { cleanup, tempDir } from './fixtures.js';
import { expectEvery } from '../expect-every.js';

afterEach(cleanup);

interface RawTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): { ids: number[] };
}

const human = (value: string): Turn => ({ from: 'human', value });
const gpt = (value: string): Turn => ({ from: 'gpt', value });

const ONE_ROUND: Turn[] = [human('<image>\nWhat is in the picture?'), gpt('A red circle on a white background.')];
const THREE_ROUNDS: Turn[] = [
  human('<image>\nWhat shape is it?'),
  gpt('It is a circle.'),
  human('What colour?'),
  gpt('Red, with a thin black outline.'),
  human('Is it large?'),
  gpt('No, it is small: about 40 px across.'),
];
const TEXT_ONLY: Turn[] = [human('Name a primary colour.'), gpt('Blue.'), human('Another one?'), gpt('Yellow.')];
const UNICODE: Turn[] = [
  human('<image>\nDécris l’image, s’il te plaît. 这是什么？'),
  gpt('Un cercle rouge — 一个红色的圆 🔴. Größe: ½ des Bildes.'),
];

/** Runs of trained positions, decoded. */
function trainedTexts(t: TokenizedConversation, tok: ChatTokenizer): string[] {
  const runs: number[][] = [];
  t.labels.forEach((label, i) => {
    if (label === IGNORE_INDEX) return;
    const last = runs[runs.length - 1];
    if (last && last[last.length - 1] === i - 1) last.push(i);
    else runs.push([i]);
  });
  return runs.map((run) => tok.decode(run.map((i) => t.inputIds[i]!)));
}

describe(`LLaVA templates with the ${TOKENIZERS.llamaName} tokenizer`, () => {
  let legacyTok: ChatTokenizer;
  let modernTok: ChatTokenizer;
  /** LLaVA's own preprocessing, computed from its definitions (tests/fixtures/trainer-reference.ts). */
  let ref: LlavaReference;

  beforeAll(async () => {
    legacyTok = await ChatTokenizer.load(llamaTokenizerDir());
    modernTok = await ChatTokenizer.load(llamaTokenizerDir(), { legacy: false });
    ref = new LlavaReference(llamaTokenizerDir());
  });

  const BOS = 1;
  const EOS = 2;
  const IMAGE = -200;

  const llavaV1 = (turns: readonly Turn[], legacy: boolean) => ref.preprocessV1(turns, legacy);
  const llavaPlain = (caption: string, legacy: boolean) => ref.preprocessPlain(caption, legacy);

  const cases: [string, Turn[]][] = [
    ['one round with an image', ONE_ROUND],
    ['three rounds with an image', THREE_ROUNDS],
    ['two rounds without an image', TEXT_ONLY],
    ['unicode (accents, CJK, emoji)', UNICODE],
  ];

  for (const legacy of [true, false]) {
    for (const [what, turns] of cases) {
      it(`vicuna_v1 equals LLaVA's preprocess_v1: ${what}, legacy=${legacy}`, () => {
        const tok = legacy ? legacyTok : modernTok;
        const reference = llavaV1(turns, legacy);
        expect(reference.mismatch).toBe(false);
        const hasImage = turns[0]!.value.includes('<image>');
        const ours = createTemplate('vicuna_v1', tok).tokenize({ conversations: turns, image: hasImage ? { width: 64, height: 48 } : null });
        expect(Array.from(ours.inputIds)).toEqual(reference.inputIds);
        expect(Array.from(ours.labels)).toEqual(reference.labels);
        expect(verifyMasks(ours, tok)).toEqual({ ok: true });
        // The trained runs are exactly each answer (with the space after "ASSISTANT:") and </s>.
        expect(trainedTexts(ours, tok)).toEqual(turns.filter((t) => t.from === 'gpt').map((t) => ` ${t.value}</s>`));
      });
    }
  }

  it("moves <image> to the start of its turn as preprocess_multimodal does, and then equals preprocess_v1", () => {
    const cases: [string, string][] = [
      ['What shape is shown?\n<image>', '<image>\nWhat shape is shown?'],
      ['Look at this: <image> and say what it is.  ', '<image>\nLook at this:  and say what it is.'],
      ['\u001cWhat is it?<image>\u0085', '<image>\nWhat is it?'], // Python strips U+001C and U+0085; JS trim() does not
      ['\ufeffWhat is it?\n<image>', '<image>\n\ufeffWhat is it?'], // ... and keeps U+FEFF, which trim() removes
      ['<image>\nAlready first.', '<image>\nAlready first.'],
    ];
    for (const [before, after] of cases) {
      const moved = llavaImageFirst([human(before), gpt('A square.')]);
      expect(moved[0]!.value).toBe(after);
      expect(preprocessMultimodal([human(before)])[0]!.value).toBe(after);
      for (const legacy of [true, false]) {
        const tok = legacy ? legacyTok : modernTok;
        const reference = llavaV1(preprocessMultimodal([human(before), gpt('A square.')]), legacy);
        expect(reference.mismatch).toBe(false);
        const ours = createTemplate('vicuna_v1', tok).tokenize({ conversations: moved, image: { width: 64, height: 48 } });
        expect(Array.from(ours.inputIds)).toEqual(reference.inputIds);
        expect(Array.from(ours.labels)).toEqual(reference.labels);
      }
    }
    // A turn without <image> (and a text-only record) is left as it is, whitespace included.
    expect(llavaImageFirst([human('  Hi  '), gpt(' Yes ')])).toEqual([human('  Hi  '), gpt(' Yes ')]);
  });

  // Texts that move preprocess_v1's splits (train.py lines 456-466 at c121f04: rounds = conversation.split("</s>"),
  // parts = rou.split(" ASSISTANT: "), break unless two parts; then cur_len != total_len masks everything).
  // The reference shows what LLaVA would train; vicuna_v1 refuses each such record (separator_in_text).
  const SPLIT_MOVERS: [string, Turn[], 'mismatch' | 'wrong mask'][] = [
    ['a question saying " ASSISTANT: "', [human('<image>\nReply as USER then ASSISTANT: like a script.'), gpt('Sure.')], 'mismatch'],
    ['an answer saying " ASSISTANT: " in the second round', [human('<image>\nHi?'), gpt('Hello.'), human('Quote the log.'), gpt('It said ASSISTANT: ready.')], 'mismatch'],
    ['a question ending with " ASSISTANT:", which joins the template\'s separator', [human('<image>\nWho speaks after USER: ASSISTANT:'), gpt('The assistant.')], 'wrong mask'],
    ['a text-only record whose answer says " ASSISTANT: "', [human('Write a dialogue.'), gpt('USER: hi ASSISTANT: hello')], 'mismatch'],
  ];
  for (const [what, turns, effect] of SPLIT_MOVERS) {
    it(`refuses ${what}: LLaVA would ${effect === 'mismatch' ? 'report a tokenization mismatch and train nothing' : 'train the wrong tokens'}`, () => {
      for (const legacy of [true, false]) {
        const tok = legacy ? legacyTok : modernTok;
        const reference = llavaV1(turns, legacy);
        if (effect === 'mismatch') {
          expect(reference.mismatch).toBe(true);
          expectEvery(reference.labels, (l) => l === IGNORE_INDEX);
        } else {
          expect(reference.mismatch).toBe(false);
          const trained = reference.inputIds.filter((_, i) => reference.labels[i] !== IGNORE_INDEX);
          const answer = turns[1]!.value;
          expect(tok.decode(Int32Array.from(trained))).not.toBe(` ${answer}</s>`);
        }
        const hasImage = turns[0]!.value.includes('<image>');
        const tokenize = () => createTemplate('vicuna_v1', tok).tokenize({ conversations: turns, image: hasImage ? { width: 64, height: 48 } : null });
        expect(tokenize).toThrow(TemplateError);
        try {
          tokenize();
        } catch (err) {
          expect((err as TemplateError).code).toBe('separator_in_text');
        }
      }
    });
  }

  it('accepts separator-like text that does not move a split, and equals preprocess_v1 on it', () => {
    const harmless: Turn[][] = [
      [human('<image>\nWhat does "USER:" mean here?'), gpt('It names the speaker.')],
      [human('<image>\nRead the sign.'), gpt('It says (ASSISTANT: closed).')],
      [human('<image>\nStart with a role.'), gpt('ASSISTANT: fine.')], // one split, at the template's own separator
      [human('<image>\nEnd with a role name.'), gpt('The last word is ASSISTANT:')],
    ];
    for (const turns of harmless) {
      for (const legacy of [true, false]) {
        const tok = legacy ? legacyTok : modernTok;
        const reference = llavaV1(turns, legacy);
        expect(reference.mismatch).toBe(false);
        const ours = createTemplate('vicuna_v1', tok).tokenize({ conversations: turns, image: { width: 64, height: 48 } });
        expect(Array.from(ours.labels)).toEqual(reference.labels);
        expect(Array.from(ours.inputIds)).toEqual(reference.inputIds);
      }
    }
  });

  it('refuses a system message holding a separator (every sample would be masked)', () => {
    expect(() => createTemplate('vicuna_v1', legacyTok, { system: 'Be brief. ASSISTANT: ok' })).toThrow(/system message .* holds a separator/);
  });

  it('vicuna_v1 puts the image placeholder where LLaVA does: "USER: <image>\\n" is ..., ▁, -200, ▁, <0x0A>', () => {
    const t = createTemplate('vicuna_v1', legacyTok).tokenize({ conversations: ONE_ROUND, image: { width: 64, height: 48 } });
    const at = Array.from(t.inputIds).indexOf(IMAGE);
    const v = llamaVocab();
    const around = Array.from(t.inputIds.slice(at - 2, at + 3));
    expect(around).toEqual([...idsOf(v, [':', '▁']), IMAGE, ...idsOf(v, ['▁', '<0x0A>'])]);
    if (REAL) expect(around).toEqual([29901, 29871, IMAGE, 29871, 13]);
    expect(t.imageRuns).toEqual([[at, at + 1]]);
    const custom = createTemplate('vicuna_v1', legacyTok, { imagePlaceholderId: -1 }).tokenize({ conversations: ONE_ROUND, image: { width: 64, height: 48 } });
    expect(Array.from(custom.inputIds).filter((id) => id < 0)).toEqual([-1]);
  });

  for (const legacy of [true, false]) {
    it(`plain equals LLaVA's preprocess_plain (legacy=${legacy}), unicode caption included`, () => {
      const tok = legacy ? legacyTok : modernTok;
      for (const caption of ['A red circle on a white background.', 'Ein roter Kreis — 红色的圆 🔴']) {
        const reference = llavaPlain(caption, legacy);
        const ours = createTemplate('plain', tok).tokenize({ conversations: [human('<image>\nDescribe.'), gpt(caption)], image: { width: 64, height: 48 } });
        expect(Array.from(ours.inputIds)).toEqual(reference.inputIds);
        expect(Array.from(ours.labels)).toEqual(reference.labels);
        expect(verifyMasks(ours, tok)).toEqual({ ok: true });
        expect(trainedTexts(ours, tok)).toEqual([` ${caption}\n`]);
      }
    });
  }

  it('plain refuses a sample without an image and a multi-turn conversation', () => {
    const plain = createTemplate('plain', legacyTok);
    expect(() => plain.tokenize({ conversations: TEXT_ONLY.slice(0, 2), image: null })).toThrow(TemplateError);
    expect(() => plain.tokenize({ conversations: THREE_ROUNDS, image: { width: 10, height: 10 } })).toThrow(/one human and one gpt/);
  });

  it('a custom .jinja template (Llama-2-chat style) masks by rendering turn by turn', () => {
    const dir = tempDir();
    const file = join(dir, 'llama2-chat.jinja');
    writeFileSync(
      file,
      "{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}" +
        "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
    );
    const template = createTemplate(file, legacyTok);
    const t = template.tokenize({ conversations: THREE_ROUNDS, image: { width: 64, height: 48 } });
    expect(verifyMasks(t, legacyTok)).toEqual({ ok: true });
    expect(trainedTexts(t, legacyTok)).toEqual(THREE_ROUNDS.filter((x) => x.from === 'gpt').map((x) => ` ${x.value} </s>`));
    // Each round starts with the BOS the template renders; the image is one placeholder id.
    expect(Array.from(t.inputIds).filter((id) => id === BOS)).toHaveLength(3);
    expect(Array.from(t.inputIds).filter((id) => id === IMAGE)).toHaveLength(1);
  });
});

describe(`ChatML templates with the ${TOKENIZERS.qwenName} tokenizer`, () => {
  let tok: ChatTokenizer;
  let reference: RawTokenizer;
  let qwenRef: QwenReference;
  /** Added token -> id, from the folder's tokenizer_config.json (Qwen2: 151643-151645, vision tokens 151646-151656). */
  const added = qwenAddedIds();
  const IMAGE_PAD = added['<|image_pad|>']!;
  const VISION_START = added['<|vision_start|>']!;
  const VISION_END = added['<|vision_end|>']!;

  beforeAll(async () => {
    const dir = qwenTokenizerDir();
    tok = await ChatTokenizer.load(dir);
    const vocab = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
    const merges = parseMerges(readFileSync(join(dir, 'merges.txt'), 'utf8'));
    const specials = Object.entries(added).map(([content, id]) => ({ id, content, special: true }));
    reference = new Tokenizer(assembleByteLevelBpe(vocab, merges, specials), {}) as RawTokenizer;
    qwenRef = new QwenReference(dir, added);
  });

  /**
   * The older string-style finetune code: QwenLM/Qwen3-VL qwen-vl-finetune/qwenvl/data/data_qwen.py at commit
   * 2f25a646fb0f329647428eb8dacf19293de6f5d4, `preprocess_qwen_2_visual` (lines 47-130): the system block
   * masked; `<image>` replaced in the text by the vision tokens; each message
   * `<|im_start|>role\ncontent<|im_end|>\n` tokenized whole (special tokens split by the tokenizer);
   * user messages masked, assistant messages trained except their first three tokens (`target_mask[:3]`).
   */
  function qwenStringReference(turns: readonly Turn[], imagePads: number): { inputIds: number[]; labels: number[] } {
    const inputIds: number[] = [];
    const labels: number[] = [];
    const system = reference.encode('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n').ids;
    inputIds.push(...system);
    labels.push(...system.map(() => IGNORE_INDEX));
    for (const t of turns) {
      const content = t.value.replace('<image>', `<|vision_start|>${'<|image_pad|>'.repeat(imagePads)}<|vision_end|>`);
      const ids = reference.encode(`<|im_start|>${t.from === 'human' ? 'user' : 'assistant'}\n${content}<|im_end|>\n`).ids;
      inputIds.push(...ids);
      labels.push(...ids.map((id, i) => (t.from === 'human' || i < 3 ? IGNORE_INDEX : id)));
    }
    return { inputIds, labels };
  }

  /**
   * Qwen's current finetune code (chat template + `_build_messages` + `preprocess_qwen_visual`'s labels), as
   * tests/fixtures/trainer-reference.ts computes it from QwenLM/Qwen3-VL at commit 96588727.
   */
  function qwenReference(turns: readonly Turn[], imagePads: number): { inputIds: number[]; labels: number[] } {
    const { inputIds, labels } = qwenRef.preprocess(turns, imagePads);
    return { inputIds, labels };
  }

  const expectReference = (t: TokenizedConversation, ref: { inputIds: number[]; labels: number[] }) => {
    expect(Array.from(t.inputIds)).toEqual(ref.inputIds);
    expect(Array.from(t.labels)).toEqual(ref.labels);
    expect(verifyMasks(t, tok)).toEqual({ ok: true });
  };

  // smart_resize test vectors: 480x640 -> 476x644 -> 391 tokens, 224x224 -> 64, 1080x1920 -> 728x1316 -> 1222.
  const vectors: [number, number, number][] = [
    [640, 480, 391],
    [224, 224, 64],
    [1920, 1080, 1222],
  ];

  for (const [width, height, pads] of vectors) {
    it(`qwen2_vl expands a ${height}x${width} image to ${pads} image pads and equals Qwen's finetune code`, () => {
      const t = createTemplate('qwen2_vl', tok).tokenize({ conversations: THREE_ROUNDS, image: { width, height } });
      const ids = Array.from(t.inputIds);
      expect(ids.filter((id) => id === IMAGE_PAD)).toHaveLength(pads);
      const start = ids.indexOf(VISION_START);
      expect(ids[start + pads + 1]).toBe(VISION_END);
      expect(t.imageRuns).toEqual([[start, start + pads + 2]]);
      expectReference(t, qwenReference(THREE_ROUNDS, pads));
    });
  }

  it('qwen2_vl puts the user text right after <|vision_end|> (no newline), as the chat template renders a content list', () => {
    const t = createTemplate('qwen2_vl', tok).tokenize({ conversations: ONE_ROUND, image: { width: 224, height: 224 } });
    const end = Array.from(t.inputIds).indexOf(VISION_END);
    expect(tok.decode(t.inputIds.subarray(end, end + 4))).toBe('<|vision_end|>What is in');
    expectReference(t, qwenReference(ONE_ROUND, 64));
    // The old string style, as an explicit option, keeps the newline and equals the older code.
    const old = createTemplate('qwen2_vl', tok, { qwenImageText: 'verbatim' }).tokenize({ conversations: ONE_ROUND, image: { width: 224, height: 224 } });
    expect(tok.decode(old.inputIds.subarray(end, end + 2))).toBe('<|vision_end|>\n');
    expectReference(old, qwenStringReference(ONE_ROUND, 64));
  });

  it('qwen2_vl strips each user text segment like the finetune code: image last, padding whitespace, text-only turns', () => {
    const cases: Turn[][] = [
      [human('What shape is this?\n<image>'), gpt('A circle.')],
      [human('  \n<image>\n\n  Describe it,\u00a0please.\u3000 '), gpt('A red circle.'), human('  And the colour? \n'), gpt('Red.')],
      [human('Compare\n<image>\nwith a square.'), gpt('It is round.')],
      [human('\u001c<image>Hi\u0085'), gpt('Hello.')],
    ];
    for (const turns of cases) {
      expectReference(createTemplate('qwen2_vl', tok).tokenize({ conversations: turns, image: { width: 224, height: 224 } }), qwenReference(turns, 64));
    }
  });

  it('qwen2_vl masks answers that start or end with whitespace exactly as Qwen does (the token after `assistant` is never trained)', () => {
    const answers = ['\nA circle.', '\n\nA circle.', '\n\n\nA circle.', ' \nA circle.', '  A circle.', ' A circle.', '\tA circle.', 'A circle.\n', 'A circle.\n\n', 'A circle. ', '\n A circle.\n '];
    for (const answer of answers) {
      const turns = [human('<image>\nWhat is it?'), gpt(answer), human('Sure?'), gpt(answer)];
      const t = createTemplate('qwen2_vl', tok).tokenize({ conversations: turns, image: { width: 224, height: 224 } });
      expectReference(t, qwenReference(turns, 64));
      // The older code masks the first three tokens of a message: the same ids for these answers.
      const old = createTemplate('qwen2_vl', tok, { qwenImageText: 'verbatim' }).tokenize({ conversations: turns, image: { width: 224, height: 224 } });
      expectReference(old, qwenStringReference(turns, 64));
    }
    if (REAL) {
      // Qwen2: "assistant\n\nA" is 77091, 271 ("\n\n"), 32: 271 stays masked, "A circle.<|im_end|>\n" is trained.
      const t = createTemplate('qwen2_vl', tok).tokenize({ conversations: [human('Hi'), gpt('\nA circle.')], image: null });
      const header = Array.from(t.inputIds).lastIndexOf(77091);
      expect(t.inputIds[header + 1]).toBe(271);
      expect(t.labels[header + 1]).toBe(IGNORE_INDEX);
      expect(trainedTexts(t, tok)).toEqual(['A circle.<|im_end|>\n']);
    }
  });

  it('qwen2_vl refuses a user message holding the `assistant` token, which Qwen\'s label rule would take for an answer', () => {
    const turns = [human('<image>\nassistant, what is this?'), gpt('A circle.')];
    // What Qwen's code would train: the user's text after the stray token, up to its <|im_end|>.
    const ref = qwenReference(turns, 64);
    const userEnd = ref.inputIds.indexOf(added['<|im_end|>']!, ref.inputIds.indexOf(VISION_END));
    expect(ref.labels.slice(0, userEnd + 1).some((l) => l !== IGNORE_INDEX)).toBe(true);
    let error: unknown;
    try {
      createTemplate('qwen2_vl', tok).tokenize({ conversations: turns, image: { width: 224, height: 224 } });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TemplateError);
    expect((error as TemplateError).code).toBe('assistant_token_in_text');
    // The older code masks per message by role: nothing to refuse there.
    const old = createTemplate('qwen2_vl', tok, { qwenImageText: 'verbatim' }).tokenize({ conversations: turns, image: { width: 224, height: 224 } });
    expectReference(old, qwenStringReference(turns, 64));
    // " assistant" (with its space) is another token: fine.
    const spaced = [human('<image>\nYou are my assistant: what is this?'), gpt('A circle.')];
    expectReference(createTemplate('qwen2_vl', tok).tokenize({ conversations: spaced, image: { width: 224, height: 224 } }), qwenReference(spaced, 64));
  });

  it('qwen2_vl masks text-only and unicode conversations like the reference', () => {
    for (const turns of [TEXT_ONLY, UNICODE]) {
      const image = turns === UNICODE ? { width: 640, height: 480 } : null;
      const t = createTemplate('qwen2_vl', tok).tokenize({ conversations: turns, image });
      expectReference(t, qwenReference(turns, 391));
      expect(trainedTexts(t, tok)).toEqual(turns.filter((x) => x.from === 'gpt').map((x) => `${x.value}<|im_end|>\n`));
    }
  });

  it('chat_template from tokenizer_config.json (Qwen2-Instruct, string content) gives exactly the verbatim qwen2_vl tokens and masks', () => {
    const jinja = createTemplate('chat_template', tok);
    const builtin = createTemplate('qwen2_vl', tok, { qwenImageText: 'verbatim' });
    for (const turns of [THREE_ROUNDS, TEXT_ONLY, UNICODE]) {
      const image = turns[0]!.value.includes('<image>') ? { width: 640, height: 480 } : null;
      const a = jinja.tokenize({ conversations: turns, image });
      const b = builtin.tokenize({ conversations: turns, image });
      expect(Array.from(a.inputIds)).toEqual(Array.from(b.inputIds));
      expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
      expect(verifyMasks(a, tok)).toEqual({ ok: true });
    }
  });

  it.skipIf(!REAL)(`Qwen2.5's chat_template: its own system prompt, assistant content + <|im_end|>\\n trained — ${REAL ? 'real tokenizer' : REAL_SKIP_REASON}`, async () => {
    const tok25 = await ChatTokenizer.load(QWEN25_CONFIG);
    const t = createTemplate('chat_template', tok25).tokenize({ conversations: THREE_ROUNDS, image: { width: 224, height: 224 } });
    expect(verifyMasks(t, tok25)).toEqual({ ok: true });
    expect(tok25.decode(t.inputIds.subarray(0, 20))).toMatch(/^<\|im_start\|>system\nYou are Qwen, created by Alibaba Cloud/);
    expect(trainedTexts(t, tok25)).toEqual(THREE_ROUNDS.filter((x) => x.from === 'gpt').map((x) => `${x.value}<|im_end|>\n`));
    expect(Array.from(t.inputIds).filter((id) => id === IMAGE_PAD)).toHaveLength(64);
  });

  it('a system message can be set or left out', () => {
    const custom = createTemplate('qwen2_vl', tok, { system: 'Be brief.' }).tokenize({ conversations: TEXT_ONLY, image: null });
    // The system block ends where the second <|im_start|> begins (Qwen2: 8 tokens).
    const user = Array.from(custom.inputIds).indexOf(added['<|im_start|>']!, 1);
    expect(tok.decode(custom.inputIds.subarray(0, user))).toBe('<|im_start|>system\nBe brief.<|im_end|>\n');
    if (REAL) expect(user).toBe(8);
    const none = createTemplate('qwen2_vl', tok, { system: null }).tokenize({ conversations: TEXT_ONLY, image: null });
    expect(none.inputIds[0]).toBe(added['<|im_start|>']);
    expect(tok.decode(none.inputIds.subarray(0, 3))).toBe('<|im_start|>user\n');
  });

  it('an image with an extreme aspect ratio or a side under 28 px fails the sample with its code, not the run', () => {
    const codeFor = (image: { width: number; height: number }) => {
      try {
        createTemplate('qwen2_vl', tok).tokenize({ conversations: ONE_ROUND, image });
      } catch (err) {
        return err instanceof TemplateError ? err.code : 'not a TemplateError';
      }
      return 'ok';
    };
    expect(codeFor({ width: 30000, height: 100 })).toBe('image_aspect_ratio');
    expect(codeFor({ width: 20, height: 20 })).toBe('image_too_small');
    expect(codeFor({ width: 1000, height: 12 })).toBe('image_too_small');
    expect(codeFor({ width: 28, height: 28 })).toBe('ok');
  });
});

describe(`the verifier catches broken masks (${TOKENIZERS.llamaName})`, () => {
  let tok: ChatTokenizer;
  let good: TokenizedConversation;
  beforeAll(async () => {
    tok = await ChatTokenizer.load(llamaTokenizerDir());
    good = createTemplate('vicuna_v1', tok).tokenize({ conversations: THREE_ROUNDS, image: { width: 64, height: 48 } });
  });

  const clone = (t: TokenizedConversation): TokenizedConversation => ({ ...t, inputIds: t.inputIds.slice(), labels: t.labels.slice() });
  const firstTrained = (t: TokenizedConversation) => t.labels.findIndex((l) => l !== IGNORE_INDEX);

  it('accepts the mask as built', () => {
    expect(verifyMasks(good, tok)).toEqual({ ok: true });
  });

  it('rejects a mask shifted by one token (one prompt token trained, last answer token not)', () => {
    const bad = clone(good);
    const start = firstTrained(bad);
    let end = start;
    while (bad.labels[end] !== IGNORE_INDEX) end++;
    bad.labels[start - 1] = bad.inputIds[start - 1]!;
    bad.labels[end - 1] = IGNORE_INDEX;
    const verdict = verifyMasks(bad, tok);
    expect(verdict.ok).toBe(false);
    expect(verdict.ok === false && verdict.message).toMatch(/turn 1: trained tokens decode to ": It is a circle\.", expected " It is a circle\.<\/s>"/);
  });

  it('rejects a mask that lost the first answer token', () => {
    const bad = clone(good);
    bad.labels[firstTrained(bad)] = IGNORE_INDEX;
    expect(verifyMasks(bad, tok)).toMatchObject({ ok: false, code: 'mask_mismatch' });
  });

  it('rejects an all-masked sample (what LLaVA does silently on a length mismatch)', () => {
    const bad = clone(good);
    bad.labels.fill(IGNORE_INDEX);
    expect(verifyMasks(bad, tok)).toEqual({ ok: false, code: 'mask_mismatch', message: '0 trained run(s) of tokens, expected 3 (one per assistant turn)' });
  });

  it('rejects a label that differs from its input id, and a trained image position', () => {
    const wrongId = clone(good);
    wrongId.labels[firstTrained(wrongId)] = 42;
    expect(verifyMasks(wrongId, tok)).toMatchObject({ ok: false, message: expect.stringMatching(/differs from input id/) });
    const image = clone(good);
    const at = good.imageRuns[0]![0];
    image.labels[at] = image.inputIds[at]!;
    expect(verifyMasks(image, tok)).toMatchObject({ ok: false, message: expect.stringMatching(/image position/) });
  });
});

describe(`maxLength (${TOKENIZERS.llamaName}, ${TOKENIZERS.qwenName})`, () => {
  it('drops, or truncates after the last whole answer that fits (a prefix of the verified mask, ending in </s>)', async () => {
    const tok = await ChatTokenizer.load(llamaTokenizerDir());
    const t = createTemplate('vicuna_v1', tok).tokenize({ conversations: THREE_ROUNDS, image: { width: 64, height: 48 } });
    const n = t.inputIds.length;
    expect(fitLength(t, n, 'drop')).toMatchObject({ ok: true, truncated: false });
    expect(fitLength(t, n - 1, 'drop')).toMatchObject({ ok: false, code: 'over_length' });
    // Ends of the trained runs: where each answer (with its </s>) stops.
    const ends = Array.from(t.labels.keys()).filter((i) => t.labels[i] !== IGNORE_INDEX && (i + 1 === n || t.labels[i + 1] === IGNORE_INDEX)).map((i) => i + 1);
    expect(ends).toHaveLength(3);
    const eos = t.inputIds[ends[0]! - 1]!;
    for (const limit of [n - 1, ends[1]! + 3, ends[1]!]) {
      const cut = fitLength(t, limit, 'truncate');
      expect(cut.ok).toBe(true);
      if (cut.ok) {
        // Two whole rounds stay; the third, which would be cut mid-answer, goes.
        expect(cut.truncated).toBe(true);
        expect(Array.from(cut.tokenized.inputIds)).toEqual(Array.from(t.inputIds.slice(0, ends[1]!)));
        expect(Array.from(cut.tokenized.labels)).toEqual(Array.from(t.labels.slice(0, ends[1]!)));
        expect(cut.tokenized.inputIds.at(-1)).toBe(eos);
        expect(cut.tokenized.labels.at(-1)).toBe(eos);
      }
    }
    const one = fitLength(t, ends[1]! - 1, 'truncate');
    expect(one.ok && one.tokenized.inputIds.length).toBe(ends[0]);
    const image = t.imageRuns[0]![0];
    expect(fitLength(t, ends[0]! - 1, 'truncate')).toMatchObject({ ok: false, code: 'truncated_no_target' });
    const qwen = await ChatTokenizer.load(qwenTokenizerDir());
    const q = createTemplate('qwen2_vl', qwen).tokenize({ conversations: ONE_ROUND, image: { width: 640, height: 480 } });
    // A limit inside the image's tokens leaves no whole answer (and a cut never lands inside an image).
    expect(fitLength(q, q.imageRuns[0]![0] + 10, 'truncate')).toMatchObject({ ok: false, code: 'truncated_no_target' });
    expect(image).toBeGreaterThan(0);
  });
});
