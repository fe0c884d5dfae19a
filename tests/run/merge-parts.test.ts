/**
 * `mergeParts` in one process, on real SQLite files: a part made by an older vlcurate (schema version 6,
 * instruction reasons as one "code: message" string) is merged in the current shape while the part file
 * itself stays byte for byte what it was (read-only inputs are never migrated); which shards are missing.
 * The CLI and the equality with a single-process run are tested in tests/e2e/merge-parts.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { mergeParts, missingShards } from '../../src/run/merge-parts.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { databaseAtVersion, tempDatabasePath } from '../store/store-fixtures.js';

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('mergeParts', () => {
  it('merges a part of an older schema in the current shape and leaves the part file as it was', () => {
    const part = tempDatabasePath('run-s1of2.db');
    const old = databaseAtVersion(part, 6, ['a', 'b']);
    old.prepare(`UPDATE runs SET shard = '1/2', status = 'finished', recipe_json = '{"sources":[]}'`).run();
    old.prepare(`INSERT INTO captions (sample_key, idx, origin, text, itc, kept, reason) VALUES ('a', 0, 'web', 'a red square', 0.31, 1, 'passed')`).run();
    old.prepare(`INSERT INTO instructions (sample_key, task, variant, status, reason, created_at) VALUES ('a', 'detail', 0, 'failed', 'http_401: HTTP 401: Incorrect API key provided', 'then')`).run();
    old.close();
    const before = sha256(part);
    const siblings = readdirSync(dirname(part)).sort();

    const out = tempDatabasePath('merged.db');
    // What a merge killed midway leaves: its copies of the parts, removed by the next merge.
    mkdirSync(join(dirname(out), '.merged.db.merge-Ab12Cd', 'sub'), { recursive: true });
    writeFileSync(join(dirname(out), '.merged.db.merge-Ab12Cd', 'part-0.db'), 'a copy');
    const result = mergeParts({ out, parts: [part] });
    expect(result.parts).toMatchObject([{ shard: '1/2', action: 'added', counts: { samples: 2, instructions: 1 } }]);
    expect(result.missingShards).toEqual(['0/2']);

    // The part: same bytes, still version 6, no file added beside it (no -wal, -shm or lock).
    expect(sha256(part)).toBe(before);
    expect(readdirSync(dirname(part)).sort()).toEqual(siblings);
    const raw = new Database(part, { readonly: true });
    expect(raw.pragma('user_version', { simple: true })).toBe(6);
    raw.close();

    const merged = new Database(out, { readonly: true });
    expect(merged.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(merged.prepare('SELECT sample_key, task, status, code, message FROM instructions').all()).toEqual([
      { sample_key: 'a', task: 'detail', status: 'failed', code: 'http_401', message: 'HTTP 401: Incorrect API key provided' },
    ]);
    expect(merged.prepare('SELECT sample_key, text, itc, kept FROM captions').all()).toEqual([{ sample_key: 'a', text: 'a red square', itc: 0.31, kept: 1 }]);
    expect(merged.prepare('SELECT r.shard, p.path FROM runs r JOIN merged_parts p ON p.id = r.part_id').all()).toEqual([{ shard: '1/2', path: part }]);
    merged.close();
    // Nothing left of the copies beside the merged database.
    expect(readdirSync(dirname(out)).filter((f) => f.includes('.merge-'))).toEqual([]);
  });

  it('missingShards: per N, the parts not merged', () => {
    expect(missingShards(['0/4', '2/4', '0/1'])).toEqual(['1/4', '3/4']);
    expect(missingShards(['0/2', '1/2'])).toEqual([]);
    expect(missingShards([])).toEqual([]);
  });
});
