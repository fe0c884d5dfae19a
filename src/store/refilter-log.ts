/**
 * The `refilters` table (schema migration 4): one row per `vlcurate refilter` that wrote its decisions,
 * with the flags given, the policy they resolved to and what changed. `filter/policy-in-force.ts` reads it
 * to tell builds, exports and the report which decisions hold now. The policy is the filter's
 * (`ResolvedPolicy`); the store keeps it as JSON and does not look inside.
 */
import type { Db } from './database.js';

export interface RefilterEntry<Policy = unknown> {
  id: number;
  /** ISO time the refilter was committed. */
  at: string;
  /** The latest run when it was made (its recipe's filter is what the flags were laid over); null without runs. */
  runId: number | null;
  /** The flags as given: `{"--itm-threshold": "0.7", "--prefer-web": true}`. */
  flags: Record<string, string | boolean>;
  policy: Policy;
  samples: number;
  kept: number;
  dropped: number;
  changed: number;
}

/** JSON has no Infinity (a percentile cut over a run without scores): keep it as a string. */
const encode = (policy: unknown) => JSON.stringify(policy, (_, v: unknown) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v));
const decode = (text: string): unknown => JSON.parse(text, (_, v: unknown) => (v === 'Infinity' ? Number.POSITIVE_INFINITY : v));

/** Record a refilter; call inside the transaction that writes its decisions. */
export function recordRefilter(db: Db, entry: Omit<RefilterEntry, 'id'>): number {
  const info = db
    .prepare(
      `INSERT INTO refilters (at, run_id, flags_json, policy_json, samples, kept, dropped, changed)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .run(entry.at, entry.runId, JSON.stringify(entry.flags), encode(entry.policy), entry.samples, entry.kept, entry.dropped, entry.changed);
  return Number(info.lastInsertRowid);
}

interface Row {
  id: number;
  at: string;
  run_id: number | null;
  flags_json: string;
  policy_json: string;
  samples: number;
  kept: number;
  dropped: number;
  changed: number;
}

/**
 * The latest refilter, or null (also for a database opened read-only from before migration 4). `Policy`:
 * the type the policy was recorded as.
 */
export function latestRefilter<Policy>(db: Db): RefilterEntry<Policy> | null {
  const table = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refilters'`).get();
  if (!table) return null;
  const row = db.prepare('SELECT * FROM refilters ORDER BY id DESC LIMIT 1').get() as Row | undefined;
  if (!row) return null;
  return {
    id: row.id,
    at: row.at,
    runId: row.run_id,
    flags: JSON.parse(row.flags_json) as RefilterEntry['flags'],
    policy: decode(row.policy_json) as Policy,
    samples: row.samples,
    kept: row.kept,
    dropped: row.dropped,
    changed: row.changed,
  };
}

/** The flags as a command line: `--itm-threshold 0.7 --prefer-web`. */
export function describeFlags(flags: RefilterEntry['flags']): string {
  return Object.entries(flags)
    .map(([flag, value]) => (value === true ? flag : value === false ? flag.replace(/^--/, '--no-') : `${flag} ${value}`))
    .join(' ');
}
