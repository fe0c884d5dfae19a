/**
 * The report after a refilter (issue 11): it used to show the recipe's thresholds although `vlcurate
 * refilter` had changed the decisions. Now it shows the decisions in force, says they come from that
 * refilter (when, with which flags) and what the recipe says; histograms and the threshold sweep mark the
 * cut in force. Real CLI processes on a real run database (make-run.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectReportData } from '../../src/report/report-data.js';
import { openDatabase } from '../../src/store/database.js';
import { runCli } from '../e2e/helpers.js';
import { makeScoredRun, type MadeRun } from './make-run.js';

let dir: string;
let run: MadeRun;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-report-decisions-'));
  run = await makeScoredRun(dir, 20);
}, 120_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function report(name: string): Promise<string> {
  const path = join(dir, `${name}.html`);
  const result = await runCli(['report', run.db, '-o', path]);
  expect(result.code, result.stderr).toBe(0);
  return readFileSync(path, 'utf8');
}

describe('report: decisions in force', () => {
  it('before a refilter: the recipe decides, and the page says so', async () => {
    const html = await report('before');
    expect(html).toContain('Filter decisions in force: <b>policy both, ITC ≥ 0.28, ITM ≥ 0.5, top 2 by itm</b>, from the recipe of run 1.');
    expect(html).toContain('cut 0.5</text>');
  });

  it('after a refilter: its thresholds, its flags and time, and the recipe beside them', async () => {
    const refiltered = await runCli(['refilter', run.db, '--itm-threshold', '0.8']);
    expect(refiltered.code, refiltered.stderr).toBe(0);
    const html = await report('after');
    expect(html).toMatch(
      /Filter decisions in force: <b>policy both, ITC ≥ 0\.28, ITM ≥ 0\.8, top 2 by itm<\/b>, from <code>vlcurate refilter --itm-threshold 0\.8<\/code> at \d{4}-\d\d-\d\dT[\d:.]+Z \(\d+ samples changed\); the recipe says policy both, ITC ≥ 0\.28, ITM ≥ 0\.5, top 2 by itm\./,
    );
    // The histogram's dashed line and the sweep's marked row are the cut in force, not the recipe's.
    expect(html).toContain('cut 0.8</text>');
    expect(html).not.toContain('cut 0.5</text>');
    expect(html).toMatch(/≥ 0\.8 \(in force\)/);

    const db = openDatabase(run.db, { readonly: true });
    try {
      const data = collectReportData(db);
      expect(data.decisions).toMatchObject({ source: 'refilter', runId: 1, policy: { itmThreshold: 0.8, itcThreshold: 0.28 }, recipe: { itmThreshold: 0.5 } });
      expect(data.histograms.find((h) => h.score === 'itm')!.threshold).toBe(0.8);
    } finally {
      db.close();
    }
  });

  it('a second refilter lays its flags over the first one (both cuts hold), and the page names the latest', async () => {
    const refiltered = await runCli(['refilter', run.db, '--policy', 'itm', '--json']);
    expect(refiltered.code, refiltered.stderr).toBe(0);
    expect(JSON.parse(refiltered.stdout).policy).toMatchObject({ policy: 'itm', itmThreshold: 0.8 });
    const html = await report('second');
    expect(html).toMatch(/Filter decisions in force: <b>policy itm, ITM ≥ 0\.8, top 2 by itm<\/b>, from <code>vlcurate refilter --policy itm<\/code>/);
    // Under policy itm, ITC has no cut to draw.
    expect(html).toContain('cut 0.8</text>');
    expect(html).not.toContain('cut 0.28</text>');
  });
});
