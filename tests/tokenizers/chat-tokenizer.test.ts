import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { parseMerges, QWEN2_VL_ADDED_TOKENS } from '../../src/tokenizers/assemble-bpe.js';
import { byteLevelDecoder } from '../../src/tokenizers/byte-level.js';
import { ChatTokenizer } from '../../src/tokenizers/chat-tokenizer.js';
import { idsOf, LLAMA2, llamaVocab, MISSING_TOKENIZERS, QWEN2, QWEN25_CONFIG, qwenVocab, SKIP_REASON } from './helpers.js';

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

describe.skipIf(MISSING_TOKENIZERS)(`Llama 2 tokenizer (sentencepiece style) — skipped when ${SKIP_REASON}`, () => {
  it('reads BOS/EOS, add_bos_token and the legacy default from its files', async () => {
    const tok = await ChatTokenizer.load(LLAMA2);
    expect(tok.style).toBe('sentencepiece');
    expect(tok.addBos).toBe(true);
    expect(tok.legacy).toBe(true); // tokenizer_config.json has no `legacy`: transformers' slow tokenizer default
    expect(tok.bosId).toBe(llamaVocab()['<s>']);
    expect(tok.eosId).toBe(llamaVocab()['</s>']);
    expect((await ChatTokenizer.load(LLAMA2, { legacy: false })).legacy).toBe(false);
  });

  it('encodes known strings to the ids of their pieces in the vocabulary', async () => {
    const tok = await ChatTokenizer.load(LLAMA2);
    const v = llamaVocab();
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

  it('gives the dummy prefix by position and legacy mode', async () => {
    const legacy = await ChatTokenizer.load(LLAMA2);
    const modern = await ChatTokenizer.load(LLAMA2, { legacy: false });
    expect([legacy.dummyPrefix('start'), legacy.dummyPrefix('after-special'), legacy.dummyPrefix('after-image')]).toEqual([true, true, true]);
    expect([modern.dummyPrefix('start'), modern.dummyPrefix('after-special'), modern.dummyPrefix('after-image')]).toEqual([true, false, true]);
  });

  it('decodes ids back to exactly their text, the dummy prefix included', async () => {
    const tok = await ChatTokenizer.load(LLAMA2);
    for (const text of ['Hello world', 'héllo 你好 😀', '  two  spaces\tand\ttabs\n\nend', 'Привет, мир! שלום']) {
      expect(tok.decode(tok.encodeText(text, true))).toBe(` ${text}`);
      expect(tok.decode(tok.encodeText(text, false))).toBe(text);
    }
    expect(tok.decode([tok.eosId!])).toBe('</s>');
  });

  it('finds and splits special-token strings', async () => {
    const tok = await ChatTokenizer.load(LLAMA2);
    expect(tok.findAddedToken('fine text')).toBeNull();
    expect(tok.findAddedToken('a <s>strike</s>')).toBe('<s>');
    expect(tok.splitAdded('a</s>b')).toEqual(['a', { token: '</s>', id: 2 }, 'b']);
  });
});

describe.skipIf(MISSING_TOKENIZERS)(`Qwen2 tokenizer assembled from vocab.json + merges.txt — skipped when ${SKIP_REASON}`, () => {
  it('encodes the ChatML system block to the published ids', async () => {
    const tok = await ChatTokenizer.load(QWEN2);
    expect(tok.style).toBe('byte-level');
    expect(tok.addBos).toBe(false);
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
    const v = qwenVocab();
    expect(tok.encodeText('Hello world', false)).toEqual(idsOf(v, ['Hello', 'Ġworld']));
    expect(tok.encodeText('system\nYou are a helpful assistant.', false)).toEqual(
      idsOf(v, ['system', 'Ċ', 'You', 'Ġare', 'Ġa', 'Ġhelpful', 'Ġassistant', '.']),
    );
    // é is two bytes (Ã©); 你好 one token of six bytes; digits always one at a time.
    expect(tok.encodeText('héllo 你好 😀', false)).toEqual(idsOf(v, ['h', 'Ã©l', 'lo', 'Ġ', 'ä½łå¥½', 'ĠðŁĺĢ']));
    expect(tok.encodeText('12345', false)).toEqual(idsOf(v, ['1', '2', '3', '4', '5']));
    // No dummy prefix in byte-level BPE.
    expect(tok.dummyPrefix('start')).toBe(false);
  });

  it('decodes exactly, including multi-byte characters and special tokens', async () => {
    const tok = await ChatTokenizer.load(QWEN2);
    for (const text of ['Hello world', 'héllo 你好 😀  \n\n x', "I'M fine THEY'LL", '\t\ttabs']) {
      expect(tok.decode(tok.encodeText(text, false))).toBe(text);
    }
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

describe('loading errors', () => {
  it('names the folder when there is no tokenizer in it', async () => {
    await expect(ChatTokenizer.load('/nonexistent/tokenizer')).rejects.toBeInstanceOf(ConfigError);
    await expect(ChatTokenizer.load(import.meta.dirname)).rejects.toThrow(/neither tokenizer.json nor vocab.json/);
  });
});
