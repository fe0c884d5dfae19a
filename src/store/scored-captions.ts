/** The usable captions that have a score, with their sample key and text: what `vlcurate calibrate` judges against labels. */
import type { Db } from './database.js';

export interface ScoredCaptionText {
  key: string;
  text: string;
  score: number;
}

export function scoredCaptions(db: Db, score: 'itc' | 'itm'): ScoredCaptionText[] {
  return db.prepare(`SELECT sample_key AS key, text, ${score} AS score FROM captions WHERE ${score} IS NOT NULL AND usable = 1`).all() as ScoredCaptionText[];
}
