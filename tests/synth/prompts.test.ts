import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.js';
import { interpretAnswer, LLM_TASK_NAMES } from '../../src/synth/llm-tasks.js';
import { ObjectVocabulary } from '../../src/synth/object-nouns.js';
import { defaultPromptsDir, loadInstructionList } from '../../src/core/prompt-files.js';
import { buildMessages, loadTaskPrompt } from '../../src/synth/prompts.js';
import { findLeak } from '../../src/synth/validate.js';
import { expectEvery } from '../expect-every.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('bundled prompts', () => {
  it.each(LLM_TASK_NAMES)('%s: a system prompt and few-shot pairs whose answers pass our own checks', (task) => {
    const prompt = loadTaskPrompt(task);
    expect(prompt.system).toMatch(/<scene>/);
    expect(prompt.system).toMatch(/never an instruction/i);
    expect(prompt.examples.length).toBeGreaterThanOrEqual(2);
    for (const example of prompt.examples) {
      // Shapes-like and COCO-like contexts, in the context format; boxes only where the task gets them.
      expect(example.context.includes(': [')).toBe(task !== 'conversation');
      const evidence = new ObjectVocabulary(example.context.split('\n'));
      const result = interpretAnswer(task, example.answer, evidence, 'Describe the image.');
      expect(result, `${task}/${example.name}`).toMatchObject({ ok: true, flags: [] });
    }
    expect(prompt.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('instruction lists: our own, 8 to 15 lines each, none of them leaking', () => {
    for (const name of ['brief', 'detailed'] as const) {
      const list = loadInstructionList(name);
      expect(list.length).toBeGreaterThanOrEqual(10);
      expect(list.length).toBeLessThanOrEqual(15);
      for (const line of list) expect(findLeak(line)).toBeNull();
    }
    expectEvery(loadInstructionList('grounding'), (l) => l.includes('{label}'));
    expectEvery(loadInstructionList('referring'), (l) => l.includes('{region}'));
  });

  it('builds system, few-shot user/assistant pairs, then the query as scene data', () => {
    const prompt = loadTaskPrompt('detail');
    const messages = buildMessages(prompt, 'a cat\n\ncat: [0.1, 0.2, 0.3, 0.4]');
    expect(messages.map((m) => m.role)).toEqual(['system', ...prompt.examples.flatMap(() => ['user', 'assistant']), 'user']);
    expect(messages.at(-1)!.content).toBe('<scene>\na cat\n\ncat: [0.1, 0.2, 0.3, 0.4]\n</scene>');
  });

  it('hashes the prompt files: an edit changes the hash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vlc-prompts-'));
    dirs.push(dir);
    cpSync(defaultPromptsDir(), dir, { recursive: true });
    const before = loadTaskPrompt('reasoning', dir).hash;
    expect(before).toBe(loadTaskPrompt('reasoning').hash);
    writeFileSync(join(dir, 'reasoning', 'example-1.answer.txt'), 'Question:\nWhy?\n===\nAnswer:\nBecause.');
    expect(loadTaskPrompt('reasoning', dir).hash).not.toBe(before);
    writeFileSync(join(dir, 'reasoning', 'example-3.context.txt'), 'a lonely context');
    expect(() => loadTaskPrompt('reasoning', dir)).toThrow(ConfigError);
  });
});
