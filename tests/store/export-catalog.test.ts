import { describe, expect, it } from 'vitest';
import { OPEN, type DecodedPair } from '../../src/core/sample.js';
import { openDatabase, type Db } from '../../src/store/database.js';
import {
  firstShardPath,
  lastShardPath,
  otherExportsSettings,
  otherExportsShards,
  recordedExportNames,
  recordedSettings,
} from '../../src/store/export-catalog.js';
import { ExportRecords } from '../../src/store/export-records.js';
import { LlmCache } from '../../src/store/llm-cache.js';
import { RunStore } from '../../src/store/run-store.js';
import { tempDatabasePath } from './store-fixtures.js';

function sample(key: string): DecodedPair {
  return {
    key,
    source: 'src',
    imageRef: `file:/x/${key}.jpg`,
    imageBytes: null,
    captions: [{ text: `caption of ${key}`, origin: 'web', issue: null, usable: true }],
    boxes: [],
    meta: {},
    fate: OPEN,
    image: { width: 8, height: 8, format: 'jpeg', byteLength: 1, sha256: key, orientation: 1 },
  };
}

function storeWith(keys: string[]): { db: Db; store: RunStore } {
  const db = openDatabase(tempDatabasePath());
  const store = new RunStore(db);
  store.writeSamples(store.startRun('{}', 'h', '0/1'), keys.map(sample));
  return { db, store };
}

const shard = (exportName: string, shardIndex: number, path: string) => ({ exportName, shardIndex, path, sampleCount: 1, byteLength: 10, sha256: 'ab' });

describe('export catalog (what the database records about exports by name)', () => {
  it('shard paths, recorded settings and every known name; other exports\' shards and settings', () => {
    const { db, store } = storeWith(['a', 'b', 'c']);
    expect(lastShardPath(db, 'wds')).toBeNull();
    expect(recordedSettings(db, 'llava')).toBeNull();
    expect(recordedExportNames(db)).toEqual([]);
    store.recordShard(shard('wds', 0, '/out/wds-000000.tar'), ['a']);
    store.recordShard(shard('wds', 1, '/out/wds-000001.tar'), ['b']);
    store.recordShard(shard('other', 0, '/out/other-000000.tar'), ['c']);
    new ExportRecords(db).claim('llava', 'llava', { out: '/out', tasks: ['detail'] });
    expect(firstShardPath(db, 'wds')).toBe('/out/wds-000000.tar');
    expect(lastShardPath(db, 'wds')).toBe('/out/wds-000001.tar');
    expect(recordedSettings(db, 'llava')).toEqual({ type: 'llava', settingsJson: '{"out":"/out","tasks":["detail"]}' });
    expect(recordedExportNames(db)).toEqual(['llava', 'other', 'wds']);
    expect(otherExportsShards(db, 'wds')).toEqual([{ name: 'other', path: '/out/other-000000.tar' }]);
    expect(otherExportsSettings(db, 'wds')).toEqual([{ name: 'llava', settingsJson: '{"out":"/out","tasks":["detail"]}' }]);
    expect(otherExportsSettings(db, 'llava')).toEqual([]);
    // The settings an export was claimed with are the ones it keeps: other settings are refused.
    expect(() => new ExportRecords(db).claim('llava', 'llava', { out: '/elsewhere', tasks: ['detail'] })).toThrow(/out: "\/out" -> "\/elsewhere"/);
    db.close();
  });

  it('recordNextShard: the next shard index, and the first file index whose path no shard has and no file takes', () => {
    const { db, store } = storeWith(['a', 'b', 'c', 'd']);
    store.recordShard(shard('wds', 0, '/out/wds-000000.tar'), ['a']);
    store.recordShard(shard('other', 0, '/out/wds-000001.tar'), ['b']);
    const taken = new Set(['/out/wds-000002.tar']);
    const pathOf = (i: number) => `/out/wds-${String(i).padStart(6, '0')}.tar`;
    const index = store.recordNextShard({ exportName: 'wds', sampleCount: 2, byteLength: 20, sha256: 'cd' }, { from: 0, pathOf, taken: (p) => taken.has(p) }, ['c', 'd']);
    // 0 is wds's own shard, 1 another export's, 2 a file on disk: 3 is the first free name.
    expect(index).toBe(3);
    expect(store.shards('wds')).toEqual([
      { exportName: 'wds', shardIndex: 0, path: '/out/wds-000000.tar', sampleCount: 1, byteLength: 10, sha256: 'ab' },
      { exportName: 'wds', shardIndex: 1, path: '/out/wds-000003.tar', sampleCount: 2, byteLength: 20, sha256: 'cd' },
    ]);
    expect(store.keptInShard('wds', 1)).toEqual(['c', 'd']);
    // A key already in the export: nothing of the shard is recorded.
    expect(() => store.recordNextShard({ exportName: 'wds', sampleCount: 1, byteLength: 1, sha256: 'ef' }, { from: 4, pathOf, taken: () => false }, ['a'])).toThrow(/UNIQUE|PRIMARY KEY/);
    expect(store.shards('wds')).toHaveLength(2);
    db.close();
  });
});

describe('LLM cache (llm_cache)', () => {
  const entry = (requestHash: string, responseJson: string) => ({ requestHash, model: 'm', requestJson: '{"q":1}', responseJson, promptTokens: 3, completionTokens: 4, costUsd: 0.5 });

  it('keeps the first answer for a request, answers by hash, and lists what it holds', () => {
    const db = openDatabase(tempDatabasePath());
    const cache = new LlmCache(db);
    expect(cache.get('h1')).toBeNull();
    cache.put(entry('h1', '{"a":"first"}'));
    cache.put(entry('h1', '{"a":"second"}'));
    cache.putMany([entry('h2', '{"a":2}'), entry('h3', '{"a":3}')]);
    expect(cache.get('h1')).toMatchObject({ requestHash: 'h1', responseJson: '{"a":"first"}', promptTokens: 3, completionTokens: 4, costUsd: 0.5 });
    expect(cache.get('h1')!.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect([...cache.has(['h1', 'h3', 'nope'])].sort()).toEqual(['h1', 'h3']);
    // More hashes than one statement takes at a time.
    expect(cache.has(Array.from({ length: 1200 }, (_, i) => (i === 1100 ? 'h2' : `x${i}`)))).toEqual(new Set(['h2']));
    expect([...cache.entries()].map((e) => e.requestHash)).toEqual(['h1', 'h2', 'h3']);
    expect(cache.count()).toBe(3);
    db.close();
    // Committed at once: another connection sees every answer.
    const again = openDatabase(db.name);
    expect(new LlmCache(again).count()).toBe(3);
    again.close();
  });
});
