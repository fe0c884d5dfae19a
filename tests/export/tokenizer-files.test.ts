/**
 * A `tokenizer` that is missing or incomplete fails with the files the template needs and where to get
 * them (the trained model's own folder), before any sample is read: exit 2.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { checkTokenizerFiles } from '../../src/export/tokenizer-files.js';
import { makeGoodSamples, sampleMembers, writeTar } from '../fixtures/make-webdataset.js';
import { MINI_LLAMA, MINI_QWEN } from '../fixtures/tokenizers.js';
import { cleanup, tempDir } from './fixtures.js';

afterEach(cleanup);

const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

function messageOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('tokenizer folder check', () => {
  it('accepts the model folders of both kinds, and a tokenizer_config file inside one', () => {
    expect(() => checkTokenizerFiles(MINI_LLAMA, 'vicuna_v1')).not.toThrow();
    expect(() => checkTokenizerFiles(MINI_QWEN, 'qwen2_vl')).not.toThrow();
    expect(() => checkTokenizerFiles(join(MINI_LLAMA, 'tokenizer_config.nonlegacy.json'), 'vicuna_v1')).not.toThrow();
  });

  it('names the files each template needs', () => {
    const missing = join(tempDir(), 'tokenizers', 'llama2');
    const llama = messageOf(() => checkTokenizerFiles(missing, 'vicuna_v1'));
    expect(llama).toContain(`tokenizer: "${missing}" does not exist.`);
    expect(llama).toContain('Point `tokenizer` at the folder of the model you train');
    expect(llama).toContain('template vicuna_v1 needs there: tokenizer.json and tokenizer_config.json');
    const qwen = messageOf(() => checkTokenizerFiles(missing, 'qwen2_vl'));
    expect(qwen).toContain('template qwen2_vl needs there: tokenizer.json (or vocab.json + merges.txt), tokenizer_config.json');
    expect(qwen).toContain('preprocessor_config.json');
  });

  it('says what is missing from a folder, and how to make tokenizer.json from tokenizer.model', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.model'), 'sentencepiece');
    const message = messageOf(() => checkTokenizerFiles(dir, 'plain'));
    expect(message).toMatch(/has no tokenizer\.json \(the folder has only the sentencepiece tokenizer\.model: .*save_pretrained/);
    expect(message).toContain('and no tokenizer_config.json');
    const qwenDir = tempDir();
    copyFileSync(join(MINI_QWEN, 'vocab.json'), join(qwenDir, 'vocab.json'));
    copyFileSync(join(MINI_QWEN, 'merges.txt'), join(qwenDir, 'merges.txt'));
    expect(messageOf(() => checkTokenizerFiles(qwenDir, 'qwen2_vl'))).toMatch(/has no tokenizer_config\.json\. Point/);
  });

  it('build: an export whose tokenizer folder has only tokenizer.model stops with exit 2 and the list', async () => {
    const dir = tempDir();
    await writeTar(join(dir, 'a.tar'), (await makeGoodSamples(2)).flatMap(sampleMembers));
    mkdirSync(join(dir, 'vicuna'));
    writeFileSync(join(dir, 'vicuna', 'tokenizer.model'), 'sentencepiece');
    writeFileSync(
      join(dir, 'recipe.json'),
      JSON.stringify({ run: { db: 'run.db' }, sources: [{ type: 'webdataset', paths: 'a.tar' }], export: [{ type: 'llava', out: 'llava', tokenizer: 'vicuna' }] }),
    );
    const result = spawnSync(process.execPath, [CLI, 'build', join(dir, 'recipe.json'), '--progress', 'plain'], { encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/export\[0\]: tokenizer: .*vicuna has no tokenizer\.json .* and no tokenizer_config\.json\. Point `tokenizer` at the folder of the model you train/);
    expect(result.stderr).toContain('template vicuna_v1 needs there: tokenizer.json and tokenizer_config.json');
  });
});
