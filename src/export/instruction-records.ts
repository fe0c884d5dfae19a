/**
 * The records an export writes for one sample: one per instruction sample of the selected tasks, plus a
 * stage-1 record derived from the published caption when `stage1` is selected and synthesis made none.
 * Each record is checked before it is written: turns alternate human, gpt, ..., end with gpt, none empty;
 * `<image>` appears at most once and only in the first human turn (a record without it is text-only); the
 * text holds no special-token strings (a caption saying `<|im_end|>` would break the template) other than
 * Qwen's grounding tokens.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { IMAGE_TOKEN, type InstructionSample, type InstructionTask, type Turn, type WithInstructions } from '../core/conversation.js';
import { publishedCaption } from '../core/sample.js';
import { stableHash } from '../core/shard.js';
import type { ExportableSample } from './webdataset-sample.js';

/** Every task, in the order records are written. */
export const ALL_TASKS: readonly InstructionTask[] = ['imported', 'conversation', 'detail', 'reasoning', 'grounding', 'referring', 'stage1'];

/** A sample as exports of conversations see it: decoded, perhaps with synthesized instruction samples. */
export type InstructionExportable = ExportableSample & WithInstructions;

/** One record before it is rendered for a format: canonical region placeholders, as stored. */
export interface SourceRecord {
  /** `KEY-TASK-VARIANT`: unique per export. */
  id: string;
  sampleKey: string;
  task: InstructionTask;
  variant: number;
  conversations: readonly Turn[];
}

export interface RecordProblem {
  code: FailureCode;
  message: string;
}

/**
 * Brief-description requests for stage-1 records derived from captions (our own wording). The choice is a
 * hash of the key, so a re-export writes the same record.
 */
export const BRIEF_INSTRUCTIONS: readonly string[] = [
  'Describe the image briefly.',
  'Give a short description of this picture.',
  'Write a one-line caption for this photo.',
  'What does this image show? Answer in a few words.',
  'Summarize the picture in one short sentence.',
  'Provide a concise caption for the image.',
  'Say briefly what is in this image.',
  'Caption this image.',
];

export function recordId(sampleKey: string, task: string, variant: number): string {
  return `${sampleKey}-${task}-${variant}`;
}

/** The stage-1 record of a sample's published caption, or null when it has none. */
export function stage1Record(sample: InstructionExportable): SourceRecord | null {
  const caption = publishedCaption(sample.captions);
  if (!caption || caption.text.trim().length === 0) return null;
  const instruction = BRIEF_INSTRUCTIONS[stableHash(sample.key) % BRIEF_INSTRUCTIONS.length]!;
  return {
    id: recordId(sample.key, 'stage1', 0),
    sampleKey: sample.key,
    task: 'stage1',
    variant: 0,
    conversations: [
      { from: 'human', value: `${IMAGE_TOKEN}\n${instruction}` },
      { from: 'gpt', value: caption.text.trim() },
    ],
  };
}

/** The records of `sample` for the selected tasks, in {@link ALL_TASKS} order, then by variant. */
export function collectRecords(sample: InstructionExportable, tasks: ReadonlySet<InstructionTask>): SourceRecord[] {
  const order = (task: InstructionTask) => ALL_TASKS.indexOf(task);
  const chosen: InstructionSample[] = (sample.instructions ?? []).filter((i) => tasks.has(i.task));
  // During a build the source's own conversation rides on the sample; read back, it is an instruction row.
  if (tasks.has('imported') && sample.conversations?.length && !chosen.some((i) => i.task === 'imported')) {
    chosen.push({ sampleKey: sample.key, task: 'imported', variant: 0, conversations: sample.conversations });
  }
  chosen.sort((a, b) => order(a.task) - order(b.task) || a.variant - b.variant);
  const records: SourceRecord[] = chosen.map((i) => ({
    id: recordId(sample.key, i.task, i.variant),
    sampleKey: sample.key,
    task: i.task,
    variant: i.variant,
    conversations: i.conversations,
  }));
  if (tasks.has('stage1') && !chosen.some((i) => i.task === 'stage1')) {
    const derived = stage1Record(sample);
    if (derived) records.push(derived);
  }
  return records;
}

/** Qwen-style special tokens (`<|im_end|>`, `<|vision_start|>`, ...), refused in text even without a tokenizer. */
const SPECIAL_LIKE = /<\|[A-Za-z0-9_]+\|>/;

/**
 * Qwen grounding tokens belong in the text of grounding and referring samples only: synthesis writes
 * them there with `regionFormat: qwen2vl` (the export's `qwen2vl` region format renders them after this
 * check). In any other turn (a web caption, an LLM answer) they are untrusted text and refused.
 */
export const GROUNDING_TOKENS: readonly string[] = ['<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>'];

function withoutGroundingTokens(text: string): string {
  let out = text;
  for (const token of GROUNDING_TOKENS) out = out.replaceAll(token, ' ');
  return out;
}

function countOf(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

/**
 * Check a record's turns. Returns whether it has an image, or the problem. `findSpecial` finds a
 * special-token string of the configured tokenizer in a text (null: none); `allowGroundingTokens` for
 * grounding and referring samples (see {@link GROUNDING_TOKENS}).
 */
export function checkConversation(
  turns: unknown,
  findSpecial: (text: string) => string | null = () => null,
  allowGroundingTokens = false,
): { hasImage: boolean } | RecordProblem {
  if (!Array.isArray(turns)) return { code: 'conversation_invalid', message: 'the record\'s conversations are not a list of turns' };
  if (turns.length === 0) return { code: 'conversation_empty', message: 'the record has no turns' };
  let images = 0;
  for (let i = 0; i < turns.length; i++) {
    const turn = turns[i] as Partial<Turn> | null;
    if (!turn || (turn.from !== 'human' && turn.from !== 'gpt') || typeof turn.value !== 'string') {
      return { code: 'conversation_invalid', message: `turn ${i} is not {from: "human"|"gpt", value: string}` };
    }
    const expected = i % 2 === 0 ? 'human' : 'gpt';
    if (turn.from !== expected) {
      return { code: 'conversation_alternation', message: `turn ${i} is from ${turn.from}, expected ${expected} (turns alternate human, gpt, starting with human)` };
    }
    const withoutImage = turn.value.replaceAll(IMAGE_TOKEN, '');
    if (withoutImage.trim().length === 0) return { code: 'conversation_empty_turn', message: `turn ${i} (${turn.from}) has no text` };
    const n = countOf(turn.value, IMAGE_TOKEN);
    if (n > 0 && i !== 0) return { code: 'image_token_position', message: `turn ${i} has ${IMAGE_TOKEN}; it may only be in the first human turn` };
    images += n;
    const plain = allowGroundingTokens ? withoutGroundingTokens(turn.value) : turn.value;
    const special = findSpecial(plain) ?? SPECIAL_LIKE.exec(plain)?.[0] ?? null;
    if (special !== null) return { code: 'text_special_token', message: `turn ${i} contains the special token ${JSON.stringify(special)}` };
  }
  if (turns.length % 2 !== 0) return { code: 'conversation_alternation', message: `the record ends with a human turn (${turns.length} turns)` };
  if (images > 1) return { code: 'image_token_count', message: `${IMAGE_TOKEN} appears ${images} times; at most once` };
  return { hasImage: images === 1 };
}

export function isProblem(value: { hasImage: boolean } | RecordProblem): value is RecordProblem {
  return 'code' in value;
}
