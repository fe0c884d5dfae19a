/**
 * Prompt files (`prompts/<task>/`): `system.md`, and few-shot pairs `example-N.context.txt` (a context in
 * the format of `context.ts`) with `example-N.answer.txt` (the reference answer). Instruction lists live
 * in `prompts/instructions/*.txt`, one per line. A task's content hash covers its files (names and
 * bytes) and enters the cache key, so editing a prompt makes new requests instead of reusing old answers.
 * Finding the bundled folder and the instruction lists: `core/prompt-files.ts`.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { defaultPromptsDir, readPromptText } from '../core/prompt-files.js';
import type { ChatMessage } from '../backends/llm-client.js';
import { sceneMessage } from './context.js';

export type LlmTaskName = 'conversation' | 'detail' | 'reasoning';

export interface FewShotExample {
  name: string;
  context: string;
  answer: string;
}

export interface TaskPrompt {
  task: LlmTaskName;
  system: string;
  examples: FewShotExample[];
  /** sha256 over the task's prompt files. */
  hash: string;
}

/** Load a task's system prompt and few-shot pairs. */
export function loadTaskPrompt(task: LlmTaskName, promptsDir: string = defaultPromptsDir()): TaskPrompt {
  const dir = resolve(promptsDir, task);
  const hash = createHash('sha256');
  const system = readPromptText(join(dir, 'system.md'), `prompts/${task}`);
  if (system === '') throw new ConfigError(`prompts/${task}/system.md: expected a system prompt, got an empty file`);
  hash.update(`system.md\0${system}\0`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new ConfigError(`prompts/${task}: cannot list "${dir}" (${(err as Error).message})`);
  }
  const numbers = [...new Set(names.map((n) => /^example-(\d+)\.(context|answer)\.txt$/.exec(n)?.[1]).filter((n): n is string => n !== undefined))]
    .map(Number)
    .sort((a, b) => a - b);
  const examples: FewShotExample[] = [];
  for (const n of numbers) {
    const contextPath = join(dir, `example-${n}.context.txt`);
    const answerPath = join(dir, `example-${n}.answer.txt`);
    if (!existsSync(contextPath) || !existsSync(answerPath)) {
      throw new ConfigError(`prompts/${task}: example-${n} needs both example-${n}.context.txt and example-${n}.answer.txt`);
    }
    const example = { name: `example-${n}`, context: readPromptText(contextPath, `prompts/${task}`), answer: readPromptText(answerPath, `prompts/${task}`) };
    hash.update(`${example.name}.context.txt\0${example.context}\0${example.name}.answer.txt\0${example.answer}\0`);
    examples.push(example);
  }
  return { task, system, examples, hash: hash.digest('hex') };
}

/** System prompt, the few-shot pairs (user = context, assistant = answer), then the query context. */
export function buildMessages(prompt: TaskPrompt, contextText: string): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: prompt.system }];
  for (const example of prompt.examples) {
    messages.push({ role: 'user', content: sceneMessage(example.context) });
    messages.push({ role: 'assistant', content: example.answer });
  }
  messages.push({ role: 'user', content: sceneMessage(contextText) });
  return messages;
}
