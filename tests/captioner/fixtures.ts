/** Paths and readers for the fixtures written by tools/make_captioner_fixtures.py. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixtureRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

export const LAYOUT_DIRS = {
  merged: path.join(fixtureRoot, 'captioner-merged'),
  pair: path.join(fixtureRoot, 'captioner-pair'),
  'no-cache': path.join(fixtureRoot, 'captioner-nocache'),
} as const;

export function readImage(name: string): Buffer {
  return readFileSync(path.join(fixtureRoot, 'images', name));
}

export interface ReferenceCaption {
  token_ids: number[];
  log_prob: number;
  text: string;
}

export interface ReferenceCase {
  name: string;
  options: Record<string, unknown> & { k: number; strategy: string };
  results: ReferenceCaption[][];
}

export interface CaptionerExpected {
  images: string[];
  keys: string[];
  vocab: string[];
  start_id: number;
  eos_id: number;
  pad_id: number;
  layers: number;
  heads: number;
  head_dim: number;
  cases: ReferenceCase[];
  fp16_cases: ReferenceCase[];
}

export function readExpected(): CaptionerExpected {
  return JSON.parse(readFileSync(path.join(LAYOUT_DIRS.merged, 'expected.json'), 'utf8')) as CaptionerExpected;
}

/** caption() options from a reference case (Python's option names are already ours). */
export function optionsOf(c: ReferenceCase): Record<string, unknown> {
  return { ...c.options };
}
