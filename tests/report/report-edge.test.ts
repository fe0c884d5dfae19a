/**
 * The report on runs it must not trip over: no filter scores yet, images that moved away or changed,
 * an empty database; and the SVG histogram's geometry.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPEN, type DecodedPair } from '../../src/core/sample.js';
import { buildReport } from '../../src/report/build-report.js';
import { histogramSvg } from '../../src/report/histogram-svg.js';
import { collectReportData, type ScoreHistogram } from '../../src/report/report-data.js';
import { expectEvery } from '../expect-every.js';
import { stableHash as fnv1a32 } from '../../src/core/shard.js';
import { openDatabase } from '../../src/store/database.js';
import { RunStore } from '../../src/store/run-store.js';
import { makeImage } from '../fixtures/make-webdataset.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-report-edge-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sample(key: string, imageRef: string, sha256 = ''): DecodedPair {
  return {
    key,
    source: 'files',
    imageRef,
    imageBytes: null,
    captions: [{ text: `a photo called ${key}`, origin: 'web', issue: null, usable: true }],
    boxes: [{ label: 'thing', box: [2, 2, 20, 10] }],
    meta: {},
    fate: OPEN,
    image: { width: 40, height: 30, format: 'png', byteLength: 100, sha256, orientation: 1 },
  };
}

describe('report edge cases', () => {
  it('a run without scores, with a missing and a changed image: the page says so and is still written', async () => {
    const good = join(dir, 'good.png');
    writeFileSync(good, await makeImage(40, 30, 'png', 1));
    const changed = join(dir, 'changed.png');
    writeFileSync(changed, await makeImage(40, 30, 'png', 2));
    const dbPath = join(dir, 'plain.db');
    const db = openDatabase(dbPath);
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    store.writeSamples(run, [
      sample('good', `file:${good}`),
      sample('gone', `file:${join(dir, 'nowhere.png')}`),
      sample('changed', `file:${changed}`, 'f'.repeat(64)),
    ]);
    store.finishRun(run, 'finished');
    db.close();

    const out = join(dir, 'plain.html');
    const result = await buildReport(dbPath, out, { generatedAt: 'fixed' });
    expect(result.thumbnails).toMatchObject({ made: 1, failed: 2 });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('No caption has a filter score yet');
    expect(html).toMatch(/image unavailable: image file \/.*nowhere\.png does not exist/);
    expect(html).toMatch(/image unavailable: image file:.*changed\.png no longer matches its recorded sha256/);
    expect(html.match(/<img /g)).toHaveLength(1);
    expect(html).toContain('Recaptioned <span class="muted">(0)</span>');
    // Same database, same page (apart from the time it was made).
    await buildReport(dbPath, join(dir, 'again.html'), { generatedAt: 'fixed' });
    expect(readFileSync(join(dir, 'again.html'), 'utf8')).toBe(html);
  });

  it('an empty run database', async () => {
    const dbPath = join(dir, 'empty.db');
    openDatabase(dbPath).close();
    const result = await buildReport(dbPath, join(dir, 'empty.html'));
    expect(result.samples).toBe(0);
    expect(readFileSync(join(dir, 'empty.html'), 'utf8')).toContain('Kept <span class="muted">(0)</span>');
  });

  it('histogram bars are proportional to their counts and the cut sits at its score', () => {
    const h: ScoreHistogram = {
      score: 'itm',
      lo: 0,
      hi: 1,
      width: 0.25,
      count: 30,
      threshold: 0.5,
      bins: [
        { lo: 0, kept: 0, dropped: 10, undecided: 0 },
        { lo: 0.25, kept: 0, dropped: 5, undecided: 0 },
        { lo: 0.5, kept: 5, dropped: 0, undecided: 0 },
        { lo: 0.75, kept: 10, dropped: 0, undecided: 0 },
      ],
    };
    const svg = histogramSvg(h).text;
    const bars = [...svg.matchAll(/<rect class="bar (\w+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)].map((m) => ({
      kind: m[1],
      x: Number(m[2]),
      height: Number(m[5]),
    }));
    expect(bars.map((b) => b.kind)).toEqual(['dropped', 'dropped', 'kept', 'kept']);
    expect(bars[0]!.height).toBeCloseTo(2 * bars[1]!.height, 1);
    expect(bars[3]!.height).toBeCloseTo(bars[0]!.height, 1);
    const cut = /<line class="threshold" x1="([\d.]+)"/.exec(svg)!;
    // The plot spans x 52..548: 0.5 is in the middle, where the third bar starts.
    expect(Number(cut[1])).toBeCloseTo(300, 0);
    expect(bars[2]!.x).toBeCloseTo(300.5, 0);
  });

  it('a histogram bin whose captions no filter decided yet counts 0 kept and 0 dropped, and draws no kept or dropped bar', () => {
    const dbPath = join(dir, 'half-decided.db');
    const db = openDatabase(dbPath);
    const store = new RunStore(db);
    const run = store.startRun('{}', 'h', '0/1');
    const scored = (key: string, itm: number, kept: boolean | null): DecodedPair => ({
      ...sample(key, `file:${join(dir, `${key}.png`)}`),
      captions: [{ text: `a photo called ${key}`, origin: 'web', issue: null, usable: true, itc: 0.3, itm, kept, reason: kept === null ? null : 'r' }],
    });
    store.writeSamples(run, [scored('kept', 0.9, true), scored('undecided', 0.3, null)]);
    db.close();
    const ro = openDatabase(dbPath, { readonly: true });
    const itm = collectReportData(ro).histograms.find((h) => h.score === 'itm')!;
    ro.close();
    expectEvery(itm.bins, (b) => Number.isInteger(b.kept) && Number.isInteger(b.dropped) && Number.isInteger(b.undecided));
    expect(itm.bins.filter((b) => b.undecided > 0).map((b) => [b.kept, b.dropped, b.undecided])).toEqual([[0, 0, 1]]);
    // Only the bin holding the kept caption has a kept bar (a NULL count drew a sliver in the other).
    expect(String(histogramSvg(itm)).match(/class="bar kept"/g)).toHaveLength(1);
    expect(String(histogramSvg(itm)).match(/class="bar undecided"/g)).toHaveLength(1);
  });

  it('gallery sampling hashes keys with FNV-1a', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });
});
