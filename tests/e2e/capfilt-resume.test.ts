/**
 * CapFilt survives kill -9: the resumed run ends with the same captions, scores and verdicts as an
 * uninterrupted one (captions are seeded by sample key), every sample exported once, none captioned twice.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { readShardMembers, runCli } from './helpers.js';

const MODELS = resolve(import.meta.dirname, '../../models');
const COUNT = 240;
let dir: string;

function recipe(db: string, out: string): Record<string, unknown> {
  return {
    run: { db, commitEvery: 8 },
    sources: [{ type: 'webdataset', paths: 'data/webdataset/shapes-000000.tar' }],
    filter: { itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(MODELS, 'shapes-itm') }, batchSize: 8 },
    captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 2, minLength: 3, maxLength: 24, batchSize: 8 },
    export: [{ type: 'webdataset', out, maxCount: 30 }],
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-capfilt-resume-'));
  await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0.4, seed: 9 });
  writeFileSync(join(dir, 'once.yaml'), stringify(recipe('once/run.db', 'once/wds')));
  writeFileSync(join(dir, 'killed.yaml'), stringify(recipe('killed/run.db', 'killed/wds')));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function captions(db: string): string[] {
  const conn = new Database(join(dir, db), { readonly: true });
  const rows = conn
    .prepare('SELECT sample_key, idx, origin, text, round(itc, 4) AS itc, round(itm, 4) AS itm, kept, reason FROM captions ORDER BY sample_key, idx')
    .all() as Record<string, unknown>[];
  conn.close();
  return rows.map((r) => JSON.stringify(r));
}

describe('CapFilt kill -9 and resume', () => {
  it('ends exactly as an uninterrupted run', async () => {
    expect((await runCli(['build', join(dir, 'once.yaml'), '--progress', 'plain'])).code).toBe(0);
    let kills = 0;
    for (const at of [40, 120]) {
      const r = await runCli(['build', join(dir, 'killed.yaml'), '--progress', 'json', '--progress-interval', '20'], {
        onStdoutLine: (line, child) => {
          try {
            const e = JSON.parse(line);
            const out = e.type === 'progress' ? e.stages.find((s: { stage: string }) => s.stage === 'record')?.out ?? 0 : 0;
            if (out >= at && child.exitCode === null) child.kill('SIGKILL');
          } catch {
            // not JSON
          }
        },
      });
      if (r.signal === 'SIGKILL') kills++;
    }
    expect(kills).toBeGreaterThanOrEqual(1);
    expect((await runCli(['build', join(dir, 'killed.yaml'), '--progress', 'plain'])).code).toBe(0);

    expect(captions('killed/run.db')).toEqual(captions('once/run.db'));
    const keys = (await readShardMembers(join(dir, 'killed/wds'))).filter((m) => m.member.endsWith('.json')).map((m) => m.member);
    const onceKeys = (await readShardMembers(join(dir, 'once/wds'))).filter((m) => m.member.endsWith('.json')).map((m) => m.member);
    expect(new Set(keys).size).toBe(keys.length);
    expect([...keys].sort()).toEqual([...onceKeys].sort());
  });

  it('a second Ctrl-C quits at once, by the signal, without a native abort; the run resumes', async () => {
    writeFileSync(join(dir, 'twice.yaml'), stringify(recipe('twice/run.db', 'twice/wds')));
    let sent = 0;
    const r = await runCli(['build', join(dir, 'twice.yaml'), '--progress', 'json', '--progress-interval', '20'], {
      onStdoutLine: (line, child) => {
        // Interrupt while the models are busy: once to stop gracefully, then again before that finishes.
        if (sent === 0 && line.includes('"type":"progress"') && line.includes('"stage":"captioner"')) {
          sent = 1;
          child.kill('SIGINT');
          setTimeout(() => child.exitCode === null && child.kill('SIGINT'), 50);
        }
      },
    });
    expect(sent).toBe(1);
    // Either the second signal ended it (the default action: 128 + 2 in a shell), or the graceful stop won the race.
    expect(r.signal === 'SIGINT' || r.code === 130).toBe(true);
    expect(r.stderr).not.toMatch(/terminate called|Napi::Error|core dumped/);
    const resumed = await runCli(['build', join(dir, 'twice.yaml'), '--progress', 'plain']);
    expect(resumed.code).toBe(0);
    const keys = (await readShardMembers(join(dir, 'twice/wds'))).filter((m) => m.member.endsWith('.json')).map((m) => m.member);
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.length).toBeGreaterThan(0);
  });
});
