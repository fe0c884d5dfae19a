/**
 * Refusal detection. A model that apologises, speaks as an AI, or says it cannot see the image has not
 * described the image, and such an answer must never become training data. The rules look for the
 * model's own first-person voice ("I can't see the image"), not for words like "sorry" or "cannot"
 * on their own: "The dog cannot reach the ball" is about the scene and passes.
 */
import type { Rejection } from './parse-answer.js';

interface RefusalRule {
  /** What the answer does, for the rejection's detail: `says it cannot see the image ("...")`. */
  what: string;
  pattern: RegExp;
}

const IMAGE = '(?:image|picture|photo|photograph|visual)s?';
/** "I can't", "I am unable to", "I don't have the ability to" and their kin; after apostrophes are straightened. */
const I_CANNOT =
  "\\bI(?:\\s+(?:cannot|can\\s*not|can't|could\\s*not|couldn't|won't\\s+be\\s+able\\s+to|do\\s+not|don't|have\\s+no\\s+way\\s+to)|(?:\\s+am|'m)\\s+(?:unable|not\\s+able)\\s+to|\\s+(?:do\\s+not|don't)\\s+have\\s+(?:the\\s+)?(?:ability|capability|means|way)\\s+to)";
const PERCEIVE = '(?:see|view|access|analy[sz]e|process|look\\s+at|perceive|interpret|open|examine|observe|describe|display|read)';
/**
 * Only the input image as the object: "I can't see a cat in this picture" is an answer, and "I can't see
 * a picture on the wall" is about the scene, so "picture" and "photo" need a determiner that points at
 * the input ("this", "your", "the attached") or a generic plural; "image" is rarely a scene object.
 */
const THE_IMAGE =
  `(?:(?:(?:the|this|that|these|your|an|any)\\s+)?(?:(?:provided|attached|given|uploaded|shared|actual|specific)\\s+)?images?` +
  `|(?:this|these|your|the\\s+(?:provided|attached|given|uploaded|shared|actual))\\s+(?:picture|photo|photograph|visual)s?` +
  `|(?:pictures|photos|photographs|visuals|visual\\s+content))\\b`;
/** Any image noun with any determiner, where the verb ("access to", "without seeing") already says it is the input. */
const ANY_IMAGE = `(?:(?:the|this|that|these|your|an?|any)\\s+)?(?:(?:provided|attached|given|uploaded|shared|actual|specific)\\s+)?${IMAGE}\\b`;
const INABILITY = "\\b(?:cannot|can\\s*not|can't|unable|not\\s+able|won't\\s+be\\s+able|(?:do\\s+not|don't)\\s+have)\\b";

const RULES: readonly RefusalRule[] = [
  {
    what: 'apologises and declines',
    // The apology and the "cannot" in one stretch of text; a scene where someone is sorry has no "I'm sorry".
    pattern: new RegExp(`(?:\\bI(?:'m|\\s+am)\\s+(?:so\\s+|very\\s+|really\\s+|truly\\s+)?sorry|\\bI\\s+(?:must\\s+|do\\s+)?apologi[sz]e|\\b(?:my\\s+)?apologies|(?:^|[.!?]\\s+)sorry)\\b[^\\n]{0,160}?${INABILITY}`, 'im'),
  },
  { what: 'speaks as an AI', pattern: /\bas\s+an?\s+(?:AI|artificial\s+intelligence)(?:[\s-]+(?:text-based\s+|language\s+|visual\s+)?(?:language\s+)?(?:model|assistant|system|chatbot)\b|\s*,?\s+I\b)/i },
  { what: 'speaks as an AI', pattern: /\bas\s+an?\s+(?:large\s+)?(?:language\s+model|LLM)\b/i },
  { what: 'speaks as an AI', pattern: /\bI(?:'m|\s+am)\s+(?:just\s+|only\s+|merely\s+|simply\s+)?(?:an?\s+)?(?:text-based\s+)?(?:AI|artificial\s+intelligence|(?:large\s+)?language\s+model)\b/i },
  { what: 'says it cannot see the image', pattern: new RegExp(`${I_CANNOT}\\s+${PERCEIVE}(?:\\s+(?:or|and|,)\\s+${PERCEIVE})*\\s+${THE_IMAGE}`, 'i') },
  { what: 'says it cannot see the image', pattern: new RegExp(`\\bI\\s+(?:do\\s+not|don't|have\\s+no)\\s+(?:have\\s+)?(?:any\\s+)?access\\s+to\\s+${ANY_IMAGE}`, 'i') },
  {
    what: 'declines to help',
    pattern: new RegExp(`${I_CANNOT}\\s+(?:help|assist)(?:\\s+you)?\\s+with\\s+(?:that|this|it|your\\s+request|the\\s+request)\\b|${I_CANNOT}\\s+(?:comply|fulfil+\\s+(?:that|this|your|the)\\s+request)\\b`, 'i'),
  },
  // "There is no picture on the wall" is a scene; only the missing input counts.
  {
    what: 'says there is no image',
    pattern: new RegExp(
      `\\bthere(?:\\s+is|'s|\\s+was)\\s+no\\s+(?:image\\b(?=\\s*(?:[.,;!]|$))|${IMAGE}\\s+(?:(?:provided|attached|shared|uploaded|included)\\b|to\\s+${PERCEIVE}\\b|(?:here|in\\s+(?:your|this|the)\\s+(?:message|request|conversation|prompt))\\b|for\\s+me\\b))`,
      'i',
    ),
  },
  { what: 'says there is no image', pattern: new RegExp(`\\bno\\s+${IMAGE}\\s+(?:(?:was|were|has\\s+been|have\\s+been|is)\\s+)?(?:provided|attached|shared|uploaded)\\b`, 'i') },
  { what: 'says there is no image', pattern: new RegExp(`\\byou\\s+(?:have\\s+not|haven't|did\\s+not|didn't)\\s+(?:provided|provide|shared|share|attached|attach|uploaded|upload|included|include)\\s+${THE_IMAGE}`, 'i') },
  {
    what: 'answers without the image',
    pattern: new RegExp(`\\bwithout\\s+(?:(?:being\\s+able\\s+to|actually)\\s+)?(?:see(?:ing)?|view(?:ing)?|look(?:ing)?\\s+at|(?:having\\s+)?access(?:ing)?(?:\\s+to)?|having\\s+seen)\\s+${ANY_IMAGE}`, 'i'),
  },
];

/** Curly and other look-alike apostrophes become `'`, so one pattern serves "can't" and "can’t". */
function straighten(text: string): string {
  return text.replace(/[\u2018\u2019\u201B\u02BC\u0060\u00B4]/g, "'").replace(/[\u201C\u201D\u201E]/g, '"');
}

/**
 * Quoted text is the scene speaking (a sign reading 'Sorry, we can't help you'), not the model.
 * A single quote opens after a non-letter and closes before one, so "can't" and "dogs' bowls" stay.
 */
function withoutQuotes(text: string): string {
  return text.replace(/"[^"\n]{0,200}"/g, '""').replace(/(?<![\w'])'[^\n]{0,200}?'(?![\w])/g, "''");
}

function quote(text: string, max = 60): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(line.length > max ? `${line.slice(0, max)}...` : line);
}

/** The first refusal or "I can't see the image" disclaimer in a text, or null. */
export function findRefusal(text: string): Rejection | null {
  const plain = withoutQuotes(straighten(text));
  for (const rule of RULES) {
    const match = rule.pattern.exec(plain);
    if (match) return { code: 'refusal', detail: `${rule.what} (${quote(match[0].replace(/^[.!?]\s+/, ''))})` };
  }
  return null;
}
