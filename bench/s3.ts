/// <reference path="../tests/s3-server/s3rver.d.ts" />
/**
 * Issue 16: object storage next to the local disk, on the same machine. A local S3-compatible server
 * (s3rver, the tests' server; it keeps objects as files on this same disk and is one single-threaded
 * Node process, so its figures are a floor for the client's overhead, not what AWS or MinIO give):
 *
 * - `objects`: 8 objects of 32 MiB written (`put`: one multipart upload each, 16 MiB parts) and read back
 *   whole, through the store interface (`core/object-store.ts`), local folder vs s3://;
 * - `export`: a WebDataset export of 4,000 samples (~28 KB JPEGs, 200 per shard) to a local folder vs to
 *   s3:// (staged locally, uploaded, recorded: `export/remote-shards.ts`), best of two;
 * - `shardRead`: the exported shards read back object by object.
 *
 * MB/s are 10^6 bytes per second of wall time.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ObjectStore } from '../src/core/object-store.js';
import { collect } from '../src/core/object-store.js';
import { OPEN } from '../src/core/sample.js';
import type { Stage } from '../src/core/stage.js';
import type { ExportableSample } from '../src/export/webdataset-sample.js';
import { createExport, exportSchema } from '../src/export/registry.js';
import { S3Store } from '../src/backends/s3-store.js';
import { LocalStore } from '../src/storage/local-store.js';
import { storageSchema } from '../src/storage/storage-settings.js';
import { openDatabase } from '../src/store/database.js';
import { RunStore } from '../src/store/run-store.js';
import { startLocalS3 } from '../tests/s3-server/s3-server.js';
import { CACHE, round } from './util.js';

const MIB = 1024 * 1024;
const OBJECTS = 8;
const OBJECT_BYTES = 32 * MIB;
const SAMPLES = 4000;
const DISTINCT_IMAGES = 64;

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - started) / 1000, value };
}

async function makeSamples(): Promise<ExportableSample[]> {
  const images: Buffer[] = [];
  for (let i = 0; i < DISTINCT_IMAGES; i++) {
    images.push(
      await sharp({ create: { width: 160, height: 120, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
        .jpeg({ quality: 95 })
        .toBuffer(),
    );
  }
  return Array.from({ length: SAMPLES }, (_, i) => {
    const bytes = images[i % DISTINCT_IMAGES]!;
    const key = `s${String(i).padStart(6, '0')}`;
    return {
      key,
      source: 'bench',
      imageRef: `file:/bench/${key}.jpg`,
      imageBytes: bytes,
      captions: [{ text: `a noisy picture number ${i}`, origin: 'web' as const, issue: null, usable: true }],
      boxes: [],
      meta: {},
      fate: OPEN,
      image: { width: 160, height: 120, format: 'jpeg', byteLength: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), orientation: 1 },
    } as ExportableSample;
  });
}

async function drain(stage: Stage<ExportableSample, ExportableSample>, samples: readonly ExportableSample[]): Promise<void> {
  async function* input() {
    yield* samples;
  }
  for await (const _ of stage.run(input(), { signal: new AbortController().signal, emit: () => undefined })) {
    // pull everything through
  }
}

/** Put and read back OBJECTS objects of OBJECT_BYTES through one store. */
async function objectRates(store: ObjectStore, prefix: string): Promise<{ putMbPerSecond: number; getMbPerSecond: number }> {
  const body = Buffer.alloc(OBJECT_BYTES);
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i);
  const put = await timed(async () => {
    // A stream, as an export uploads a staged file: multipart above the part size.
    for (let i = 0; i < OBJECTS; i++) await store.put(`${prefix}/object-${i}`, Readable.from([body]));
  });
  const get = await timed(async () => {
    let bytes = 0;
    for (let i = 0; i < OBJECTS; i++) bytes += (await collect(await store.read(`${prefix}/object-${i}`))).length;
    return bytes;
  });
  if (get.value !== OBJECTS * OBJECT_BYTES) throw new Error(`read ${get.value} bytes, wrote ${OBJECTS * OBJECT_BYTES}`);
  const mb = (OBJECTS * OBJECT_BYTES) / 1e6;
  return { putMbPerSecond: round(mb / put.seconds, 1), getMbPerSecond: round(mb / get.seconds, 1) };
}

/** Every object under `prefix` read whole; returns MB/s and the bytes. */
async function readAll(store: ObjectStore, prefix: string): Promise<{ mbPerSecond: number; mb: number }> {
  const { seconds, value } = await timed(async () => {
    let bytes = 0;
    const keys: string[] = [];
    for await (const object of store.list(prefix)) if (object.key.endsWith('.tar')) keys.push(object.key);
    for (const key of keys) bytes += (await collect(await store.read(key))).length;
    return bytes;
  });
  return { mbPerSecond: round(value / 1e6 / seconds, 1), mb: round(value / 1e6, 1) };
}

export async function benchS3(): Promise<Record<string, unknown>> {
  const work = join(CACHE, 's3');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const s3 = await startLocalS3(['vlc-bench']);
  const saved = { ...process.env };
  Object.assign(process.env, s3.env);
  const db = openDatabase(join(work, 'run.db'));
  try {
    const local = new LocalStore(join(work, 'objects'));
    const remote = new S3Store('vlc-bench', { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, profile: undefined, partSize: 16 * MIB });
    const objects = { local: await objectRates(local, 'raw'), s3: await objectRates(remote, 'raw') };

    const samples = await makeSamples();
    const store = new RunStore(db);
    const runId = store.startRun('{}', 'bench', '0/1');
    for (let i = 0; i < samples.length; i += 1000) store.writeSamples(runId, samples.slice(i, i + 1000));
    const storage = storageSchema.parse({ s3: { endpoint: s3.endpoint } });
    const exportTo = async (name: string, out: string) => {
      const options = exportSchema.parse({ type: 'webdataset', name, out, maxCount: 200 });
      const stage = createExport<ExportableSample>(options, { store, baseDir: work, shard: { index: 0, count: 1 }, storage });
      return (await timed(() => drain(stage, samples))).seconds;
    };
    // Each run its own export name and place (a second run of one export would find every sample exported).
    const localExport = Math.min(await exportTo('local1', join(work, 'wds-1')), await exportTo('local2', join(work, 'wds-2')));
    const s3Export = Math.min(await exportTo('s3a', 's3://vlc-bench/wds-1'), await exportTo('s3b', 's3://vlc-bench/wds-2'));
    const exportedMb = (await readAll(new LocalStore(work), 'wds-1/')).mb;
    const exportRate = (seconds: number) => ({ seconds: round(seconds, 2), samplesPerSecond: round(SAMPLES / seconds), mbPerSecond: round(exportedMb / seconds, 1) });
    const shardRead = { local: await readAll(new LocalStore(work), 'wds-1/'), s3: await readAll(remote, 'wds-1/') };
    return {
      server: 's3rver on 127.0.0.1 (objects on this disk)',
      objects: { count: OBJECTS, mib: OBJECT_BYTES / MIB, ...objects },
      export: { samples: SAMPLES, mb: exportedMb, local: exportRate(localExport), s3: exportRate(s3Export), s3ToLocalRatio: round(localExport / s3Export, 3) },
      shardRead,
    };
  } finally {
    db.close();
    process.env = saved;
    await s3.close();
    rmSync(work, { recursive: true, force: true });
  }
}
