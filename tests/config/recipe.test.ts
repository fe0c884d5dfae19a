import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe, parseRecipe } from '../../src/config/recipe.js';
import { ConfigError } from '../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'vlc-recipe-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function errorOf(input: unknown): string {
  try {
    parseRecipe(input, 'recipe.yaml', dir);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected the recipe to be rejected');
}

describe('recipes', () => {
  it('fills documented defaults', () => {
    const { recipe, hash } = parseRecipe({ sources: [{ type: 'webdataset', paths: 'x.tar' }] }, 'r', dir);
    expect(recipe.run).toEqual({ db: 'out/run.db', out: 'out', commitEvery: 64 });
    expect(recipe.decode.maxPixels).toBe(89_478_485);
    expect(recipe.export).toEqual([]);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a wrong source type names the field, the value and the choices', () => {
    const message = errorOf({ sources: [{ type: 'webdatset', paths: 'x.tar' }] });
    expect(message).toContain('sources[0].type');
    expect(message).toContain('"webdatset"');
    expect(message).toMatch(/"webdataset" \| "coco"/);
  });

  it('a wrong value type names field, value and expected type', () => {
    const message = errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar' }], run: { commitEvery: 'lots' } });
    expect(message).toContain('run.commitEvery: expected number, got "lots"');
  });

  it('a union names what it takes; a message that says what it got says it once', () => {
    expect(errorOf({ sources: [{ type: 'webdataset' }] })).toContain('sources[0].paths: expected string or array, got nothing');
    expect(errorOf({ sources: [{ type: 'webdataset', paths: 42 }] })).toContain('sources[0].paths: expected string or array, got 42');
    const lengths = errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar' }], captioner: { type: 'onnx', model: 'm', minLength: 40, maxLength: 10 } });
    expect(lengths).toMatch(/captioner\.minLength: [^\n]*got 40$/m);
    expect(lengths).not.toMatch(/got 40, got 40/);
  });

  it('score thresholds outside the score`s range are refused, naming the range', () => {
    const itm = errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar' }], filter: { itm: { model: 'm', threshold: 1.5 } } });
    expect(itm).toContain('filter.itm.threshold: expected a threshold from 0 to 1 (a probability), got 1.5');
    const itc = errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar' }], filter: { itc: { model: 'm', threshold: 5 } } });
    expect(itc).toContain('filter.itc.threshold: expected a threshold from -1 to 1 (a cosine similarity), got 5');
  });

  it('an LLM base URL must be http or https (synth.llm and the openai captioner)', () => {
    const src = { sources: [{ type: 'webdataset', paths: 'x.tar' }] };
    const synth = (baseURL: unknown) => errorOf({ ...src, synth: { tasks: ['conversation'], llm: { baseURL, model: 'm' } } });
    expect(synth('file:///etc/passwd')).toContain('synth.llm.baseURL: expected an http:// or https:// URL without a user name or password (the key goes in apiKeyEnv), got "file:///etc/passwd"');
    expect(synth('ftp://example.com/v1')).toContain('synth.llm.baseURL: expected an http:// or https:// URL without a user name or password (the key goes in apiKeyEnv), got "ftp://example.com/v1"');
    expect(synth('not a url')).toContain('synth.llm.baseURL: expected an http:// or https:// URL without a user name or password (the key goes in apiKeyEnv), got "not a url"');
    expect(synth('http://user:sk-123@127.0.0.1/v1')).toContain('synth.llm.baseURL: expected an http:// or https:// URL without a user name or password');
    expect(synth(42)).toContain('synth.llm.baseURL: expected string, got 42');
    const captioner = errorOf({ ...src, captioner: { type: 'openai', baseURL: 'file:///etc/passwd', model: 'm' } });
    expect(captioner).toContain('captioner.baseURL: expected an http:// or https:// URL without a user name or password (the key goes in apiKeyEnv), got "file:///etc/passwd"');
    for (const ok of ['http://127.0.0.1:8000/v1', 'https://api.openai.com/v1', 'HTTPS://API.OPENAI.COM/v1']) {
      expect(parseRecipe({ ...src, synth: { tasks: ['conversation'], llm: { baseURL: ok, model: 'm' } } }, 'r', dir).recipe.synth?.llm?.baseURL).toBe(ok);
    }
  });

  it('unknown fields are errors, not silently ignored', () => {
    expect(errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar', pathz: 'y' }] })).toMatch(/sources\[0\]: unknown field "pathz"/);
    expect(errorOf({ sources: [{ type: 'webdataset', paths: 'x.tar' }], exprot: [] })).toMatch(/unknown field "exprot"/);
  });

  it('reports every problem at once', () => {
    const message = errorOf({ sources: [], export: [{ type: 'webdataset', name: 'bad name!', out: 'o' }] });
    expect(message).toContain('sources');
    expect(message).toContain('export[0].name');
  });

  it('rejects duplicate export names', () => {
    const message = errorOf({
      sources: [{ type: 'webdataset', paths: 'x.tar' }],
      export: [{ type: 'webdataset', out: 'a' }, { type: 'webdataset', out: 'b' }],
    });
    expect(message).toMatch(/export names must be unique, got "wds" twice/);
  });

  it('rejects two exports in one folder, whatever their prefixes', () => {
    const message = errorOf({
      sources: [{ type: 'webdataset', paths: 'x.tar' }],
      export: [{ type: 'webdataset', name: 'a', out: 'o', prefix: 'p' }, { type: 'webdataset', name: 'b', out: './o', prefix: 'p' }],
    });
    expect(message).toMatch(/exports "a" and "b" both write into "\.\/o"/);
    const prefixes = errorOf({
      sources: [{ type: 'webdataset', paths: 'x.tar' }],
      export: [{ type: 'webdataset', name: 'a', out: 'o', prefix: 'p' }, { type: 'webdataset', name: 'b', out: 'o', prefix: 'q' }],
    });
    expect(prefixes).toMatch(/exports "a" and "b" both write into "o"; give each export an `out` folder of its own/);
  });

  it('loads YAML and JSON files; unreadable or malformed files name the file', () => {
    writeFileSync(join(dir, 'r.yaml'), 'sources:\n  - { type: coco, captions: c.json, images: imgs/ }\n');
    expect(loadRecipe(join(dir, 'r.yaml')).recipe.sources[0]).toMatchObject({ type: 'coco' });
    writeFileSync(join(dir, 'r.json'), JSON.stringify({ sources: [{ type: 'webdataset', paths: ['a.tar', 'b.tar'] }] }));
    expect(loadRecipe(join(dir, 'r.json')).baseDir).toBe(dir);
    writeFileSync(join(dir, 'bad.yaml'), 'sources: [ { type: ');
    expect(() => loadRecipe(join(dir, 'bad.yaml'))).toThrow(/bad\.yaml.*not valid YAML/);
    expect(() => loadRecipe(join(dir, 'missing.yaml'))).toThrow(/missing\.yaml": cannot read \(the file does not exist\)/);
    expect(() => loadRecipe(dir)).toThrow(/it is a folder, expected a YAML or JSON file/);
    expect(() => loadRecipe('/dev/zero')).toThrow(/"\/dev\/zero": not a regular file/);
    writeFileSync(join(dir, 'list.yaml'), '- a\n- b\n');
    expect(() => loadRecipe(join(dir, 'list.yaml'))).toThrow(/expected a mapping/);
  });
});
