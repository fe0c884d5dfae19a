/**
 * `vlcurate report` on a small real run (see make-run.ts): the data the page shows is checked against the
 * database, the HTML is self-contained and escapes every caption, and headless Chromium (playwright-core
 * with Debian's /usr/bin/chromium) renders it: images decode, histograms and box overlays are drawn, no
 * console errors, no network requests. A screenshot is saved to tests/.artifacts/report.png.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type BrowserContext } from 'playwright-core';
import { collectReportData } from '../../src/report/report-data.js';
import { openDatabase } from '../../src/store/database.js';
import { runCli } from '../e2e/helpers.js';
import { HOSTILE_CAPTION, makeScoredRun, type MadeRun } from './make-run.js';
import { expectEvery } from '../expect-every.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(import.meta.dirname, '../.artifacts');
let dir: string;
let run: MadeRun;
let reportPath: string;
let html: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-report-'));
  run = await makeScoredRun(dir, 40);
  reportPath = join(dir, 'out', 'report.html');
  // Galleries of 48: every sample of this small run is shown (sampling is checked on the data above).
  const result = await runCli(['report', run.db, '-o', reportPath]);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stderr).toMatch(/^report: .*report\.html \([\d.]+ KiB; 41 samples, \d+ thumbnails; [\d.]+s\)$/m);
  html = readFileSync(reportPath, 'utf8');
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('report data', () => {
  it('histograms count every scored caption once, split by verdict', () => {
    const db = openDatabase(run.db, { readonly: true });
    try {
      const data = collectReportData(db, { maxGallery: 12 });
      const truth = db.prepare('SELECT SUM(kept = 1) AS kept, SUM(kept = 0) AS dropped, COUNT(*) AS n FROM captions WHERE itm IS NOT NULL').get() as {
        kept: number;
        dropped: number;
        n: number;
      };
      expect(truth.n).toBeGreaterThan(100);
      expect(data.histograms.map((h) => h.score)).toEqual(['itc', 'itm']);
      for (const h of data.histograms) {
        expect(h.bins).toHaveLength(40);
        expect(h.bins.reduce((s, b) => s + b.kept, 0)).toBe(truth.kept);
        expect(h.bins.reduce((s, b) => s + b.dropped, 0)).toBe(truth.dropped);
        expect(h.count).toBe(truth.n);
      }
      expect(data.histograms[0]!.threshold).toBe(0.28);
      expect(data.histograms[1]!.threshold).toBe(0.5);
      // Bins agree with the scores themselves.
      const itm = db.prepare('SELECT itm FROM captions WHERE itm IS NOT NULL').all() as { itm: number }[];
      const h = data.histograms[1]!;
      const expected = new Array<number>(40).fill(0);
      for (const { itm: v } of itm) expected[Math.min(39, Math.floor((v - h.lo) / h.width))]!++;
      expect(h.bins.map((b) => b.kept + b.dropped + b.undecided)).toEqual(expected);
    } finally {
      db.close();
    }
  });

  it('the threshold sweep counts captions and images at each threshold', () => {
    const db = openDatabase(run.db, { readonly: true });
    try {
      const data = collectReportData(db);
      // Captions that could pass: usable, not empty (the demo's noise includes empty web captions).
      const rows = db.prepare(`SELECT sample_key AS key, itc, itm FROM captions WHERE itm IS NOT NULL AND usable = 1 AND trim(text) != ''`).all() as { key: string; itc: number; itm: number }[];
      for (const sweep of data.sweeps) {
        expect(sweep.captions).toBe(rows.length);
        expect(sweep.rows.some((r) => r.current)).toBe(true);
        for (const r of sweep.rows) {
          const passing = rows.filter((c) => c[sweep.score] >= r.threshold);
          expect(r.captionsKept).toBe(passing.length);
          expect(r.imagesKept).toBe(new Set(passing.map((c) => c.key)).size);
        }
      }
      const itmRows = data.sweeps[1]!.rows.map((r) => r.threshold);
      expect(itmRows).toEqual([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    } finally {
      db.close();
    }
  });

  it('galleries are deterministic samples of the right samples', () => {
    const db = openDatabase(run.db, { readonly: true });
    try {
      const a = collectReportData(db, { maxGallery: 5 });
      const b = collectReportData(db, { maxGallery: 5 });
      const [kept, dropped, recaptioned] = a.galleries;
      expect(a.galleries.map((g) => g.samples.map((s) => s.key))).toEqual(b.galleries.map((g) => g.samples.map((s) => s.key)));
      expect(kept!.samples).toHaveLength(5);
      expectEvery(kept!.samples, (s) => s.status === 'ok');
      expect(dropped!.total).toBeGreaterThan(0);
      expectEvery(dropped!.samples, (s) => s.status === 'dropped' && s.dropReason === 'no_caption_passed');
      expectEvery(recaptioned!.samples, (s) => s.captions.some((c) => c.origin === 'synthetic'));
      // Recaptioned shows samples whose synthetic captions were kept first.
      expect(recaptioned!.samples.some((s) => s.captions.some((c) => c.origin === 'synthetic' && c.kept))).toBe(true);
      expectEvery(kept!.samples, (s) => s.boxes.length >= 1 && s.width === 160);
      expect(a.failures).toEqual([
        expect.objectContaining({ code: 'image_truncated', count: 1, examples: [expect.objectContaining({ key: 'broken_000' })] }),
      ]);
      expect(a.instructions.counts).toEqual({ conversation: { ok: 6 }, detail: { ok: 6 } });
      expect(a.instructions.examples.length).toBe(12);
    } finally {
      db.close();
    }
  });
});

describe('report HTML', () => {
  it('is one self-contained file: inline styles, data: images, nothing fetched', () => {
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`);
    const sources = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(10);
    for (const s of sources) expect(s).toMatch(/^(data:image\/jpeg;base64,|#)/);
    expect(html).not.toMatch(/<link\b|<script\b|@import|url\(/i);
  });

  it('escapes captions (they are untrusted web text)', () => {
    expect(html).not.toContain(HOSTILE_CAPTION);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=&quot;http://example.invalid/x.png&quot;');
  });

  it('has every section: summary, histograms, sweep, galleries, instructions, failures', () => {
    for (const id of ['summary', 'scores', 'sweep', 'gallery-kept', 'gallery-dropped', 'gallery-recaptioned', 'instructions', 'failures']) {
      expect(html).toContain(`id="${id}"`);
    }
    expect(html.match(/<svg class="histogram"/g)).toHaveLength(2);
    expect(html).toContain('image_truncated');
  });
});

const browserMissing = !existsSync(CHROMIUM);
if (browserMissing && process.env.CI) throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium for this test`);

describe.skipIf(browserMissing)('report in headless Chromium', () => {
  let browser: BrowserContext;
  let profile: string;
  beforeAll(async () => {
    // An empty profile (playwright passes it as --user-data-dir).
    profile = mkdtempSync(join(tmpdir(), 'vlc-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
      ],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('renders: images decode, histograms and boxes are drawn, no console errors, no network', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('dialog', (d) => problems.push(`dialog: ${d.message()}`));
    page.on('request', (req) => {
      if (!req.url().startsWith('data:') && !req.url().startsWith('file:')) requests.push(req.url());
    });
    await page.goto(`file://${reportPath}`, { waitUntil: 'load' });

    const images = await page.$$eval('img', (imgs) =>
      imgs.map((img) => ({ complete: img.complete, natural: img.naturalWidth, shown: img.getBoundingClientRect().width })),
    );
    // Every sample but the broken one in the kept or dropped gallery, most again under recaptioned, + 12 conversations.
    expect(images.length).toBeGreaterThanOrEqual(36);
    for (const img of images) {
      expect(img.complete).toBe(true);
      expect(img.natural).toBeGreaterThan(0);
      expect(img.shown).toBeGreaterThan(0);
    }

    const charts = await page.$$eval('svg.histogram', (svgs) =>
      svgs.map((svg) => {
        const box = svg.getBoundingClientRect();
        const bars = [...svg.querySelectorAll('rect.bar')].map((r) => r.getBoundingClientRect());
        return {
          score: svg.getAttribute('data-score'),
          width: box.width,
          height: box.height,
          bars: bars.length,
          tallBars: bars.filter((b) => b.height > 0 && b.width > 0).length,
          kept: svg.querySelectorAll('rect.bar.kept').length,
          dropped: svg.querySelectorAll('rect.bar.dropped').length,
          threshold: svg.querySelectorAll('line.threshold').length,
        };
      }),
    );
    expect(charts.map((c) => c.score)).toEqual(['itc', 'itm']);
    for (const c of charts) {
      expect(c.width).toBeGreaterThan(200);
      expect(c.height).toBeGreaterThan(100);
      expect(c.tallBars).toBe(c.bars);
      expect(c.kept).toBeGreaterThan(0);
      expect(c.dropped).toBeGreaterThan(0);
      expect(c.threshold).toBe(1);
    }

    // Box overlays cover their image exactly and their rectangles have a size.
    const overlays = await page.$$eval('figure.thumb .frame', (frames) =>
      frames
        .filter((f) => f.querySelector('svg.boxes'))
        .map((f) => {
          const img = f.querySelector('img')!.getBoundingClientRect();
          const svg = f.querySelector('svg.boxes')!.getBoundingClientRect();
          const rects = [...f.querySelectorAll('svg.boxes rect')].map((r) => r.getBoundingClientRect());
          return { img: [img.x, img.y, img.width, img.height], svg: [svg.x, svg.y, svg.width, svg.height], rects: rects.map((r) => [r.width, r.height]) };
        }),
    );
    expect(overlays.length).toBeGreaterThan(10);
    for (const o of overlays) {
      o.svg.forEach((v, i) => expect(v).toBeCloseTo(o.img[i]!, 0));
      expect(o.rects.length).toBeGreaterThan(0);
      for (const [w, h] of o.rects) {
        expect(w).toBeGreaterThan(2);
        expect(h).toBeGreaterThan(2);
      }
    }

    // The hostile caption is shown as text, not run.
    expect(await page.textContent('body')).toContain('<script>alert("x")</script>');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report-top.png') });
    expect(existsSync(join(ARTIFACTS, 'report.png'))).toBe(true);
    expect(problems).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  }, 60_000);
});
