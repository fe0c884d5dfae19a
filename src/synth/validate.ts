/**
 * Checks on parsed answers. Leakage rejects: the answer (or a question) talks about where its knowledge
 * came from — captions, descriptions, annotations, boxes, coordinates — instead of about the image.
 * Unsupported objects only flag: an answer naming an object that no caption or box label mentions is
 * kept, with the nouns noted in its reason. Refusals ("I'm sorry, I can't see the image") reject too, as
 * `refusal`, ahead of any leak they contain: see `refusal.ts`.
 */
import type { Rejection } from './parse-answer.js';
import type { ObjectVocabulary } from './object-nouns.js';
import { findRefusal } from './refusal.js';

interface LeakRule {
  code: string;
  pattern: RegExp;
  /** The rule does not apply when the image's own evidence uses this word (a cardboard box is an object). */
  unlessEvidenceHas?: string;
}

const SOURCE_NOUNS = '(?:description|descriptions|caption|captions|annotation|annotations|sentence|sentences|text|context|data|information|metadata)';

const LEAK_RULES: readonly LeakRule[] = [
  { code: 'leak_caption', pattern: /\bcaption(?:s|ed|ing)?\b/i },
  { code: 'leak_annotation', pattern: /\bannotat(?:ion|ions|ed|or|ors)\b/i },
  { code: 'leak_box', pattern: /\bbounding\b/i },
  { code: 'leak_box', pattern: /\bbox(?:es)?\b/i, unlessEvidenceHas: 'box' },
  { code: 'leak_coordinates', pattern: /\bco-?ordinates?\b/i },
  { code: 'leak_coordinates', pattern: /\[\s*-?\d*\.?\d+\s*,\s*-?\d*\.?\d+/ },
  { code: 'leak_coordinates', pattern: /\b[xy][12]\b/ },
  {
    code: 'leak_source',
    pattern: new RegExp(`\\b(?:the|this|that|these|those|given|provided)\\s+${SOURCE_NOUNS}\\s+(?:says?|said|mentions?|mentioned|states?|stated|notes?|noted|indicates?|indicated|suggests?|describes?|described|lists?|listed|shows?)\\b`, 'i'),
  },
  { code: 'leak_source', pattern: new RegExp(`\\baccording to (?:the|these|this|those|my|your)\\s+${SOURCE_NOUNS}\\b`, 'i') },
  { code: 'leak_source', pattern: /\b(?:i|you|we) (?:was|were|have been|has been|am|are) (?:given|told|provided)\b/i },
  { code: 'leak_source', pattern: /\b(?:based on|from) the (?:provided|given) (?:description|descriptions|caption|captions|information|details|text)\b/i },
  { code: 'leak_source', pattern: /<\s*\/?\s*scene\s*>/i },
];

/**
 * The first reason to reject a text, or null: a refusal, else the first leak. Every LLM task checks its
 * texts here, so a refusal takes the same reject-and-retry path as a leak.
 */
export function findLeak(text: string, evidence: ObjectVocabulary | null = null): Rejection | null {
  const refusal = findRefusal(text);
  if (refusal) return refusal;
  for (const rule of LEAK_RULES) {
    const match = rule.pattern.exec(text);
    if (!match) continue;
    if (rule.unlessEvidenceHas && evidence?.hasWord(rule.unlessEvidenceHas)) continue;
    return { code: rule.code, detail: `mentions ${JSON.stringify(match[0])}` };
  }
  return null;
}

/** Refusals or leaks in any of several texts (every question and answer of a conversation). */
export function findLeakIn(texts: readonly string[], evidence: ObjectVocabulary | null = null): Rejection | null {
  for (const text of texts) {
    const leak = findLeak(text, evidence);
    if (leak) return leak;
  }
  return null;
}
