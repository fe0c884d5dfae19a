/**
 * The `runs` table read back: which runs the database has seen and the recipe each ran with (resolved,
 * as JSON; readers parse what they need and treat a recipe that does not parse as saying nothing).
 */
import type { Db } from './database.js';

export interface RecordedRun {
  id: number;
  recipeJson: string;
}

/** Every run, oldest first. */
export function recordedRuns(db: Db): RecordedRun[] {
  return db.prepare('SELECT id, recipe_json AS recipeJson FROM runs ORDER BY id').all() as RecordedRun[];
}

/** The latest run, or null before the first. */
export function latestRun(db: Db): RecordedRun | null {
  return (db.prepare('SELECT id, recipe_json AS recipeJson FROM runs ORDER BY id DESC LIMIT 1').get() as RecordedRun | undefined) ?? null;
}
