/**
 * Judge the spatial relations a caption states against the boxes, by the generator's own rule
 * (`relationHolds`: the dominant axis between box centres decides; "next to" only for side-by-side
 * objects). Reads the domain's caption grammar: `<object> <relation> <object | it>`, where "it" is the
 * object a "with" clause hangs on ("A with B above it") or else the object of the previous relation
 * ("A left of B and C above it").
 */
import { relationHolds } from './captions.js';
import { captionIsCorrect } from './judge.js';
import type { SceneObject } from './scene.js';
import { isColor, isShape, RELATIONS, type Relation } from './vocabulary.js';

type Truth = { objects: readonly Pick<SceneObject, 'shape' | 'color' | 'size' | 'box'>[] };

type Item = { kind: 'object'; at: number } | { kind: 'relation'; relation: Relation } | { kind: 'it' } | { kind: 'with' };

const RELATION_WORDS = RELATIONS.map((relation) => ({ relation, words: relation.split(' ') }));

/** The caption as objects (index into the scene, -1 when absent), relation phrases, "it" and "with". */
function items(caption: string, truth: Truth): Item[] {
  const words = caption.toLowerCase().match(/[a-z]+/g) ?? [];
  const out: Item[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (isColor(word) && isShape(words[i + 1] ?? '')) {
      out.push({ kind: 'object', at: truth.objects.findIndex((o) => o.color === word && o.shape === words[i + 1]) });
      i++;
      continue;
    }
    const phrase = RELATION_WORDS.find((r) => r.words.every((w, k) => words[i + k] === w));
    if (phrase) {
      out.push({ kind: 'relation', relation: phrase.relation });
      i += phrase.words.length - 1;
    } else if (word === 'it' || word === 'with') {
      out.push({ kind: word });
    }
  }
  return out;
}

/** The relations a caption states, each true or false for the scene (false when it cannot be resolved). */
export function statedRelations(caption: string, truth: Truth): boolean[] {
  const parts = items(caption, truth);
  const withAt = parts.findIndex((p) => p.kind === 'with');
  const host = withAt > 0 ? parts[withAt - 1] : undefined;
  let lastObject: Item | undefined;
  const out: boolean[] = [];
  for (let k = 0; k < parts.length; k++) {
    const part = parts[k]!;
    if (part.kind !== 'relation') continue;
    const subject = parts[k - 1];
    let object = parts[k + 1];
    if (object?.kind === 'it') object = withAt >= 0 && withAt < k ? host : lastObject;
    lastObject = object;
    if (subject?.kind !== 'object' || object?.kind !== 'object' || subject.at < 0 || object.at < 0 || subject.at === object.at) {
      out.push(false);
      continue;
    }
    out.push(relationHolds(part.relation, truth.objects[subject.at]!, truth.objects[object.at]!));
  }
  return out;
}

/**
 * null when the caption states no spatial relation; otherwise whether it states every relation correctly
 * and is itself correct (`captionIsCorrect`: the right objects, nothing else), so a relation between
 * objects that are not in the scene never counts as right.
 */
export function relationsAreCorrect(caption: string, truth: Truth): boolean | null {
  const stated = statedRelations(caption, truth);
  if (stated.length === 0) return null;
  return stated.every(Boolean) && captionIsCorrect(caption, truth);
}
