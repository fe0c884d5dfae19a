import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { parseMerges, QWEN2_VL_ADDED_TOKENS } from '../../src/tokenizers/assemble-bpe.js';
import { byteLevelDecoder } from '../../src/tokenizers/byte-level.js';
import { ChatTokenizer } from '../../src/tokenizers/chat-tokenizer.js';
import { byteLevelReference, sentencepieceReference } from '../fixtures/reference-bpe.js';
import {
  idsOf,
  LLAMA2,
  llamaTokenizerDir,
  llamaVocab,
  MINI_LLAMA,
  MINI_LLAMA_NONLEGACY_CONFIG,
  MINI_QWEN,
  QWEN2,
  QWEN25_CONFIG,
  qwenAddedIds,
  qwenTokenizerDir,
  qwenVocab,
  REAL,
  REAL_SKIP_REASON,
  TOKENIZERS,
} from '../fixtures/tokenizers.js';

/** Texts every tokenizer must encode like the reference and decode back exactly. */
const SAMPLES = [
  'Hello world',
  'A red circle on a white background.',
  'héllo 你好 😀',
  '  two  spaces\tand\ttabs\n\nend',
  'Привет, мир! שלום',
  "I'M fine THEY'LL, it's 12345 px",
  'Un cercle rouge — 一个红色的圆 🔴. Größe: ½ des Bildes.',
  'USER: What is in the picture? ASSISTANT: A small teal square fills the frame.',
  '   leading and trailing   ',
  '',
];

describe('byte-level table', () => {
  it('maps all 256 bytes to distinct characters, printable ASCII to itself', () => {
    const table = byteLevelDecoder();
    expect(table.size).toBe(256);
    expect(new Set(table.values()).size).toBe(256);
    expect(table.get('Ġ')).toBe(0x20);
    expect(table.get('Ċ')).toBe(0x0a);
    expect(table.get('A')).toBe(0x41);
    expect(table.get('Ā')).toBe(0x00);
  });

  it('parses merges with CRLF line ends and a version header', () => {
    expect(parseMerges('#version: 0.2\r\nĠ Ġ\r\ni n\r\n')).toEqual(['Ġ Ġ', 'i n']);
    expect(parseMerges('a b\nc d')).toEqual(['a b', 'c d']);
  });
});

describe(`sentencepiece-style tokenizer (${TOKENIZERS.llamaName})`, () => {
  it('reads BOS/EOS, add_bos_token and the legacy default from its files', async () => {
    const tok = await ChatTokenizer.load(llamaTokenizerDir());
    expect(tok.style).toBe('sentencepiece');
    expect(tok.addBos).toBe(true);
    expect(tok.legacy).toBe(true); // tokenizer_config.json has no `legacy`: transformers' slow tokenizer default
    expect(tok.bosId).toBe(llamaVocab()['<s>']);
    expect(tok.eosId).toBe(llamaVocab()['</s>']);
    expect((await ChatTokenizer.load(llamaTokenizerDir(), { legacy: false })).legacy).toBe(false);
  });

  it('gives the dummy prefix by position and legacy mode', async () => {
    const legacy = await ChatTokenizer.load(llamaTokenizerDir());
    const modern = await ChatTokenizer.load(llamaTokenizerDir(), { legacy: false });
    expect([legacy.dummyPrefix('start'), legacy.dummyPrefix('after-special'), legacy.dummyPrefix('after-image')]).toEqual([true, true, true]);
    expect([modern.dummyPrefix('start'), modern.dummyPrefix('after-special'), modern.dummyPrefix('after-image')]).toEqual([true, false, true]);
  });

  it('decodes ids back to exactly their text, the dummy prefix included', async () => {
    const tok = await ChatTokenizer.load(llamaTokenizerDir());
    for (const text of ['Hello world', 'héllo 你好 😀', '  two  spaces\tand\ttabs\n\nend', 'Привет, мир! שלום']) {
      expect(tok.decode(tok.encodeText(text, true))).toBe(` ${text}`);
      expect(tok.decode(tok.encodeText(text, false))).toBe(text);
    }
    expect(tok.decode([tok.eosId!])).toBe('</s>');
  });

  it('finds and splits special-token strings', async () => {
    const tok = await ChatTokenizer.load(llamaTokenizerDir());
    expect(tok.findAddedToken('fine text')).toBeNull();
    expect(tok.findAddedToken('a <s>strike</s>')).toBe('<s>');
    expect(tok.splitAdded('a</s>b')).toEqual(['a', { token: '</s>', id: 2 }, 'b']);
  });
});

describe.skipIf(!REAL)(`Llama 2 vocabulary ids — ${REAL ? 'real tokenizer' : REAL_SKIP_REASON}`, () => {
  it('encodes known strings to the ids of their pieces in the vocabulary', async () => {
    const tok = await ChatTokenizer.load(LLAMA2);
    const v = llamaVocab(LLAMA2);
    expect(tok.encodeText('Hello world', true)).toEqual(idsOf(v, ['▁Hello', '▁world']));
    expect(tok.encodeText('\nWhat is', true)).toEqual(idsOf(v, ['▁', '<0x0A>', 'What', '▁is']));
    // Accents merge, CJK characters are pieces, the emoji falls back to its four UTF-8 bytes.
    expect(tok.encodeText('héllo 你好 😀', true)).toEqual(
      idsOf(v, ['▁h', 'él', 'lo', '▁', '你', '好', '▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']),
    );
    // Without the dummy prefix "USER" is one piece; with it, "▁US" + "ER" (LLaVA's non-legacy `-1` rule).
    expect(tok.encodeText('USER: hi', false)).toEqual(idsOf(v, ['USER', ':', '▁hi']));
    expect(tok.encodeText('USER: hi', true)).toEqual(idsOf(v, ['▁US', 'ER', ':', '▁hi']));
    expect(tok.encodeText('', true)).toEqual([]);
  });
});

describe('llama-mini fixture (tests/fixtures/tokenizers/llama-mini)', () => {
  it('encodes known strings to the ids of their pieces in its tokenizer.json', async () => {
    const tok = await ChatTokenizer.load(MINI_LLAMA);
    const v = llamaVocab(MINI_LLAMA);
    expect([v['<unk>'], v['<s>'], v['</s>'], v['<0x00>'], v['<0xFF>']]).toEqual([0, 1, 2, 3, 258]);
    expect(tok.encodeText('Hello world', true)).toEqual(idsOf(v, ['▁Hello', '▁world']));
    expect(tok.encodeText('\nWhat is', true)).toEqual(idsOf(v, ['▁', '<0x0A>', 'W', 'hat', '▁is']));
    // Accented letters and Han characters are pieces; the emoji falls back to its four UTF-8 bytes.
    expect(tok.encodeText('héllo 你好 😀', true)).toEqual(
      idsOf(v, ['▁h', 'é', 'l', 'lo', '▁你好', '▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']),
    );
    // As in Llama 2, "USER" is one piece and costs one token more with the dummy prefix (LLaVA's `-1` rule).
    expect(tok.encodeText('USER: hi', false)).toEqual(idsOf(v, ['USER', ':', '▁h', 'i']));
    expect(tok.encodeText('USER: hi', true)).toEqual(idsOf(v, ['▁', 'USER', ':', '▁h', 'i']));
    // Digits are always single tokens (split_digits).
    expect(tok.encodeText('12345', true)).toEqual(idsOf(v, ['▁', '1', '2', '3', '4', '5']));
    expect(tok.encodeText('', true)).toEqual([]);
  });

  it('encodes like a reference BPE written from the tokenizer.json format, with and without the dummy prefix', async () => {
    const tok = await ChatTokenizer.load(MINI_LLAMA);
    const reference = sentencepieceReference(MINI_LLAMA);
    for (const text of SAMPLES) {
      expect(tok.encodeText(text, true), text).toEqual(text === '' ? [] : reference.encode(text, true));
      expect(tok.encodeText(text, false), text).toEqual(reference.encode(text, false));
    }
  });

  it('reads `"legacy": false` from a tokenizer config file', async () => {
    const tok = await ChatTokenizer.load(MINI_LLAMA_NONLEGACY_CONFIG);
    expect(tok.legacy).toBe(false);
    expect(tok.dummyPrefix('after-special')).toBe(false);
    expect(tok.bosId).toBe(1);
  });
});

describe(`byte-level tokenizer assembled from vocab.json + merges.txt (${TOKENIZERS.qwenName})`, () => {
  it('decodes exactly, including multi-byte characters and special tokens', async () => {
    const tok = await ChatTokenizer.load(qwenTokenizerDir());
    expect(tok.style).toBe('byte-level');
    expect(tok.addBos).toBe(false);
    for (const text of ['Hello world', 'héllo 你好 😀  \n\n x', "I'M fine THEY'LL", '\t\ttabs']) {
      expect(tok.decode(tok.encodeText(text, false))).toBe(text);
    }
    expect(tok.decode([qwenAddedIds()['<|im_end|>']!, qwenVocab()['Ċ']!])).toBe('<|im_end|>\n');
    // No dummy prefix in byte-level BPE.
    expect(tok.dummyPrefix('start')).toBe(false);
  });

  it('has the ChatML and Qwen2-VL vision tokens at the ids its config declares (or reserves)', async () => {
    const tok = await ChatTokenizer.load(qwenTokenizerDir());
    const added = qwenAddedIds();
    for (const token of ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|image_pad|>', '<|vision_end|>']) {
      expect(tok.tokenId(token), token).toBe(added[token]);
    }
    expect(tok.eosToken).toBe('<|im_end|>');
  });
});

describe.skipIf(!REAL)(`Qwen2 vocabulary ids — ${REAL ? 'real tokenizer' : REAL_SKIP_REASON}`, () => {
  it('encodes the ChatML system block to the published ids', async () => {
    const tok = await ChatTokenizer.load(QWEN2);
    const ids = [
      tok.requireId('<|im_start|>', 'test'),
      ...tok.encodeText('system\nYou are a helpful assistant.', false),
      tok.requireId('<|im_end|>', 'test'),
      ...tok.encodeText('\n', false),
    ];
    expect(ids).toEqual([151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198]);
  });

  it('encodes known strings to the ids of their byte-level tokens in vocab.json', async () => {
    const tok = await ChatTokenizer.load(QWEN2);
    const v = qwenVocab(QWEN2);
    expect(tok.encodeText('Hello world', false)).toEqual(idsOf(v, ['Hello', 'Ġworld']));
    expect(tok.encodeText('system\nYou are a helpful assistant.', false)).toEqual(
      idsOf(v, ['system', 'Ċ', 'You', 'Ġare', 'Ġa', 'Ġhelpful', 'Ġassistant', '.']),
    );
    // é is two bytes (Ã©); 你好 one token of six bytes; digits always one at a time.
    expect(tok.encodeText('héllo 你好 😀', false)).toEqual(idsOf(v, ['h', 'Ã©l', 'lo', 'Ġ', 'ä½łå¥½', 'ĠðŁĺĢ']));
    expect(tok.encodeText('12345', false)).toEqual(idsOf(v, ['1', '2', '3', '4', '5']));
    expect(tok.decode([151645, 198])).toBe('<|im_end|>\n');
  });

  it('supplies the Qwen2-VL tokens at their reserved ids when the folder lacks them', async () => {
    const plain = await ChatTokenizer.load(QWEN2);
    expect(plain.impliedTokens).toEqual(QWEN2_VL_ADDED_TOKENS.map((t) => t.content));
    expect(plain.tokenId('<|image_pad|>')).toBe(151655);
    const qwen25 = await ChatTokenizer.load(QWEN25_CONFIG);
    expect(qwen25.impliedTokens).toEqual([]);
    expect(qwen25.tokenId('<|vision_start|>')).toBe(151652);
    expect(qwen25.eosToken).toBe('<|im_end|>');
    expect(qwen25.chatTemplate).toContain('You are Qwen');
  });
});

describe('qwen-mini fixture (tests/fixtures/tokenizers/qwen-mini)', () => {
  it('encodes the ChatML system block to the ids of vocab.json and the config\'s added tokens', async () => {
    const tok = await ChatTokenizer.load(MINI_QWEN);
    const v = qwenVocab(MINI_QWEN);
    const added = qwenAddedIds(MINI_QWEN);
    const ids = [
      tok.requireId('<|im_start|>', 'test'),
      ...tok.encodeText('system\nYou are a helpful assistant.', false),
      tok.requireId('<|im_end|>', 'test'),
      ...tok.encodeText('\n', false),
    ];
    expect(ids).toEqual([
      added['<|im_start|>'],
      ...idsOf(v, ['system', 'Ċ', 'You', 'Ġare', 'Ġa', 'Ġhelpful', 'Ġassistant', '.']),
      added['<|im_end|>'],
      v['Ċ'],
    ]);
  });

  it('encodes known strings to the ids of their byte-level tokens in vocab.json', async () => {
    const tok = await ChatTokenizer.load(MINI_QWEN);
    const v = qwenVocab(MINI_QWEN);
    // The 256 byte characters first, in GPT-2's table order (as Qwen2's vocab.json).
    expect([v['!'], v['Ā'], v['Ġ'], v['Ċ']]).toEqual([0, 188, 220, 198]);
    expect(tok.encodeText('Hello world', false)).toEqual(idsOf(v, ['Hello', 'Ġworld']));
    // é is two bytes (Ã©); 你好 one token of six bytes; the emoji is bytes; digits always one at a time.
    expect(tok.encodeText('héllo 你好 😀', false)).toEqual(idsOf(v, ['h', 'Ã©', 'l', 'lo', 'Ġ', 'ä½łå¥½', 'ĠðŁ', 'ĺ', 'Ģ']));
    expect(tok.encodeText('12345', false)).toEqual(idsOf(v, ['1', '2', '3', '4', '5']));
    expect(tok.encodeText('assistant\nIt is teal.', false)).toEqual(idsOf(v, ['assistant', 'Ċ', 'It', 'Ġis', 'Ġteal', '.']));
  });

  it('encodes like a reference byte-level BPE written from the vocab.json / merges.txt formats', async () => {
    const tok = await ChatTokenizer.load(MINI_QWEN);
    const reference = byteLevelReference(MINI_QWEN);
    for (const text of SAMPLES) expect(tok.encodeText(text, false), text).toEqual(reference.encode(text));
  });

  it('declares the ChatML and Qwen2-VL tokens right after the vocabulary, and a ChatML chat_template', async () => {
    const tok = await ChatTokenizer.load(MINI_QWEN);
    const size = Object.keys(qwenVocab(MINI_QWEN)).length;
    expect(tok.impliedTokens).toEqual([]);
    const order = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', ...QWEN2_VL_ADDED_TOKENS.map((t) => t.content)];
    expect(order.map((t) => tok.tokenId(t))).toEqual(order.map((_, i) => size + i));
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.chatTemplate).toContain("'<|im_start|>user\n' + content + '<|im_end|>\n<|im_start|>assistant\n'");
  });
});

describe('loading errors', () => {
  it('names the folder when there is no tokenizer in it', async () => {
    await expect(ChatTokenizer.load('/nonexistent/tokenizer')).rejects.toBeInstanceOf(ConfigError);
    await expect(ChatTokenizer.load(import.meta.dirname)).rejects.toThrow(/neither tokenizer.json nor vocab.json/);
  });
});
