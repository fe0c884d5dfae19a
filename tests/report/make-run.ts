/**
 * A small, real run database for the report tests: shapes scenes generated with the dataset generator,
 * built by the real CLI from their COCO files (so samples have boxes, and one broken image fails), then a
 * scored filter pass written into the database as the filter stage would have (the web caption and three
 * "synthetic" captions per image, scores that follow the ground truth, verdicts from the real policy), and
 * a few synthesized conversations.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateShapes } from '../../datasets/shapes/index.js';
import { captionIsCorrect } from '../../datasets/shapes/judge.js';
import type { GroundTruthRecord } from '../../datasets/shapes/generate.js';
import { decideCaptions, NO_CAPTION_PASSED, type ResolvedPolicy } from '../../src/filter/policy.js';
import { openDatabase } from '../../src/store/database.js';
import { InstructionStore } from '../../src/store/instruction-store.js';
import { runCli } from '../e2e/helpers.js';

/** A caption no HTML page may interpret. */
export const HOSTILE_CAPTION = `<script>alert("x")</script><img src="http://example.invalid/x.png" onerror="alert(1)"> & 'quotes'`;

function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export const POLICY: ResolvedPolicy = { policy: 'both', itcThreshold: 0.28, itmThreshold: 0.5, topK: 2, topKBy: 'itm', preferWeb: false };

export interface MadeRun {
  dir: string;
  db: string;
  count: number;
}

export async function makeScoredRun(dir: string, count = 40): Promise<MadeRun> {
  const data = join(dir, 'data');
  const shapes = await generateShapes({ out: data, count, noise: 0.4, seed: 7, imageSize: 160 });
  // One image that cannot be decoded, listed in the COCO captions like any other.
  const captions = JSON.parse(readFileSync(shapes.cocoCaptions, 'utf8')) as { images: unknown[]; annotations: unknown[] };
  const first = readFileSync(join(data, 'coco', 'images', 'shapes_000000.jpg'));
  writeFileSync(join(data, 'coco', 'images', 'broken_000.jpg'), first.subarray(0, Math.floor(first.length / 2)));
  captions.images.push({ id: 999_999, file_name: 'broken_000.jpg', width: 160, height: 160 });
  captions.annotations.push({ id: 999_999, image_id: 999_999, caption: 'a broken picture' });
  writeFileSync(shapes.cocoCaptions, JSON.stringify(captions));
  const recipe = join(dir, 'recipe.yaml');
  writeFileSync(
    recipe,
    stringify({
      run: { db: 'run.db' },
      sources: [{ type: 'coco', name: 'shapes-coco', captions: shapes.cocoCaptions, instances: shapes.cocoInstances, images: join(data, 'coco', 'images') }],
      export: [{ type: 'webdataset', name: 'wds', out: 'wds' }],
    }),
  );
  const built = await runCli(['build', recipe, '--progress', 'plain']);
  if (built.code !== 1) throw new Error(`build should finish with one failed sample, got exit ${built.code}: ${built.stderr}`);

  const truth = new Map<string, GroundTruthRecord>();
  for (const line of readFileSync(shapes.groundTruth, 'utf8').split('\n')) {
    if (line.trim()) {
      const record = JSON.parse(line) as GroundTruthRecord;
      truth.set(record.key, record);
    }
  }
  const all = [...truth.values()];
  const dbPath = join(dir, 'run.db');
  const db = openDatabase(dbPath);
  const random = lcg(11);
  const insert = db.prepare(
    `INSERT INTO captions (sample_key, idx, origin, text, issue, usable, model, itc, itm, kept, reason) VALUES (?, ?, ?, ?, NULL, 1, ?, ?, ?, ?, ?)`,
  );
  const setStatus = db.prepare(`UPDATE samples SET status = ?, drop_reason = ? WHERE key = ?`);
  const keys = (db.prepare(`SELECT key FROM samples WHERE status = 'ok' ORDER BY key`).all() as { key: string }[]).map((r) => r.key);
  db.transaction(() => {
    keys.forEach((key, i) => {
      const gt = truth.get(key)!;
      const other = all[(i * 7 + 3) % all.length]!;
      const texts: { origin: 'web' | 'synthetic'; text: string }[] = [
        { origin: 'web', text: i === 1 ? HOSTILE_CAPTION : gt.web_caption },
        { origin: 'synthetic', text: random() < 0.5 ? `a picture of ${gt.captions[1]}` : `a picture of ${other.captions[0]}` },
        { origin: 'synthetic', text: random() < 0.4 ? gt.captions[2]! : other.captions[2]! },
        { origin: 'synthetic', text: other.captions[3]! },
      ];
      const scored = texts.map((t) => {
        const correct = captionIsCorrect(t.text, gt);
        const u = random();
        return { ...t, usable: true, itc: correct ? 0.26 + 0.12 * u : 0.1 + 0.2 * u, itm: correct ? 0.45 + 0.54 * u : 0.02 + 0.5 * u };
      });
      const verdicts = decideCaptions(scored, POLICY);
      db.prepare('DELETE FROM captions WHERE sample_key = ?').run(key);
      scored.forEach((c, idx) =>
        insert.run(key, idx, c.origin, c.text, c.origin === 'synthetic' ? 'shapes-captioner' : null, c.itc, c.itm, verdicts[idx]!.kept ? 1 : 0, verdicts[idx]!.reason),
      );
      const kept = verdicts.some((v) => v.kept);
      setStatus.run(kept ? 'ok' : 'dropped', kept ? null : NO_CAPTION_PASSED, key);
    });
    const run = db.prepare('SELECT id, recipe_json FROM runs ORDER BY id DESC LIMIT 1').get() as { id: number; recipe_json: string };
    const resolved = JSON.parse(run.recipe_json) as Record<string, unknown>;
    resolved.filter = { itc: { model: 'models/shapes-clip', threshold: 0.28 }, itm: { model: 'models/shapes-itm', threshold: 0.5 }, policy: 'both', topK: 2 };
    db.prepare('UPDATE runs SET recipe_json = ? WHERE id = ?').run(JSON.stringify(resolved), run.id);
  })();
  const okKeys = (db.prepare(`SELECT key FROM samples WHERE status = 'ok' ORDER BY key LIMIT 6`).all() as { key: string }[]).map((r) => r.key);
  new InstructionStore(db).write(
    okKeys.flatMap((key) => {
      const gt = truth.get(key)!;
      const o = gt.objects[0]!;
      return [
        {
          sampleKey: key,
          task: 'conversation' as const,
          variant: 0,
          status: 'ok' as const,
          code: null,
          message: null,
          conversations: [
            { from: 'human' as const, value: `<image>\nWhat color is the ${o.shape}?` },
            { from: 'gpt' as const, value: `The ${o.shape} is ${o.color}.` },
            { from: 'human' as const, value: 'Is it large?' },
            { from: 'gpt' as const, value: o.size === 'large' ? 'Yes, it is large.' : `No, it is ${o.size}.` },
          ],
          requestHash: null,
          attempts: 1,
        },
        {
          sampleKey: key,
          task: 'detail' as const,
          variant: 0,
          status: 'ok' as const,
          code: null,
          message: null,
          conversations: [
            { from: 'human' as const, value: '<image>\nDescribe the image in detail.' },
            { from: 'gpt' as const, value: `The image shows ${gt.captions[0]}.` },
          ],
          requestHash: null,
          attempts: 1,
        },
      ];
    }),
  );
  db.close();
  return { dir, db: dbPath, count };
}
