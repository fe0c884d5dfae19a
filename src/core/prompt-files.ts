/**
 * The prompt files vlcurate ships in `prompts/` (or a recipe's `synth.promptsDir`): finding the folder,
 * reading a file, and the instruction lists `prompts/instructions/*.txt`, one instruction per line. The
 * lists are read by synthesis and by the LLaVA reader (which recognises our own brief instructions), so they
 * live here rather than in `synth/`; the task prompts are `synth/prompts.ts`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from './errors.js';

/** The `prompts/` folder shipped with vlcurate: found by walking up from this module (src/ or dist/src/). */
export function defaultPromptsDir(): string {
  let dir = import.meta.dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'prompts');
    if (existsSync(join(candidate, 'conversation', 'system.md'))) return candidate;
    dir = dirname(dir);
  }
  throw new ConfigError(`prompts: cannot find the bundled prompts/ folder above ${import.meta.dirname}; set synth.promptsDir`);
}

/** A prompt file's text (CRLF as LF, trimmed); a configuration error naming `what` when it cannot be read. */
export function readPromptText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r\n/g, '\n').trim();
  } catch (err) {
    throw new ConfigError(`${what}: cannot read "${path}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

export type InstructionListName = 'brief' | 'detailed' | 'grounding' | 'referring';

/** One instruction per line; blank lines and lines starting with `#` are skipped. */
export function loadInstructionList(name: InstructionListName, promptsDir: string = defaultPromptsDir()): string[] {
  const path = resolve(promptsDir, 'instructions', `${name}.txt`);
  const lines = readPromptText(path, `prompts/instructions/${name}.txt`)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length === 0) throw new ConfigError(`prompts/instructions/${name}.txt: expected at least one instruction, got none`);
  return lines;
}
