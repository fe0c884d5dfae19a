/**
 * Instruction samples made from templates, without an LLM:
 *
 * - `stage1` (LLaVA's pretraining pairs): a brief-description instruction and the sample's published
 *   caption as the answer.
 * - `grounding`: for each distinct box label, "where is the {label}?" answered with its box (all boxes
 *   when the label has several instances), in the chosen region format.
 * - `referring`: for each box, "what is in {region}?" answered with its label.
 *
 * Instructions are picked from our lists with a seed made of the run seed and the sample key, so a
 * re-run makes the same samples.
 */
import { IMAGE_TOKEN, type Turn } from '../core/conversation.js';
import { publishedCaption, type BoxXYXY } from '../core/sample.js';
import { cleanText, type SynthInput } from './context.js';
import { formatGrounding, formatRegion, type RegionFormat } from '../regions/region-format.js';
import { seededPick, seededShuffle } from './seeded.js';

export type TemplateTaskName = 'stage1' | 'grounding' | 'referring';

export interface TemplateOptions {
  seed: number;
  regionFormat: RegionFormat;
  padToSquare: boolean;
  /** Most question and answer turns in one grounding or referring sample. */
  maxRegions: number;
}

export interface InstructionLists {
  brief: readonly string[];
  detailed: readonly string[];
  grounding: readonly string[];
  referring: readonly string[];
}

/** A sample made, or the reason none could be (`no_caption`, `no_boxes`). */
export type TemplateResult = { ok: true; conversations: Turn[] } | { ok: false; code: string; detail: string };

/** `<image>\n` once, at the start of the first human turn. */
export function withImage(firstQuestion: string): string {
  return `${IMAGE_TOKEN}\n${firstQuestion}`;
}

/** Turns from question/answer pairs, the image token on the first question. */
export function toTurns(pairs: readonly { question: string; answer: string }[]): Turn[] {
  return pairs.flatMap((pair, i) => [
    { from: 'human' as const, value: i === 0 ? withImage(pair.question) : pair.question },
    { from: 'gpt' as const, value: pair.answer },
  ]);
}

export function stage1Sample(input: SynthInput, lists: InstructionLists, options: TemplateOptions, variant = 0): TemplateResult {
  const caption = publishedCaption(input.captions);
  const text = caption ? caption.text.trim() : '';
  if (!caption || text === '') return { ok: false, code: 'no_caption', detail: 'the sample has no published caption' };
  const instruction = seededPick(lists.brief, options.seed, input.key, 'stage1', variant);
  return { ok: true, conversations: toTurns([{ question: instruction, answer: text }]) };
}

/** Markup a box label must not carry into a sample: special tokens, region placeholders, the image token. */
const LABEL_MARKUP = /<\|[A-Za-z0-9_]+\|>|<\/?region\b|<image>/i;

function usableBoxes(input: SynthInput): { label: string; corners: BoxXYXY }[] {
  return input.boxes
    .map((box) => ({ label: cleanText(box.label, 100), corners: box.box }))
    .filter(({ label, corners: [x1, y1, x2, y2] }) => label !== '' && !LABEL_MARKUP.test(label) && x2 > x1 && y2 > y1);
}

function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
}

export function groundingSample(input: SynthInput, lists: InstructionLists, options: TemplateOptions, variant = 0): TemplateResult {
  const boxes = usableBoxes(input);
  if (boxes.length === 0) return { ok: false, code: 'no_boxes', detail: 'the sample has no boxes to ground' };
  const byLabel = new Map<string, BoxXYXY[]>();
  for (const { label, corners } of boxes) {
    const list = byLabel.get(label) ?? [];
    list.push(corners);
    byLabel.set(label, list);
  }
  const frame = { width: input.width, height: input.height, padToSquare: options.padToSquare };
  const labels = seededShuffle([...byLabel.keys()], options.seed, input.key, 'grounding', variant).slice(0, options.maxRegions);
  const pairs = labels.map((label) => ({
    question: fill(seededPick(lists.grounding, options.seed, input.key, 'grounding', variant, label), { label }),
    answer: formatGrounding(options.regionFormat, label, byLabel.get(label)!, frame),
  }));
  return { ok: true, conversations: toTurns(pairs) };
}

export function referringSample(input: SynthInput, lists: InstructionLists, options: TemplateOptions, variant = 0): TemplateResult {
  const boxes = usableBoxes(input);
  if (boxes.length === 0) return { ok: false, code: 'no_boxes', detail: 'the sample has no boxes to describe' };
  const frame = { width: input.width, height: input.height, padToSquare: options.padToSquare };
  const seen = new Set<string>();
  const distinct = boxes.filter(({ corners }) => {
    const id = formatRegion(options.regionFormat, corners, frame);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  const chosen = seededShuffle(distinct, options.seed, input.key, 'referring', variant).slice(0, options.maxRegions);
  const pairs = chosen.map(({ label, corners }, i) => {
    const region = formatRegion(options.regionFormat, corners, frame);
    return { question: fill(seededPick(lists.referring, options.seed, input.key, 'referring', variant, i), { region }), answer: label };
  });
  return { ok: true, conversations: toTurns(pairs) };
}
