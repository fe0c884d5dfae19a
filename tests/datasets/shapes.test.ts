import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  apportionNoise,
  BOILERPLATE,
  captionIsCorrect,
  COLOR_RGB,
  COLORS,
  generateShapes,
  NOISE_KINDS,
  planDataset,
  RELATIONS,
  relationsAreCorrect,
  Rng,
  SHAPES,
  SIZES,
  statedRelations,
  type GroundTruthRecord,
  type ShapesSummary,
} from '../../datasets/shapes/index.js';
import { assignNoise } from '../../datasets/shapes/noise.js';
import { expectEvery } from '../expect-every.js';

const COUNT = 120;
const NOISE = 0.4;
const SEED = 7;
const SHARD_SIZE = 50;
const SIZE = 128;

let root: string;
let summary: ShapesSummary;
let truth: GroundTruthRecord[];

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else out.push(path);
  }
  return out.sort();
}

async function hashes(dir: string): Promise<Map<string, string>> {
  const map = new Map<string, string>();
  for (const file of await listFiles(dir)) {
    map.set(relative(dir, file), createHash('sha256').update(await readFile(file)).digest('hex'));
  }
  return map;
}

async function readTruth(path: string): Promise<GroundTruthRecord[]> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as GroundTruthRecord);
}

/** "color shape" pairs named in a caption. */
function namedPairs(caption: string): string[] {
  const words = caption.replace(/,/g, '').split(' ');
  const pairs: string[] = [];
  for (let i = 0; i + 1 < words.length; i++) {
    if ((COLORS as readonly string[]).includes(words[i]!) && (SHAPES as readonly string[]).includes(words[i + 1]!)) {
      pairs.push(`${words[i]} ${words[i + 1]}`);
    }
  }
  return pairs;
}

const ownPairs = (r: GroundTruthRecord): string[] => r.objects.map((o) => `${o.color} ${o.shape}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'vlcurate-shapes-'));
  summary = await generateShapes({ out: join(root, 'a'), count: COUNT, noise: NOISE, seed: SEED, shardSize: SHARD_SIZE });
  truth = await readTruth(summary.groundTruth);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('determinism', () => {
  it('gives byte-identical files for the same options and different ones for another seed', async () => {
    const again = await generateShapes({ out: join(root, 'b'), count: COUNT, noise: NOISE, seed: SEED, shardSize: SHARD_SIZE });
    const first = await hashes(summary.out);
    const second = await hashes(again.out);
    expect(first.size).toBe(2 + 3 + 1 + COUNT); // captions.json, instances.json, 3 shards, ground truth, images
    expect([...second.keys()]).toEqual([...first.keys()]);
    for (const [name, digest] of first) expect(second.get(name), name).toBe(digest);

    const other = await generateShapes({ out: join(root, 'c'), count: COUNT, noise: NOISE, seed: SEED + 1, shardSize: SHARD_SIZE });
    const third = await hashes(other.out);
    expect(third.get('ground_truth.jsonl')).not.toBe(first.get('ground_truth.jsonl'));
    expect(third.get('webdataset/shapes-000000.tar')).not.toBe(first.get('webdataset/shapes-000000.tar'));
    expect(third.get('coco/images/shapes_000000.jpg')).not.toBe(first.get('coco/images/shapes_000000.jpg'));
  });

  it('keeps scenes and captions when only the noise fraction changes', () => {
    const a = planDataset({ count: 40, noise: 0, seed: 11, imageSize: SIZE });
    const b = planDataset({ count: 40, noise: 0.9, seed: 11, imageSize: SIZE });
    expect(b.map((i) => i.scene)).toEqual(a.map((i) => i.scene));
    expect(b.map((i) => i.captions)).toEqual(a.map((i) => i.captions));
    expect(b.filter((i) => i.noise !== null)).toHaveLength(36);
  });
});

describe('ground truth', () => {
  it('has one line per image with exactly the contract fields', () => {
    expect(truth).toHaveLength(COUNT);
    truth.forEach((r, i) => {
      expect(Object.keys(r).sort()).toEqual(['captions', 'height', 'key', 'noise', 'objects', 'web_caption', 'width']);
      expect(r.key).toBe(`shapes_${String(i).padStart(6, '0')}`);
      expect(r.key).toMatch(/^[A-Za-z0-9_-]+$/);
      expect([r.width, r.height]).toEqual([SIZE, SIZE]);
      expect(r.objects.length).toBeGreaterThanOrEqual(1);
      expect(r.objects.length).toBeLessThanOrEqual(3);
      for (const o of r.objects) {
        expect(Object.keys(o).sort()).toEqual(['box', 'color', 'shape', 'size']);
        expect(SHAPES).toContain(o.shape);
        expect(COLORS).toContain(o.color);
        expect(SIZES).toContain(o.size);
      }
      expect(new Set(ownPairs(r)).size).toBe(r.objects.length);
      expect([null, ...NOISE_KINDS]).toContain(r.noise);
      expect(typeof r.web_caption).toBe('string');
    });
  });

  it('has five distinct captions naming every object by size, colour and shape', () => {
    for (const r of truth) {
      expect(r.captions).toHaveLength(5);
      expect(new Set(r.captions).size).toBe(5);
      for (const caption of r.captions) {
        expect(caption.split(' ').length).toBeLessThanOrEqual(25);
        for (const o of r.objects) {
          const phrase = new RegExp(`\\b${o.size} ${o.color} ${o.shape}\\b`, 'g');
          expect(caption.match(phrase), `${caption} / ${o.size} ${o.color} ${o.shape}`).toHaveLength(1);
        }
        expect(namedPairs(caption).sort()).toEqual(ownPairs(r).sort());
      }
      if (r.objects.length > 1) {
        const relational = r.captions.filter((c) => RELATIONS.some((rel) => c.includes(` ${rel} `)));
        expect(relational.length).toBeGreaterThanOrEqual(2);
      }
    }
  });

  it('states relations that agree with the boxes', () => {
    let checked = 0;
    for (const r of truth.filter((t) => t.objects.length === 2)) {
      const [a, b] = r.objects as [GroundTruthRecord['objects'][0], GroundTruthRecord['objects'][0]];
      for (const caption of r.captions) {
        const m = /^(?:there is )?a (\w+ \w+ \w+) (to the left of|to the right of|above|below) a (\w+ \w+ \w+)$/.exec(caption);
        if (!m) continue;
        const [subject, object] = `${a.size} ${a.color} ${a.shape}` === m[1] ? [a, b] : [b, a];
        const cx = (o: typeof a): number => (o.box[0] + o.box[2]) / 2;
        const cy = (o: typeof a): number => (o.box[1] + o.box[3]) / 2;
        const rel = m[2];
        if (rel === 'to the left of') expect(cx(subject)).toBeLessThan(cx(object));
        if (rel === 'to the right of') expect(cx(subject)).toBeGreaterThan(cx(object));
        if (rel === 'above') expect(cy(subject)).toBeLessThan(cy(object));
        if (rel === 'below') expect(cy(subject)).toBeGreaterThan(cy(object));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(10);
  });

  it('covers the whole vocabulary with clearly separated sizes', () => {
    const all = truth.flatMap((r) => r.objects);
    expect(new Set(all.map((o) => o.shape))).toEqual(new Set(SHAPES));
    expect(new Set(all.map((o) => o.color))).toEqual(new Set(COLORS));
    const text = truth.flatMap((r) => r.captions).join('\n');
    for (const rel of RELATIONS) expect(text).toContain(` ${rel} `);
    const extent = (o: (typeof all)[0]): number => Math.max(o.box[2] - o.box[0], o.box[3] - o.box[1]);
    const small = all.filter((o) => o.size === 'small').map(extent);
    const large = all.filter((o) => o.size === 'large').map(extent);
    expect(Math.max(...small) * 1.5).toBeLessThan(Math.min(...large));
  });

  it('keeps objects apart and inside the image', () => {
    for (const r of truth) {
      for (const o of r.objects) {
        const [x1, y1, x2, y2] = o.box;
        expectEvery(o.box, Number.isInteger);
        expect(x1).toBeGreaterThanOrEqual(0);
        expect(y1).toBeGreaterThanOrEqual(0);
        expect(x2).toBeLessThanOrEqual(r.width);
        expect(y2).toBeLessThanOrEqual(r.height);
        expect(x2).toBeGreaterThan(x1);
        expect(y2).toBeGreaterThan(y1);
      }
      r.objects.forEach((a, i) =>
        r.objects.slice(i + 1).forEach((b) => {
          const apart = a.box[2] < b.box[0] || b.box[2] < a.box[0] || a.box[3] < b.box[1] || b.box[3] < a.box[1];
          expect(apart).toBe(true);
        }),
      );
    }
  });
});

describe('web caption noise', () => {
  it('makes exactly round(noise * count) captions noisy, split 30/25/15/15/15', () => {
    const counts = Object.fromEntries(NOISE_KINDS.map((k) => [k, truth.filter((r) => r.noise === k).length]));
    expect(counts).toEqual(summary.noisy);
    expect(Object.values(counts).reduce((s, n) => s + n, 0)).toBe(Math.round(NOISE * COUNT));
    expect(counts).toEqual({ mismatch: 15, swap: 12, relation: 7, boilerplate: 7, empty: 7 });
    expect(apportionNoise(100)).toEqual({ mismatch: 30, swap: 25, relation: 15, boilerplate: 15, empty: 15 });
    for (const [count, noise] of [[50, 0.25], [33, 0.5], [7, 1], [10, 0], [1, 1]] as const) {
      const plan = planDataset({ count, noise, seed: 3, imageSize: SIZE });
      expect(plan.filter((i) => i.noise !== null)).toHaveLength(Math.round(noise * count));
    }
  });

  it('gives clean images one of their own captions', () => {
    const clean = truth.filter((r) => r.noise === null);
    expect(clean).toHaveLength(COUNT - 48);
    for (const r of clean) expect(r.captions).toContain(r.web_caption);
  });

  it('swaps exactly one colour or shape word of a true caption, to an object not in the scene', () => {
    const swaps = truth.filter((r) => r.noise === 'swap');
    expect(swaps.length).toBeGreaterThan(0);
    let colours = 0;
    let shapes = 0;
    for (const r of swaps) {
      expect(r.captions).not.toContain(r.web_caption);
      const noisy = r.web_caption.split(' ');
      const matches = r.captions.filter((c) => {
        const words = c.split(' ');
        if (words.length !== noisy.length) return false;
        const diff = words.flatMap((w, i) => (w === noisy[i] ? [] : [[w.replace(',', ''), noisy[i]!.replace(',', '')]]));
        if (diff.length !== 1) return false;
        const [was, now] = diff[0]!;
        const isColour = (COLORS as readonly string[]).includes(was!) && (COLORS as readonly string[]).includes(now!);
        const isShape = (SHAPES as readonly string[]).includes(was!) && (SHAPES as readonly string[]).includes(now!);
        if (isColour) colours++;
        if (isShape) shapes++;
        return isColour || isShape;
      });
      expect(matches, r.web_caption).toHaveLength(1);
      const wrong = namedPairs(r.web_caption).filter((p) => !ownPairs(r).includes(p));
      expect(wrong).toHaveLength(1);
    }
    expect(colours + shapes).toBe(swaps.length);
  });

  it('swaps only a spatial relation: a true caption with one relation phrase replaced by a false one', () => {
    const swaps = truth.filter((r) => r.noise === 'relation');
    expect(swaps.length).toBeGreaterThan(0);
    const phrase = new RegExp(`\\b(${RELATIONS.join('|')})\\b`, 'g');
    for (const r of swaps) {
      expect(r.objects.length).toBeGreaterThan(1);
      expect(r.captions).not.toContain(r.web_caption);
      // Objects all right: the caption is correct by the object judge, wrong by the relation judge.
      expect(captionIsCorrect(r.web_caption, r), r.web_caption).toBe(true);
      expect(relationsAreCorrect(r.web_caption, r), r.web_caption).toBe(false);
      expect(statedRelations(r.web_caption, r).filter((ok) => !ok), r.web_caption).toHaveLength(1);
      // The same sentence as one of the image's own captions but for one relation phrase.
      const skeleton = r.web_caption.replace(phrase, 'REL');
      expect(r.captions.some((c) => c.replace(phrase, 'REL') === skeleton), r.web_caption).toBe(true);
    }
  });

  it('gives relation swaps only to scenes with two or more objects, keeping the counts, and swaps where none is left', () => {
    const plan = planDataset({ count: 400, noise: 1, seed: 5, imageSize: SIZE });
    const relation = plan.filter((i) => i.noise === 'relation');
    expect(relation).toHaveLength(apportionNoise(400).relation);
    expectEvery(relation, (i) => i.scene.objects.length > 1);
    // No scene with a relation (tiny datasets): the relation share goes to swap, the total stays.
    const kinds = [...assignNoise(new Rng(1, 2), 20, 20, () => false).values()];
    expect(kinds).toHaveLength(20);
    expect(kinds.filter((k) => k === 'relation')).toHaveLength(0);
    expect(kinds.filter((k) => k === 'swap')).toHaveLength(apportionNoise(20).swap + apportionNoise(20).relation);
    // Only one scene with a relation: it gets the relation swap if one was drawn at all.
    const one = assignNoise(new Rng(1, 2), 20, 20, (i) => i === 7);
    expect([...one.entries()].filter(([, k]) => k === 'relation')).toEqual([[7, 'relation']]);
  });

  it('mismatches with another image caption that names different objects', () => {
    const mismatches = truth.filter((r) => r.noise === 'mismatch');
    expect(mismatches.length).toBeGreaterThan(0);
    for (const r of mismatches) {
      const sources = truth.filter((o) => o.captions.includes(r.web_caption));
      expect(sources.length).toBeGreaterThan(0);
      expect(sources).not.toContain(r);
      const named = namedPairs(r.web_caption);
      expect(named.length).toBeGreaterThan(0);
      for (const pair of named) expect(ownPairs(r)).not.toContain(pair);
    }
  });

  it('uses alt-text boilerplate and empty strings', () => {
    const patterns = BOILERPLATE.map((b) => new RegExp(`^${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/#/g, '\\d')}$`));
    const boiler = truth.filter((r) => r.noise === 'boilerplate');
    expect(boiler.length).toBeGreaterThan(0);
    for (const r of boiler) {
      expect(r.web_caption.length).toBeGreaterThan(0);
      expect(patterns.some((p) => p.test(r.web_caption)), r.web_caption).toBe(true);
      expect(namedPairs(r.web_caption)).toEqual([]);
    }
    expect(BOILERPLATE.length).toBeGreaterThanOrEqual(15);
    const empty = truth.filter((r) => r.noise === 'empty');
    expect(empty.length).toBeGreaterThan(0);
    for (const r of empty) expect(r.web_caption).toBe('');
  });
});

describe('rendered images', () => {
  it('are 128 px JPEGs whose boxes are tight around objects of the right colour', async () => {
    const diff = (a: readonly number[], b: readonly number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    for (const r of truth.slice(0, 60)) {
      const bytes = await readFile(join(summary.out, 'coco', 'images', `${r.key}.jpg`));
      const meta = await sharp(bytes).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', SIZE, SIZE]);
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      expect(info.channels).toBe(3);
      const px = (x: number, y: number): number[] => [...data.subarray((y * SIZE + x) * 3, (y * SIZE + x) * 3 + 3)];
      const background = px(0, 0);
      const isObject = (x: number, y: number): boolean => diff(px(x, y), background) > 60;
      for (const o of r.objects) {
        const [x1, y1, x2, y2] = o.box;
        // Each edge of the box touches the shape: object pixels within 3 px inside every side.
        const band = (xs: number[], ys: number[]): boolean => xs.some((x) => ys.some((y) => isObject(x, y)));
        const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
        expect(band(range(x1, x2), range(y1, y1 + 3)), `${r.key} top`).toBe(true);
        expect(band(range(x1, x2), range(y2 - 3, y2)), `${r.key} bottom`).toBe(true);
        expect(band(range(x1, x1 + 3), range(y1, y2)), `${r.key} left`).toBe(true);
        expect(band(range(x2 - 3, x2), range(y1, y2)), `${r.key} right`).toBe(true);
        // Nothing of the shape outside: a 2 px ring just outside the box is background.
        const ring: [number, number][] = [];
        for (let x = x1 - 2; x < x2 + 2; x++) ring.push([x, y1 - 2], [x, y1 - 1], [x, y2], [x, y2 + 1]);
        for (let y = y1 - 2; y < y2 + 2; y++) ring.push([x1 - 2, y], [x1 - 1, y], [x2, y], [x2 + 1, y]);
        for (const [x, y] of ring) expect(isObject(x, y), `${r.key} ${o.shape} at ${x},${y}`).toBe(false);
        // The centre has the named colour.
        const centre = px(Math.floor((x1 + x2) / 2), Math.floor((y1 + y2) / 2 + (o.shape === 'triangle' ? (y2 - y1) / 6 : 0)));
        expect(diff(centre, COLOR_RGB[o.color]), `${r.key} ${o.color} ${o.shape}`).toBeLessThan(30);
      }
      // Away from every box the image is plain background.
      expect(diff(px(SIZE - 1, SIZE - 1), background)).toBeLessThan(20);
      expect(Math.min(...background)).toBeGreaterThan(200);
    }
  });
});

describe('WebDataset shards', () => {
  it('read back with node-tar: shardSize samples each, members consecutive and sorted, fixed mtime', async () => {
    expect(summary.shards.map((s) => relative(summary.out, s))).toEqual([
      'webdataset/shapes-000000.tar',
      'webdataset/shapes-000001.tar',
      'webdataset/shapes-000002.tar',
    ]);
    const names: string[] = [];
    const perShard: number[] = [];
    for (const shard of summary.shards) {
      const before = names.length;
      await tar.t({
        file: shard,
        onReadEntry: (entry) => {
          names.push(entry.path);
          expect(entry.type).toBe('File');
          expect(entry.mtime?.getTime()).toBe(0);
        },
      });
      perShard.push((names.length - before) / 3);
    }
    expect(perShard).toEqual([50, 50, 20]);
    const expected = truth.flatMap((r) => [`${r.key}.jpg`, `${r.key}.json`, `${r.key}.txt`]);
    expect(names).toEqual(expected);
  });

  it('hold the rendered image, the web caption and img2dataset metadata', async () => {
    const dir = join(root, 'extract');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await tar.x({ file: summary.shards[1]!, cwd: dir });
    const extracted = await readdir(dir);
    expect(extracted).toHaveLength(150);
    for (const r of truth.slice(50, 100)) {
      const jpg = await readFile(join(dir, `${r.key}.jpg`));
      expect(jpg.equals(await readFile(join(summary.out, 'coco', 'images', `${r.key}.jpg`)))).toBe(true);
      expect(await readFile(join(dir, `${r.key}.txt`), 'utf8')).toBe(r.web_caption);
      const json = JSON.parse(await readFile(join(dir, `${r.key}.json`), 'utf8'));
      expect(json).toEqual({
        key: r.key,
        caption: r.web_caption,
        url: `https://shapes.invalid/${r.key}.jpg`,
        width: SIZE,
        height: SIZE,
        status: 'success',
        boxes: r.objects.map((o) => ({ label: `${o.color} ${o.shape}`, box: o.box })),
      });
    }
  });
});

describe('COCO files', () => {
  it('captions.json holds the five true captions of every image', async () => {
    const coco = JSON.parse(await readFile(summary.cocoCaptions, 'utf8'));
    expect(coco.images).toHaveLength(COUNT);
    expect(coco.annotations).toHaveLength(COUNT * 5);
    expect(new Set(coco.annotations.map((a: { id: number }) => a.id)).size).toBe(COUNT * 5);
    truth.forEach((r, i) => {
      const image = coco.images[i];
      expect(image).toEqual({ id: i + 1, file_name: `${r.key}.jpg`, width: SIZE, height: SIZE });
      const captions = coco.annotations.filter((a: { image_id: number }) => a.image_id === image.id).map((a: { caption: string }) => a.caption);
      expect(captions).toEqual(r.captions);
    });
  });

  it('instances.json boxes are the ground-truth boxes as [x, y, w, h] with "<color> <shape>" categories', async () => {
    const coco = JSON.parse(await readFile(summary.cocoInstances, 'utf8'));
    expect(coco.categories).toHaveLength(30);
    const byId = new Map<number, { name: string; supercategory: string }>(coco.categories.map((c: { id: number }) => [c.id, c]));
    expect(byId.get(1)).toEqual({ id: 1, name: 'red circle', supercategory: 'circle' });
    expect(coco.annotations).toHaveLength(truth.reduce((s, r) => s + r.objects.length, 0));
    for (const [i, r] of truth.entries()) {
      const anns = coco.annotations.filter((a: { image_id: number }) => a.image_id === i + 1);
      expect(anns).toHaveLength(r.objects.length);
      r.objects.forEach((o, k) => {
        const a = anns[k];
        const [x1, y1, x2, y2] = o.box;
        expect(a.bbox).toEqual([x1, y1, x2 - x1, y2 - y1]);
        expect(byId.get(a.category_id)).toEqual({ id: a.category_id, name: `${o.color} ${o.shape}`, supercategory: o.shape });
        expect(a.iscrowd).toBe(0);
        expect(a.area).toBeGreaterThan(0);
        expect(a.area).toBeLessThanOrEqual((x2 - x1) * (y2 - y1));
      });
    }
  });
});

describe('output folder', () => {
  it('removes its own temporary leftovers and the outputs of an earlier, larger run', async () => {
    const out = join(root, 'rerun');
    await generateShapes({ out, count: 30, noise: 0.5, seed: 1, shardSize: 10 });
    expect((await readdir(join(out, 'webdataset'))).length).toBe(3);
    // Leftovers of an interrupted run go; a foreign file in the folder stays.
    await writeFile(join(out, 'webdataset', 'shapes-000007.tar.tmp'), 'partial');
    await writeFile(join(out, 'notes.tmp'), 'mine');
    const small = await generateShapes({ out, count: 12, noise: 0.5, seed: 1, shardSize: 10 });
    expect(await readdir(join(out, 'webdataset'))).toEqual(['shapes-000000.tar', 'shapes-000001.tar']);
    expect(await readdir(join(out, 'coco', 'images'))).toHaveLength(12);
    expect(small.shards).toHaveLength(2);
    const all = await listFiles(out);
    expect(all.filter((f) => f.endsWith('.tmp'))).toEqual([join(out, 'notes.tmp')]);
    expect((await stat(small.groundTruth)).size).toBeGreaterThan(0);
    expect(await readTruth(small.groundTruth)).toHaveLength(12);
  });
});
