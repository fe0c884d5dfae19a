/**
 * Issue 8: sources.
 *
 * - downloads per second through a JSONL manifest of URLs from the local image server with 100 ms
 *   latency per answer, at the default download settings (16 in flight, 4 per host); the URLs are spread
 *   over 8 loopback hosts (127.0.0.1-8), as a web manifest spreads over many sites, so the ceiling is
 *   16 / 0.1 s = 160/s. Also: one host only (the per-host limit, 4 / 0.1 s = 40/s, is the ceiling), and a
 *   second read of the same manifest served from the download cache (no requests).
 * - manifest rows parsed per second for a 1M-row Parquet file (LAION layout: URL, TEXT, similarity;
 *   100k-row row groups, SNAPPY), generated once into bench/.cache/ with hyparquet-writer: the row reader
 *   alone (hyparquet decoding + our row iteration); the whole source on a resume where `isDone` reports
 *   every key done (rows -> keys -> shard and resume checks, the rest of each row never parsed); and the
 *   whole source turning every row into a pair without image I/O. The same rows as CSV for comparison.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetWriteFile } from 'hyparquet-writer';
import sharp from 'sharp';
import type { Pair } from '../src/core/sample.js';
import { WHOLE } from '../src/core/shard.js';
import { createSource, sourceSchema } from '../src/sources/registry.js';
import type { SourceContext } from '../src/sources/source.js';
import { csvOptionsSchema, delimitedRows } from '../src/sources/csv.js';
import { parquetOptionsSchema, parquetRows } from '../src/sources/parquet.js';
import { startImageServer } from '../tests/http-server/image-server.js';
import { CACHE, round } from './util.js';

const DOWNLOADS = 2000;
const SINGLE_HOST_DOWNLOADS = 400;
const LATENCY_MS = 100;
const HOSTS = 8;
const ROWS = 1_000_000;

export async function benchSources(): Promise<Record<string, unknown>> {
  mkdirSync(CACHE, { recursive: true });
  return {
    downloads: await benchDownloads(),
    manifests: await benchManifests(),
  };
}

function context(baseDir: string, extra: Partial<SourceContext> = {}): SourceContext {
  return { signal: new AbortController().signal, shard: WHOLE, baseDir, ...extra };
}

async function drain(pairs: AsyncIterable<Pair>): Promise<{ n: number; failed: number }> {
  let n = 0;
  let failed = 0;
  for await (const pair of pairs) {
    n++;
    if (pair.fate.kind === 'failed') failed++;
  }
  return { n, failed };
}

async function benchDownloads(): Promise<Record<string, unknown>> {
  const work = join(CACHE, 'sources-downloads');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  // Small distinct JPEGs (~1 KB), served under 2000 names.
  const images: Record<string, Buffer> = {};
  const distinct = await Promise.all(
    Array.from({ length: 16 }, (_, i) => sharp({ create: { width: 32, height: 32, channels: 3, background: { r: i * 15, g: 80, b: 200 - i * 10 } } }).jpeg().toBuffer()),
  );
  for (let i = 0; i < DOWNLOADS; i++) images[`i${i}.jpg`] = distinct[i % distinct.length]!;
  const server = await startImageServer({ hosts: Array.from({ length: HOSTS }, (_, i) => `127.0.0.${i + 1}`), latencyMs: LATENCY_MS, images });
  try {
    const run = async (file: string, urls: string[], cacheDir: string) => {
      writeFileSync(join(work, file), urls.map((url, i) => JSON.stringify({ url, caption: `image ${i}` })).join('\n'));
      const source = createSource(sourceSchema.parse({ type: 'jsonl', path: file, image: 'url', caption: 'caption', download: { cacheDir, allowPrivateNetworks: true } }), 0);
      server.resetStats();
      const started = performance.now();
      const { n, failed } = await drain(source.read(context(work)));
      const seconds = (performance.now() - started) / 1000;
      return { images: n, failed, requests: server.count(), seconds: round(seconds, 2), perSecond: round(n / seconds) };
    };
    const spread = Array.from({ length: DOWNLOADS }, (_, i) => server.url(`/img/i${i}.jpg`, i % HOSTS));
    const manyHosts = await run('many-hosts.jsonl', spread, join(work, 'cache-many'));
    const fromCache = await run('many-hosts.jsonl', spread, join(work, 'cache-many'));
    const oneHost = await run(
      'one-host.jsonl',
      Array.from({ length: SINGLE_HOST_DOWNLOADS }, (_, i) => server.url(`/img/i${i}.jpg`)),
      join(work, 'cache-one'),
    );
    return {
      latencyMs: LATENCY_MS,
      settings: 'defaults: concurrency 16, perHost 4, cache on',
      [`${HOSTS}Hosts`]: { ...manyHosts, ceilingPerSecond: (16 * 1000) / LATENCY_MS },
      oneHost: { ...oneHost, ceilingPerSecond: (4 * 1000) / LATENCY_MS },
      secondReadFromCache: fromCache,
    };
  } finally {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** The 1M-row manifest, generated once (about 10 s). */
function cachedParquet(): { file: string; generateSeconds: number | null } {
  const file = join(CACHE, `manifest-${ROWS}.parquet`);
  if (existsSync(file)) return { file, generateSeconds: null };
  const started = performance.now();
  const url: string[] = new Array(ROWS);
  const text: string[] = new Array(ROWS);
  const similarity: number[] = new Array(ROWS);
  for (let i = 0; i < ROWS; i++) {
    url[i] = `https://img${i % 97}.example.com/images/${String(i).padStart(8, '0')}.jpg`;
    text[i] = `a photo of item ${i} on a wooden table, with ${i % 13} friends`;
    similarity[i] = 0.2 + (i % 1000) / 10_000;
  }
  parquetWriteFile({
    filename: `${file}.tmp`,
    columnData: [
      { name: 'URL', data: url, type: 'STRING' },
      { name: 'TEXT', data: text, type: 'STRING' },
      { name: 'similarity', data: similarity, type: 'DOUBLE' },
    ],
    rowGroupSize: 100_000,
  });
  // Renamed only once complete, so an interrupted generation is not taken for a manifest.
  renameSync(`${file}.tmp`, file);
  return { file, generateSeconds: round((performance.now() - started) / 1000, 1) };
}

async function benchManifests(): Promise<Record<string, unknown>> {
  const { file, generateSeconds } = cachedParquet();
  const entry = { type: 'parquet', path: file, image: 'URL', caption: 'TEXT', extra: ['similarity'] } as const;

  // The row reader alone.
  let started = performance.now();
  let rows = 0;
  for await (const row of parquetRows(parquetOptionsSchema.parse(entry)).rows(file, new AbortController().signal)) {
    if ('unreadable' in row) throw new Error(row.unreadable);
    row.get('URL');
    row.get('TEXT');
    rows++;
  }
  const readerSeconds = (performance.now() - started) / 1000;

  // The whole source: rows -> keys, captions cleaned, meta built, shard and resume checks; every key is
  // reported done, so no image is read and no pair comes out.
  const allDone = async (sourceEntry: Record<string, unknown>) => {
    const source = createSource(sourceSchema.parse(sourceEntry), 0);
    let asked = 0;
    const begun = performance.now();
    const { n } = await drain(
      source.read(
        context(CACHE, {
          isDone: (keys) => {
            asked += keys.length;
            return new Set(keys);
          },
        }),
      ),
    );
    const seconds = (performance.now() - begun) / 1000;
    if (n !== 0 || asked !== ROWS) throw new Error(`expected every row asked and skipped, got ${n} pairs, ${asked} asked`);
    return { rows: asked, seconds: round(seconds, 2), rowsPerSecond: Math.round(asked / seconds) };
  };
  const parquetSource = await allDone(entry);

  // Rows -> pairs without image I/O: the image column names the numeric column, so each row is parsed
  // whole (captions cleaned, meta built) and becomes a failed pair without touching the disk or network.
  const source = createSource(sourceSchema.parse({ ...entry, image: 'similarity' }), 0);
  started = performance.now();
  const converted = await drain(source.read(context(CACHE)));
  const convertSeconds = (performance.now() - started) / 1000;
  if (converted.n !== ROWS || converted.failed !== ROWS) throw new Error(`expected ${ROWS} failed pairs, got ${converted.n} (${converted.failed} failed)`);

  // The same rows as CSV.
  const csvFile = join(CACHE, `manifest-${ROWS}.csv`);
  if (!existsSync(csvFile)) {
    const lines = ['URL,TEXT,similarity'];
    for (let i = 0; i < ROWS; i++) {
      lines.push(`https://img${i % 97}.example.com/images/${String(i).padStart(8, '0')}.jpg,"a photo of item ${i} on a wooden table, with ${i % 13} friends",${0.2 + (i % 1000) / 10_000}`);
    }
    writeFileSync(`${csvFile}.tmp`, `${lines.join('\n')}\n`);
    renameSync(`${csvFile}.tmp`, csvFile);
  }
  const csvEntry = { ...entry, type: 'csv', path: csvFile };
  started = performance.now();
  let csvRows = 0;
  for await (const row of delimitedRows(csvOptionsSchema.parse(csvEntry)).rows(csvFile, new AbortController().signal)) {
    if ('unreadable' in row) throw new Error(row.unreadable);
    row.get('URL');
    row.get('TEXT');
    csvRows++;
  }
  const csvSeconds = (performance.now() - started) / 1000;
  const csvSource = await allDone(csvEntry);

  return {
    rows: ROWS,
    generateSeconds,
    parquetReader: { rows, seconds: round(readerSeconds, 2), rowsPerSecond: Math.round(rows / readerSeconds) },
    parquetSourceSkipAllDone: parquetSource,
    parquetSourceRowsToPairs: { rows: converted.n, seconds: round(convertSeconds, 2), rowsPerSecond: Math.round(converted.n / convertSeconds) },
    csvReader: { rows: csvRows, seconds: round(csvSeconds, 2), rowsPerSecond: Math.round(csvRows / csvSeconds) },
    csvSourceSkipAllDone: csvSource,
  };
}
