/**
 * `npm run bench`: every benchmark section, results printed and written to bench/results/latest.json.
 * Figures are ratios and rates measured in one run on the same machine; see BENCHMARKS.md.
 * `npm run bench -- ingest` runs only the named sections.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { benchIngest } from './ingest.js';
import { benchModels } from './models.js';
import { benchRefilter } from './refilter.js';
import { benchLlm } from './llm.js';
import { benchSources } from './sources.js';
import { benchExport } from './export.js';
import { benchInspect } from './inspect.js';
import { benchCapfilt } from './capfilt.js';
import { benchRealSize } from './realsize.js';
import { benchS3 } from './s3.js';
import { ROOT } from './util.js';

const SECTIONS: Record<string, () => Promise<Record<string, unknown>>> = {
  ingest: benchIngest,
  models: benchModels,
  refilter: () => benchRefilter(),
  llm: benchLlm,
  sources: benchSources,
  export: benchExport,
  inspect: () => benchInspect(),
  capfilt: benchCapfilt,
  realsize: benchRealSize,
  s3: benchS3,
};

const wanted = process.argv.slice(2);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30), node: process.version },
};
for (const [name, run] of Object.entries(SECTIONS)) {
  if (wanted.length && !wanted.includes(name)) continue;
  process.stderr.write(`bench ${name}...\n`);
  const started = performance.now();
  results[name] = await run();
  process.stderr.write(`bench ${name}: ${JSON.stringify(results[name], null, 2)} (${Math.round((performance.now() - started) / 1000)}s)\n`);
}
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
