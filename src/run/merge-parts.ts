/**
 * `vlcurate merge --out MERGED.db PART.db...`: the part run databases of a build split with `--shard I/N`
 * combined into one database that `inspect`, `report`, `refilter`, `calibrate` and `export` read as they
 * read a build's (run-level percentile and top-fraction cuts then see every part's scores).
 *
 * The rules (README "Merging parts"):
 * - Parts are read, never written: each is copied (a consistent snapshot), the copy migrated and merged.
 * - A key in two parts stops the merge before anything is written (exit 1, both parts named), unless both
 *   hold the same sample (same row, captions with scores and verdicts, boxes, instructions): kept once.
 * - Parts whose recipes differ in what decides samples are refused with the differing fields (`--force`
 *   merges them anyway); so are parts whose latest run did not finish (`--allow-unfinished`).
 * - Merging is incremental and idempotent: a part merged again unchanged is skipped; a part that changed
 *   since (resumed, finished) replaces what it brought before; each part is merged in one transaction, so a
 *   merge killed midway leaves whole parts only, and running it again completes it.
 */
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ConfigError, VlcurateError } from '../core/errors.js';
import { openDatabase, type Db } from '../store/database.js';
import { MergeTarget, partFacts, snapshotPart, type MergedPart, type PartCounts, type PartFacts } from '../store/part-merge.js';
import { lockRunDatabase } from '../store/run-lock.js';
import { recipeDifferences } from './part-recipes.js';

/** The parts cannot be merged as they are (conflicting keys, different recipes, unfinished parts): exit 1, nothing written. */
export class MergeRefusedError extends VlcurateError {
  constructor(message: string) {
    super('merge_refused', message);
  }
}

export interface MergeOptions {
  out: string;
  parts: readonly string[];
  /** Merge parts whose recipes differ in what decides samples. */
  force?: boolean;
  /** Merge parts whose latest run did not finish (what they hold so far). */
  allowUnfinished?: boolean;
}

export type PartAction = 'added' | 'replaced' | 'unchanged' | 'repeated';

export interface PartResult {
  path: string;
  shard: string;
  action: PartAction;
  /** Set when the part was merged now. */
  counts: PartCounts | null;
  notes: string[];
}

export interface MergeResult {
  out: string;
  parts: PartResult[];
  /** Every part the merged database holds, with what the latest merge of each brought. */
  merged: { shard: string; path: string; samples: number; mergedAt: string }[];
  /** Shards `I/N` missing for each N the merged parts were split into. */
  missingShards: string[];
  samples: Record<string, number>;
  /**
   * With `decode.dedup: exact`: images held by samples of different parts (each part dedups only within
   * itself), how many and the keys of a few. Null without dedup.
   */
  crossPartDuplicates: { total: number; examples: string[][] } | null;
}

/** How many conflicting keys an error lists. */
const SHOWN_KEYS = 5;

interface CheckedPart {
  path: string;
  copy: string;
  facts: PartFacts;
  action: PartAction;
  replacing: MergedPart | null;
  notes: string[];
}

export function mergeParts(options: MergeOptions): MergeResult {
  if (options.parts.length === 0) throw new ConfigError('merge: expected at least one part database after the options');
  const out = resolve(options.out);
  const parts = options.parts.map((p) => resolve(p));
  for (const part of parts) {
    if (!existsSync(part)) throw new ConfigError(`merge: part "${part}": no such file`);
    if (statSync(part).isDirectory()) throw new ConfigError(`merge: part "${part}": is a folder, expected a run database file`);
  }
  if (existsSync(out) && parts.some((p) => realpathSync(p) === realpathSync(out))) {
    throw new ConfigError(`merge: --out "${out}" is also given as a part; the merged database must be another file`);
  }
  const lock = lockRunDatabase(out);
  let db: Db | null = null;
  // Copies a merge killed midway left behind: no merge into `out` runs but this one (it holds the lock).
  for (const stale of readdirSync(dirname(out)).filter((f) => f.startsWith(`.${basename(out)}.merge-`))) rmSync(join(dirname(out), stale), { recursive: true, force: true });
  const scratch = mkdtempSync(join(dirname(out), `.${basename(out)}.merge-`));
  try {
    db = openDatabase(out);
    const target = new MergeTarget(db);
    if (target.ownRuns() > 0) {
      throw new ConfigError(`merge: --out "${out}" is a build's run database, not a merged one; give a new file (or one an earlier merge wrote)`);
    }
    const checked = checkParts(target, parts, scratch, options);
    const results: PartResult[] = [];
    for (const part of checked) {
      let counts: PartCounts | null = null;
      if (part.action === 'added' || part.action === 'replaced') {
        target.attach(part.copy);
        try {
          counts = target.mergeAttached(
            { identity: part.facts, fingerprint: part.facts.fingerprint, path: part.path, samples: part.facts.samples },
            part.replacing?.id ?? null,
          );
        } finally {
          target.detach();
        }
      }
      results.push({ path: part.path, shard: part.facts.shard, action: part.action, counts, notes: part.notes });
    }
    const merged = target.mergedParts();
    return {
      out,
      parts: results,
      merged: merged.map((m) => ({ shard: m.shard, path: m.path, samples: m.samples, mergedAt: m.mergedAt })),
      missingShards: missingShards(merged.map((m) => m.shard)),
      samples: target.sampleCounts(),
      crossPartDuplicates: dedupsExactly(target.latestRecipeJson()) ? target.crossPartDuplicates(3) : null,
    };
  } finally {
    db?.close();
    rmSync(scratch, { recursive: true, force: true });
    lock.release();
  }
}

/**
 * Copy and read every part, decide what to do with each, and find what stops the merge (before anything
 * is written): a key two parts hold with different contents, recipes that differ, unfinished parts.
 */
function checkParts(target: MergeTarget, parts: readonly string[], scratch: string, options: MergeOptions): CheckedPart[] {
  const checked: CheckedPart[] = [];
  let reference: { recipeJson: string; from: string } | null = null;
  const latest = target.latestRecipeJson();
  if (latest !== null) reference = { recipeJson: latest, from: 'the parts merged before' };
  for (const [i, path] of parts.entries()) {
    const copy = join(scratch, `part-${i}.db`);
    const facts = readPart(path, copy);
    const notes: string[] = [];
    const same = checked.find((c) => c.facts.shard === facts.shard && c.facts.firstRunAt === facts.firstRunAt);
    if (same) {
      if (same.facts.fingerprint !== facts.fingerprint) {
        throw new MergeRefusedError(`merge: ${path} and ${same.path} are two states of the same part (shard ${facts.shard}, first run ${facts.firstRunAt}); give one`);
      }
      checked.push({ path, copy, facts, action: 'repeated', replacing: null, notes: [`the same part as ${same.path}: merged once`] });
      continue;
    }
    if (facts.latestStatus !== 'finished' && !options.allowUnfinished) {
      throw new MergeRefusedError(
        `merge: part ${path} (shard ${facts.shard}) is not finished: its latest run is ${facts.latestStatus}; run its build again to finish it ` +
          '(or pass --allow-unfinished to merge what it holds; merged again once finished, it replaces that)',
      );
    }
    const count = partCount(facts.shard);
    const otherCount = checked.map((c) => partCount(c.facts.shard)).find((n) => n !== count) ?? target.mergedParts().map((m) => partCount(m.shard)).find((n) => n !== count);
    if (otherCount !== undefined && !options.force) {
      throw new MergeRefusedError(
        `merge: part ${path} is part ${facts.shard}, of a split into ${count}, and the other parts are of a split into ${otherCount}; ` +
          'the parts of one merge come from one --shard I/N split (pass --force to merge them anyway)',
      );
    }
    if (reference) {
      const differences = recipeDifferences(reference.recipeJson, facts.latestRecipeJson);
      if (differences.length > 0 && !options.force) {
        throw new MergeRefusedError(
          `merge: part ${path} ran another recipe than ${reference.from} (${differences.join('; ')}); parts of one merge must come from one recipe ` +
            '(pass --force to merge them anyway)',
        );
      }
      if (differences.length > 0) notes.push(`recipe differs (--force): ${differences.join('; ')}`);
    } else {
      reference = { recipeJson: facts.latestRecipeJson, from: path };
    }
    if (facts.shards.length > 1) notes.push(`its runs used several --shard values (${facts.shards.join(', ')})`);
    if (facts.refilters > 0) notes.push(`refiltered ${facts.refilters} time(s) on its own: its verdicts are carried as they are; refilter the merged database to decide over all parts`);
    const exports = Object.entries(facts.exported);
    if (exports.length > 0) notes.push(`its exports (${exports.map(([name, n]) => `${name}: ${n}`).join(', ')}) stay with the part; export the merged database for one export across parts`);
    const earlier = target.mergedPart(facts);
    const action: PartAction = earlier === null ? 'added' : earlier.fingerprint === facts.fingerprint ? 'unchanged' : 'replaced';
    if (action === 'unchanged') notes.push(`merged before (${earlier!.mergedAt}) and unchanged since: skipped`);
    if (action !== 'unchanged') checkKeys(target, path, copy, checked, earlier?.id ?? null, i);
    checked.push({ path, copy, facts, action, replacing: earlier, notes });
  }
  return checked;
}

function readPart(path: string, copy: string): PartFacts {
  try {
    snapshotPart(path, copy);
  } catch (err) {
    throw new ConfigError(`merge: part "${path}": cannot read it as a run database (${(err as Error).message})`, { cause: err });
  }
  // The copy, not the part, is brought to the current schema.
  let facts: PartFacts | null;
  let db: Db;
  try {
    db = openDatabase(copy);
  } catch (err) {
    throw new ConfigError(`merge: part "${path}": ${(err as Error).message.replace(/^run database "[^"]*": /, '')}`, { cause: err });
  }
  try {
    facts = partFacts(db);
  } catch (err) {
    throw new ConfigError(`merge: part "${path}": not a vlcurate run database (${(err as Error).message})`, { cause: err });
  } finally {
    db.close();
  }
  if (facts === null) throw new ConfigError(`merge: part "${path}": holds no run (a build that never started?)`);
  if (facts.mergedParts > 0) throw new ConfigError(`merge: part "${path}" is itself a merged database; give the parts it was merged from`);
  return facts;
}

/** Refuse the merge when the part shares a key with a merged part or an earlier part of this merge and the two samples differ. */
function checkKeys(target: MergeTarget, path: string, copy: string, earlierParts: readonly CheckedPart[], replacing: number | null, position: number): void {
  target.attach(copy);
  try {
    const merged = target.conflictsWithMerged(replacing, Number.MAX_SAFE_INTEGER);
    if (merged.total > 0) {
      const owners = new Map(target.mergedParts().map((p) => [p.id, p]));
      const differing = merged.keys.filter((k) => target.sampleContent('part', k.key) !== target.sampleContent('main', k.key));
      if (differing.length > 0) {
        const owner = owners.get(differing[0]!.partId);
        throw conflictError(path, owner ? `${owner.path} (shard ${owner.shard}, merged ${owner.mergedAt})` : 'the merged database', differing.map((k) => k.key), merged.total);
      }
    }
    const claimed = target.conflictsWithClaims(Number.MAX_SAFE_INTEGER);
    if (claimed.total > 0) {
      for (const [other, keys] of groupByPart(claimed.keys)) {
        const earlier = earlierParts[other]!;
        target.attach(earlier.copy, 'other');
        let differing: string[];
        try {
          differing = keys.filter((key) => target.sampleContent('part', key) !== target.sampleContent('other', key));
        } finally {
          target.detach('other');
        }
        if (differing.length > 0) throw conflictError(path, `${earlier.path} (shard ${earlier.facts.shard})`, differing, claimed.total);
      }
    }
    target.claimKeys(position);
  } finally {
    target.detach();
  }
}

function groupByPart(keys: readonly { key: string; part: number }[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const k of keys) out.set(k.part, [...(out.get(k.part) ?? []), k.key]);
  return out;
}

function conflictError(path: string, other: string, keys: readonly string[], total: number): MergeRefusedError {
  const shown = keys.slice(0, SHOWN_KEYS).map((k) => JSON.stringify(k)).join(', ');
  return new MergeRefusedError(
    `merge: part ${path} and part ${other} both hold sample key${keys.length > 1 ? 's' : ''} ${shown}${keys.length > SHOWN_KEYS ? ` and ${keys.length - SHOWN_KEYS} more` : ''} ` +
      `with different contents (${total} shared key(s) in all); the parts of one --shard I/N build never share a key: were they built over overlapping ` +
      'inputs, or with different N? Nothing was merged',
  );
}

function dedupsExactly(recipeJson: string | null): boolean {
  try {
    return (JSON.parse(recipeJson ?? '{}') as { decode?: { dedup?: unknown } }).decode?.dedup === 'exact';
  } catch {
    return false;
  }
}

/** N of a shard `I/N` (1 for an unsplit run). */
function partCount(shard: string): number {
  return Number(/^\d+\/(\d+)$/.exec(shard)?.[1] ?? 1);
}

/** For each N the parts were split into, the shards `I/N` no merged part covers. */
export function missingShards(shards: readonly string[]): string[] {
  const byCount = new Map<number, Set<number>>();
  for (const shard of shards) {
    const match = /^(\d+)\/(\d+)$/.exec(shard);
    if (!match) continue;
    const [index, count] = [Number(match[1]), Number(match[2])];
    byCount.set(count, (byCount.get(count) ?? new Set()).add(index));
  }
  const missing: string[] = [];
  for (const [count, have] of [...byCount].sort((a, b) => a[0] - b[0])) for (let i = 0; i < count; i++) if (!have.has(i)) missing.push(`${i}/${count}`);
  return missing;
}
