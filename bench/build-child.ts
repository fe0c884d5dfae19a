/**
 * Runs one build in its own process and prints `{elapsedMs, maxRssMb, summary, stages}` as JSON, so the
 * benchmark measures peak memory of the build alone.
 */
import { runBuild } from '../src/run/run-build.js';
import { loadRecipe } from '../src/config/recipe.js';
import type { PipelineEvent } from '../src/core/events.js';

const recipePath = process.argv[2];
if (!recipePath) throw new Error('usage: build-child.js RECIPE');
const started = performance.now();
let end: Extract<PipelineEvent, { type: 'run-end' }> | null = null;
for await (const event of runBuild(loadRecipe(recipePath), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
  if (event.type === 'run-end') end = event;
}
process.stdout.write(
  `${JSON.stringify({
    elapsedMs: performance.now() - started,
    // resourceUsage().maxRSS is in kilobytes.
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    summary: end?.summary,
    stages: end?.stages,
  })}\n`,
);
