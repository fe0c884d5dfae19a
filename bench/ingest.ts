import { mkdirSync, rmSync, writeFileSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { cachedShapes, CACHE, round, runChild } from './util.js';
import type { RunSummary, StageCounts } from '../src/core/events.js';

interface ChildResult {
  elapsedMs: number;
  maxRssMb: number;
  summary: RunSummary;
  stages: StageCounts[];
}

/**
 * Issue 2: ingest + decode + record + WebDataset export of demo samples, and peak RSS at 10k and 100k
 * samples. The 100k run reads the 10k shards ten times under ten key prefixes (distinct samples to the
 * pipeline, no extra disk), so memory growth between the two is the pipeline's own.
 */
export async function benchIngest(): Promise<Record<string, unknown>> {
  const data = await cachedShapes(10_000);
  const shards = readdirSync(join(data, 'webdataset')).filter((f) => f.endsWith('.tar')).map((f) => join(data, 'webdataset', f));
  const results: Record<string, unknown> = {};
  // `decode.dedup: exact` on the 10k samples (no copies to find: the cost of looking), between two plain
  // 10k runs, so the ratio is against their mean rather than against one warm or cold run.
  const runs = [
    { label: '10000', copies: 1, dedup: false },
    { label: '10000-dedup', copies: 1, dedup: true },
    { label: '10000-again', copies: 1, dedup: false },
    { label: '100000', copies: 10, dedup: false },
  ];
  for (const { label, copies, dedup } of runs) {
    const work = join(CACHE, `ingest-${label}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const recipe = join(work, 'recipe.yaml');
    writeFileSync(
      recipe,
      stringify({
        run: { db: join(work, 'run.db') },
        sources: Array.from({ length: copies }, (_, i) => ({ type: 'webdataset', name: `copy${i}`, paths: shards, keyPrefix: copies > 1 ? `c${i}_` : undefined })),
        decode: { dedup: dedup ? 'exact' : 'off' },
        export: [{ type: 'webdataset', name: 'wds', out: join(work, 'wds'), maxCount: 5000 }],
      }),
    );
    const r = runChild<ChildResult>('build-child.js', [recipe]);
    const samples = r.summary.samples.total;
    const bytes = readdirSync(join(work, 'wds')).reduce((sum, f) => sum + statSync(join(work, 'wds', f)).size, 0);
    results[label] = {
      samples,
      exported: r.summary.exported.wds,
      seconds: round(r.elapsedMs / 1000, 2),
      samplesPerSecond: round((samples * 1000) / r.elapsedMs),
      exportMBPerSecond: round(bytes / 1e6 / (r.elapsedMs / 1000), 2),
      peakRssMb: round(r.maxRssMb),
    };
    rmSync(work, { recursive: true, force: true });
  }
  const small = results['10000'] as { peakRssMb: number; samplesPerSecond: number };
  const large = results['100000'] as { peakRssMb: number };
  const dedup = results['10000-dedup'] as { samplesPerSecond: number };
  const again = results['10000-again'] as { samplesPerSecond: number };
  return {
    ...results,
    rssRatio100kTo10k: round(large.peakRssMb / small.peakRssMb, 2),
    dedupThroughputRatio: round((2 * dedup.samplesPerSecond) / (small.samplesPerSecond + again.samplesPerSecond), 2),
  };
}
