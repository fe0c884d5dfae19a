import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { ConfigError } from '../../src/core/errors.js';
import { buildHfTokenizer, readTokenizerDefinition } from '../../src/tokenizers/hf-tokenizer.js';
import { MINI_LLAMA, MINI_QWEN } from '../fixtures/tokenizers.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

describe('one tokenizer loader', () => {
  it('is the only file that imports @huggingface/tokenizers or declares HfTokenizer', () => {
    const files = sourceFiles(SRC);
    expect(files.length).toBeGreaterThan(50);
    const rel = (f: string) => path.relative(SRC, f);
    const importers = files.filter((f) => /from '@huggingface\/tokenizers'/.test(readFileSync(f, 'utf8'))).map(rel);
    const declarers = files.filter((f) => /interface HfTokenizer\b/.test(readFileSync(f, 'utf8'))).map(rel);
    expect(importers).toEqual([path.join('tokenizers', 'hf-tokenizer.ts')]);
    expect(declarers).toEqual([path.join('tokenizers', 'hf-tokenizer.ts')]);
  });

  it('depends on neither models/ nor export/', () => {
    const text = readFileSync(path.join(SRC, 'tokenizers', 'hf-tokenizer.ts'), 'utf8');
    const imports = [...text.matchAll(/from '([^']+)'/g)].map((m) => m[1]);
    expect(imports.length).toBeGreaterThan(0);
    expect(imports.filter((i) => /models\/|export\//.test(i!))).toEqual([]);
  });
});

describe('readTokenizerDefinition', () => {
  it('reads tokenizer.json when the folder has one', async () => {
    const def = await readTokenizerDefinition(MINI_LLAMA, {}, path.join(MINI_LLAMA, 'tokenizer_config.json'));
    expect(def?.source).toBe(path.join(MINI_LLAMA, 'tokenizer.json'));
    expect((def?.json as { model: { type: string } }).model.type).toBe('BPE');
  });

  it('assembles one from vocab.json + merges.txt with the config added tokens', async () => {
    const configPath = path.join(MINI_QWEN, 'tokenizer_config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    const def = await readTokenizerDefinition(MINI_QWEN, config, configPath);
    expect(def?.source).toBe(`${MINI_QWEN} (vocab.json + merges.txt)`);
    const added = (def?.json as { added_tokens: { content: string }[] }).added_tokens.map((t) => t.content);
    expect(added).toContain('<|im_end|>');
  });

  it('is null for a folder with neither, and names a bad added_tokens_decoder entry', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vlcurate-hftok-'));
    expect(await readTokenizerDefinition(dir, {}, path.join(dir, 'tokenizer_config.json'))).toBeNull();
    writeFileSync(path.join(dir, 'vocab.json'), '{"a": 0}');
    writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    const bad = { added_tokens_decoder: { x: { content: '<y>' } } };
    await expect(readTokenizerDefinition(dir, bad, 'cfg.json')).rejects.toThrow(
      'tokenizer config cfg.json: `added_tokens_decoder.x` must be {"content": "...", ...} under a numeric id',
    );
  });

  it('buildHfTokenizer names the source the library rejects', () => {
    expect(() => buildHfTokenizer({ model: { type: 'Nonsense' } }, {}, 'somewhere')).toThrow(ConfigError);
    expect(() => buildHfTokenizer({ model: { type: 'Nonsense' } }, {}, 'somewhere')).toThrow(/^Cannot build a tokenizer from somewhere: /);
  });
});
