import { describe, expect, it } from 'vitest';
import { imageExtension, sampleJson, toWebDatasetSample } from '../../src/export/webdataset-sample.js';
import { caption, makePair } from './fixtures.js';

const text = (data: Uint8Array) => Buffer.from(data).toString('utf8');

describe('imageExtension', () => {
  it('maps sharp format names to file extensions', () => {
    expect(imageExtension('jpeg')).toBe('jpg');
    expect(imageExtension('png')).toBe('png');
    expect(imageExtension('webp')).toBe('webp');
    expect(imageExtension('gif')).toBe('gif');
    expect(imageExtension('jp2k')).toBe('jp2');
    expect(imageExtension('TIFF')).toBe('tiff');
  });
});

describe('toWebDatasetSample', () => {
  it('writes the original bytes, the kept caption and all metadata', async () => {
    const pair = await makePair('k1', 3, {
      format: 'jpeg',
      captions: [
        caption('web words', { itc: 0.12, itm: 0.2, kept: false, reason: 'itm<0.5' }),
        caption('a red square', { origin: 'synthetic', itc: 0.31, itm: 0.9, kept: true, reason: 'passed' }),
        caption('bad \u0001', { issue: 'control_chars_removed' }),
      ],
      meta: { zeta: 1, alpha: { y: 2, x: [{ b: 1, a: 2 }] } },
    });
    const wds = toWebDatasetSample(pair);
    expect(wds.key).toBe('k1');
    const byExt = new Map(wds.members.map((m) => [m.ext, m.data]));
    expect([...byExt.keys()].sort()).toEqual(['jpg', 'json', 'txt']);
    expect(Buffer.compare(Buffer.from(byExt.get('jpg')!), pair.imageBytes!)).toBe(0);
    expect(text(byExt.get('txt')!)).toBe('a red square');

    const jsonText = text(byExt.get('json')!);
    const json = JSON.parse(jsonText);
    expect(Object.keys(json)).toEqual(['key', 'width', 'height', 'format', 'sha256', 'source', 'captions', 'boxes', 'meta']);
    expect(json).toMatchObject({ key: 'k1', width: pair.image!.width, height: 12, format: 'jpeg', sha256: pair.image!.sha256, source: 'test-0' });
    expect(json.captions).toEqual([
      { text: 'web words', origin: 'web', itc: 0.12, itm: 0.2, kept: false, reason: 'itm<0.5', issue: null },
      { text: 'a red square', origin: 'synthetic', itc: 0.31, itm: 0.9, kept: true, reason: 'passed', issue: null },
      // Not scored yet: scores are null, never missing.
      { text: 'bad \u0001', origin: 'web', itc: null, itm: null, kept: null, reason: null, issue: 'control_chars_removed' },
    ]);
    expect(Object.keys(json.captions[0])).toEqual(['text', 'origin', 'itc', 'itm', 'kept', 'reason', 'issue']);
    expect(json.boxes).toEqual([{ label: 'square', box: [1, 2, 5, 6] }]);
    // Meta keys are sorted at every depth, so equal data always gives equal bytes.
    expect(jsonText).toContain('"meta":{"alpha":{"x":[{"a":2,"b":1}],"y":2},"zeta":1}');
  });

  it('omits the txt member when no caption is published', async () => {
    const filteredOut = await makePair('k2', 4, { captions: [caption('nothing good', { kept: false, reason: 'itc<0.28' })] });
    expect(toWebDatasetSample(filteredOut).members.map((m) => m.ext).sort()).toEqual(['json', 'png']);
    const empty = await makePair('k3', 5, { captions: [caption('   ')] });
    expect(toWebDatasetSample(empty).members.map((m) => m.ext).sort()).toEqual(['json', 'png']);
  });

  it('publishes the first usable caption before any filter has run', async () => {
    const pair = await makePair('k4', 6, { captions: [caption('', { usable: true }), caption('a blue circle')] });
    const txt = toWebDatasetSample(pair).members.find((m) => m.ext === 'txt');
    expect(text(txt!.data)).toBe('a blue circle');
  });

  it('adds synthesized conversations to the json when present', async () => {
    const pair = { ...(await makePair('k5', 7)), conversations: [{ from: 'human' as const, value: '<image>\nWhat?' }] };
    expect(sampleJson(pair).conversations).toEqual([{ from: 'human', value: '<image>\nWhat?' }]);
    expect(Object.keys(sampleJson(pair)).at(-1)).toBe('conversations');
  });

  it('refuses a sample without image bytes, naming it', async () => {
    const pair = { ...(await makePair('k6', 8)), imageBytes: null };
    expect(() => toWebDatasetSample(pair)).toThrow(/k6/);
  });
});
