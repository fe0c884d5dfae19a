/**
 * The LLM-written tasks (LLaVA's three): `conversation` (several question and answer turns, from the
 * captions only), `detail` (one descriptive paragraph, answered to a random detailed-description
 * instruction) and `reasoning` (a question needing reasoning, with a worked answer). Each gets the
 * captions-plus-boxes context except `conversation`, which gets captions only.
 */
import type { Turn } from '../core/conversation.js';
import type { ChatRequest } from '../backends/llm-client.js';
import { buildContext, type BuiltContext, type SynthInput } from './context.js';
import { ObjectVocabulary } from './object-nouns.js';
import { parseParagraph, parseQaBlocks, type Rejection } from './parse-answer.js';
import { buildMessages, type LlmTaskName, type TaskPrompt } from './prompts.js';
import { toTurns } from './template-tasks.js';
import { findLeak, findLeakIn } from './validate.js';

export const LLM_TASK_NAMES = ['conversation', 'detail', 'reasoning'] as const satisfies readonly LlmTaskName[];

export function isLlmTask(task: string): task is LlmTaskName {
  return (LLM_TASK_NAMES as readonly string[]).includes(task);
}

/** Whether a task's context lists the boxes. */
export const TASK_USES_BOXES: Readonly<Record<LlmTaskName, boolean>> = { conversation: false, detail: true, reasoning: true };

/** What a task knows about one image: its context text and the evidence answers are checked against. */
export interface TaskContext {
  context: BuiltContext;
  evidence: ObjectVocabulary;
}

export function taskContext(task: LlmTaskName, input: SynthInput): TaskContext {
  const context = buildContext(input, { boxes: TASK_USES_BOXES[task] });
  // Evidence is everything known about the image, whatever the task was shown.
  const all = buildContext(input, { boxes: true });
  const evidence = new ObjectVocabulary([...all.captionLines, ...input.boxes.map((b) => b.label)]);
  return { context, evidence };
}

/** The chat request for one attempt; `seed` differs per attempt, so a retry is a fresh sample (and a new cache key). */
export function llmRequest(prompt: TaskPrompt, contextText: string, seed: number): ChatRequest {
  return { messages: buildMessages(prompt, contextText), parameters: { seed }, promptHash: prompt.hash };
}

export type Interpreted = { ok: true; conversations: Turn[]; flags: string[] } | ({ ok: false } & Rejection);

/** Parse and check an answer; on success the LLaVA turns (with `<image>\n` on the first human turn). */
export function interpretAnswer(task: LlmTaskName, text: string, evidence: ObjectVocabulary, detailInstruction: string): Interpreted {
  if (task === 'detail') {
    const parsed = parseParagraph(text);
    if (!parsed.ok) return parsed;
    const leak = findLeak(parsed.value, evidence);
    if (leak) return { ok: false, ...leak };
    const unsupported = evidence.unsupported(parsed.value);
    return {
      ok: true,
      conversations: toTurns([{ question: detailInstruction, answer: parsed.value }]),
      flags: unsupported.length > 0 ? [`unsupported_objects: ${unsupported.join(', ')}`] : [],
    };
  }
  const parsed = parseQaBlocks(text);
  if (!parsed.ok) return parsed;
  const texts = parsed.value.flatMap((pair) => [pair.question, pair.answer]);
  const leak = findLeakIn(texts, evidence);
  if (leak) return { ok: false, ...leak };
  const unsupported = evidence.unsupported(parsed.value.map((pair) => pair.answer).join('\n'));
  return {
    ok: true,
    conversations: toTurns(parsed.value),
    flags: unsupported.length > 0 ? [`unsupported_objects: ${unsupported.join(', ')}`] : [],
  };
}
