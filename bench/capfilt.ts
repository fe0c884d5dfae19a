import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { OnnxCaptioner } from '../src/captioner/onnx-captioner.js';
import { loadItcModel, loadItmModel } from '../src/models/index.js';
import { packageRoot } from '../src/core/package-root.js';
import { cachedShapes, CACHE, round, runChild } from './util.js';

interface ChildResult {
  elapsedMs: number;
  maxRssMb: number;
  summary: { samples: { total: number } };
}

const IMAGES = 300;

/**
 * Issue 4: CapFilt images/s through `vlcurate build` (read, decode, ITC+ITM filter, captioner with K
 * captions, filter of the new captions, select, record, WebDataset export) at K = 1 and K = 5, next to
 * the model-bound rate: the same models called directly on the same images in the same batches (image
 * preprocessing included, nothing else: no tar, no validation, no database, no export).
 */
export async function benchCapfilt(): Promise<Record<string, unknown>> {
  const models = join(packageRoot(), 'models');
  const data = await cachedShapes(1000, 12);
  const shard = join(data, 'webdataset', readdirSync(join(data, 'webdataset')).find((f) => f.endsWith('.tar'))!);
  const truth = readFileSync(join(data, 'ground_truth.jsonl'), 'utf8').trim().split('\n').slice(0, IMAGES).map((l) => JSON.parse(l) as { key: string; web_caption: string });
  const images = truth.map((t) => readFileSync(join(data, 'coco', 'images', `${t.key}.jpg`)));
  const out: Record<string, unknown> = { images: IMAGES };

  for (const k of [1, 5]) {
    const work = join(CACHE, `capfilt-k${k}`);
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const recipe = join(work, 'recipe.yaml');
    const captioner = { type: 'onnx', model: join(models, 'shapes-captioner'), samples: k, strategy: 'nucleus', topP: 0.9, minLength: 3, maxLength: 24, batchSize: 16 };
    const recipeWith = (exports: unknown[]) =>
      stringify({
        run: { db: join(work, 'run.db') },
        sources: [{ type: 'webdataset', paths: shard }],
        filter: { itc: { model: join(models, 'shapes-clip'), threshold: 0.3 }, itm: { model: join(models, 'shapes-itm') }, batchSize: 16 },
        captioner,
        export: exports,
      });
    const wds = { type: 'webdataset', out: join(work, 'wds') };
    writeFileSync(recipe, recipeWith([wds]));
    // The shard holds 1000 samples; time the whole build and scale to per-image rates.
    const pipeline = runChild<ChildResult>('build-child.js', [recipe]);
    const pipelineRate = (pipeline.summary.samples.total * 1000) / pipeline.elapsedMs;
    // The same recipe with a second export: recorded captions and scores are reused, no model runs.
    let addExport: { seconds: number; ratioToFirstBuild: number } | null = null;
    if (k === 5) {
      const again = join(work, 'recipe-more.yaml');
      writeFileSync(again, recipeWith([wds, { type: 'llava', name: 'llava', out: join(work, 'llava') }]));
      const more = runChild<ChildResult>('build-child.js', [again]);
      addExport = { seconds: round(more.elapsedMs / 1000, 2), ratioToFirstBuild: round(more.elapsedMs / pipeline.elapsedMs, 3) };
    }

    const [itc, itm, cap] = await Promise.all([
      loadItcModel(join(models, 'shapes-clip')),
      loadItmModel(join(models, 'shapes-itm')),
      OnnxCaptioner.load(join(models, 'shapes-captioner')),
    ]);
    const started = performance.now();
    for (let i = 0; i < images.length; i += 16) {
      const batch = images.slice(i, i + 16);
      const web = truth.slice(i, i + 16).map((t) => t.web_caption || 'image');
      // Filter the web captions, caption, filter the new captions: the model work CapFilt does per image.
      await Promise.all([itc.encodeImages(batch), itc.encodeTexts(web)]);
      const enc = await itm.encodeImages(batch);
      await itm.scoreIndexed(enc, batch.map((_, j) => j), web);
      const caps = await cap.caption(batch, { k, strategy: 'nucleus', topP: 0.9, minLength: 3, maxLength: 24, keys: truth.slice(i, i + 16).map((t) => t.key) });
      const texts = caps.flatMap((c) => c.map((x) => x.text));
      await itc.encodeTexts(texts);
      await itm.scoreIndexed(enc, caps.flatMap((c, j) => c.map(() => j)), texts);
    }
    const bareRate = (images.length * 1000) / (performance.now() - started);
    await Promise.all([itc.close(), itm.close(), cap.close()]);
    out[`k${k}`] = {
      pipelineImagesPerSecond: round(pipelineRate),
      modelBoundImagesPerSecond: round(bareRate),
      ratio: round(pipelineRate / bareRate, 2),
      peakRssMb: round(pipeline.maxRssMb),
      ...(addExport ? { addExport } : {}),
    };
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
