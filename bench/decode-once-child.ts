/**
 * One CapFilt build (ITC + ITM filter, ONNX captioner, the filter again on the new captions; the demo
 * models) in its own process, printing `{elapsedMs, cpuMs, maxRssMb, samples}` as JSON. With `bytes` as
 * its second argument the decode stage prepares no pixels (the scorer and captioner are given no
 * preparers), so every model decodes the bytes itself, as before issue 15: the "before" of
 * `bench/decode-once.ts`. Usage: decode-once-child.js RECIPE [bytes]
 */
import { onnxCaptionerType } from '../src/captioner/onnx-captioner.js';
import { loadRecipe } from '../src/config/recipe.js';
import type { PipelineEvent } from '../src/core/events.js';
import { CaptionScorer } from '../src/filter/caption-scorer.js';
import { runBuild } from '../src/run/run-build.js';

const [recipePath, mode] = process.argv.slice(2);
if (!recipePath) throw new Error('usage: decode-once-child.js RECIPE [bytes]');
if (mode === 'bytes') {
  Object.defineProperty(CaptionScorer.prototype, 'preparers', { get: () => [] });
  const load = onnxCaptionerType.load.bind(onnxCaptionerType);
  onnxCaptionerType.load = async (options, ctx) => {
    const { preparer: _none, ...loaded } = await load(options, ctx);
    return loaded;
  };
}
const started = performance.now();
const cpu = process.cpuUsage();
let end: Extract<PipelineEvent, { type: 'run-end' }> | null = null;
for await (const event of runBuild(loadRecipe(recipePath), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
  if (event.type === 'run-end') end = event;
}
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${JSON.stringify({
    elapsedMs: performance.now() - started,
    cpuMs: (used.user + used.system) / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    samples: end?.summary.samples,
  })}\n`,
);
