import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/core/errors.js';
import { TextTokenizer } from '../../src/models/tokenizer.js';
import { ChatTokenizer } from '../../src/tokenizers/chat-tokenizer.js';
import { byteLevelReference } from '../fixtures/reference-bpe.js';
import { MINI_QWEN } from '../fixtures/tokenizers.js';
import { modelDir, readExpected } from './fixtures.js';

interface Expected {
  texts: string[];
  input_ids: number[][];
  attention_mask: number[][];
}

const rows = (ids: BigInt64Array, dims: [number, number]): number[][] =>
  Array.from({ length: dims[0] }, (_, b) => Array.from(ids.subarray(b * dims[1], (b + 1) * dims[1]), Number));

describe('tokenizers built from the fixture tokenizer.json files match the Python reference', () => {
  for (const [folder, padding] of [
    ['clip-split', 'longest'],
    ['qformer', 'longest'],
    ['siglip', 'max_length'],
  ] as const) {
    it(`${folder} (${padding} padding)`, async () => {
      const expected = readExpected<Expected>(folder);
      const tok = await TextTokenizer.load(modelDir(folder));
      const batch = tok.encodeBatch(expected.texts, { padding });
      expect(rows(batch.inputIds, batch.dims)).toEqual(expected.input_ids);
      expect(rows(batch.attentionMask, batch.dims)).toEqual(expected.attention_mask);
    });
  }
});

describe('CLIP-style BPE tokenizer (BOS $A EOS, pad = EOS, model_max_length 16)', () => {
  it('finds the special tokens around a text and the pad id', async () => {
    const tok = await TextTokenizer.load(modelDir('clip-split'));
    const bos = tok.tokenId('<|startoftext|>')!;
    const eos = tok.tokenId('<|endoftext|>')!;
    expect(tok.prefixIds).toEqual([bos]);
    expect(tok.suffixIds).toEqual([eos]);
    expect(tok.eosId).toBe(eos);
    expect(tok.padId).toBe(eos);
    expect(tok.maxLength).toBe(16);
    expect(tok.encode('')).toEqual([bos, eos]);
    // EOS has the highest id, which is how CLIP finds where to pool (argmax of input_ids).
    expect(Math.max(...tok.encode('a red circle'))).toBe(eos);
  });

  it('keeps EOS as the last token when it truncates', async () => {
    const tok = await TextTokenizer.load(modelDir('clip-split'));
    const eos = tok.tokenId('<|endoftext|>')!;
    const long = 'two green triangles and a yellow star next to a purple circle above the big cat';
    const full = tok.encode(long);
    expect(full.length).toBeGreaterThan(16);
    const batch = tok.encodeBatch([long, 'a red circle']);
    expect(batch.dims).toEqual([2, 16]);
    const [first, second] = rows(batch.inputIds, batch.dims);
    expect(first).toEqual([...full.slice(0, 15), eos]);
    expect(first![15]).toBe(eos);
    expect(batch.lengths).toEqual([16, 5]);
    expect(second!.slice(5)).toEqual(new Array(11).fill(eos));
    expect(rows(batch.attentionMask, batch.dims)[1]).toEqual([1, 1, 1, 1, 1, ...new Array(11).fill(0)]);

    const short = tok.encodeBatch([long], { maxLength: 4 });
    expect(rows(short.inputIds, short.dims)[0]).toEqual([...full.slice(0, 3), eos]);
  });

  it('pads to max_length with a chosen pad id', async () => {
    const tok = await TextTokenizer.load(modelDir('clip-split'));
    const batch = tok.encodeBatch(['a red circle'], { padding: 'max_length', maxLength: 8, padId: 0 });
    expect(batch.dims).toEqual([1, 8]);
    expect(rows(batch.inputIds, batch.dims)[0]!.slice(5)).toEqual([0, 0, 0]);
  });

  it('refuses a length with no room for the special tokens', async () => {
    const tok = await TextTokenizer.load(modelDir('clip-split'));
    expect(() => tok.encodeBatch(['a'], { maxLength: 1 })).toThrow(/leave room for the 2 special tokens/);
    expect(() => tok.encodeBatch(['a'], { maxLength: 0 })).toThrow('Expected `maxLength` to be an integer from 1 and up, got 0');
  });

  it('decodes ids back to text', async () => {
    const tok = await TextTokenizer.load(modelDir('clip-split'));
    expect(tok.decode(tok.encode('A red circle'), { skipSpecialTokens: true })).toBe('a red circle');
  });
});

describe('BERT-style WordPiece tokenizer ([CLS] $A [SEP])', () => {
  it('keeps [SEP] last when it truncates and pads with [PAD]', async () => {
    const tok = await TextTokenizer.load(modelDir('qformer'));
    const cls = tok.tokenId('[CLS]')!;
    const sep = tok.tokenId('[SEP]')!;
    expect(tok.prefixIds).toEqual([cls]);
    expect(tok.suffixIds).toEqual([sep]);
    expect(tok.padId).toBe(tok.tokenId('[PAD]'));
    const batch = tok.encodeBatch(['a red circle next to a blue square', 'cats'], { maxLength: 5 });
    const [first, second] = rows(batch.inputIds, batch.dims);
    expect(first).toEqual([cls, tok.tokenId('a'), tok.tokenId('red'), tok.tokenId('circle'), sep]);
    // "cats" is not in the vocabulary: longest prefix "cat", then "##s"; then one [PAD].
    expect(second).toEqual([cls, tok.tokenId('cat'), tok.tokenId('##s'), sep, tok.padId]);
    expect(rows(batch.attentionMask, batch.dims)[1]).toEqual([1, 1, 1, 1, 0]);
  });
});

describe('a Qwen2-style folder (vocab.json + merges.txt, added tokens in tokenizer_config.json)', () => {
  // Model text encoders load tokenizer folders through the same loader as the chat templates, so a
  // folder that ships only the slow files (as Qwen2 does) works for both and gives the same ids.
  const texts = ['Hello world', 'A red circle on a white background.', 'héllo 你好 😀', "I'M fine THEY'LL  \n\n x"];

  it('encodes like the reference byte-level BPE and like the chat tokenizer', async () => {
    const tok = await TextTokenizer.load(MINI_QWEN);
    const chat = await ChatTokenizer.load(MINI_QWEN);
    const reference = byteLevelReference(MINI_QWEN);
    expect(tok.prefixIds).toEqual([]);
    expect(tok.suffixIds).toEqual([]);
    for (const text of texts) {
      expect(tok.encode(text), text).toEqual(reference.encode(text));
      expect(tok.encode(text), text).toEqual(chat.encodeText(text, false));
    }
  });

  it('takes EOS, padding and the length from tokenizer_config.json', async () => {
    const tok = await TextTokenizer.load(MINI_QWEN);
    const config = JSON.parse(readFileSync(path.join(MINI_QWEN, 'tokenizer_config.json'), 'utf8')) as {
      added_tokens_decoder: Record<string, { content: string }>;
    };
    const idOf = (content: string) => Number(Object.entries(config.added_tokens_decoder).find(([, t]) => t.content === content)![0]);
    expect(tok.eosId).toBe(idOf('<|im_end|>'));
    expect(tok.padId).toBe(idOf('<|endoftext|>'));
    expect(tok.maxLength).toBe(32768);
    expect(tok.source).toBe(`${MINI_QWEN} (vocab.json + merges.txt)`);
  });
});

describe('tokenizer loading errors', () => {
  it('names a missing tokenizer.json', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-tok-'));
    const load = TextTokenizer.load(dir);
    await expect(load).rejects.toBeInstanceOf(ConfigError);
    await expect(load).rejects.toThrow(`Missing tokenizer: ${path.join(dir, 'tokenizer.json')} does not exist`);
  });

  it('names a pad token that is not in the vocabulary', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-tok-'));
    cpSync(path.join(modelDir('clip-split'), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const config = JSON.parse(readFileSync(path.join(modelDir('clip-split'), 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, pad_token: '<pad>' }));
    await expect(TextTokenizer.load(dir)).rejects.toThrow(/tokenizer_config\.json: field `pad_token` names a token that is not in .*tokenizer\.json, got "<pad>"/);
  });

  it('needs a maximum length from somewhere', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-tok-'));
    cpSync(path.join(modelDir('qformer'), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ model_max_length: 1e30, pad_token: { content: '[PAD]' } }));
    const tok = await TextTokenizer.load(dir);
    expect(tok.maxLength).toBeUndefined();
    expect(tok.padId).toBe(0);
    expect(() => tok.encodeBatch(['a'])).toThrow(/No maximum text length for .*tokenizer\.json/);
    expect(tok.encodeBatch(['a'], { maxLength: 8 }).dims).toEqual([1, 3]);
  });

  it('names a tokenizer.json the library cannot build', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-tok-'));
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'Nonsense', vocab: 3 } }));
    await expect(TextTokenizer.load(dir)).rejects.toThrow(`Cannot build a tokenizer from ${path.join(dir, 'tokenizer.json')}`);
  });
});
