/**
 * Runs one build in its own process and prints `{elapsedMs, cpuMs, runStartMs, runCpuMs, maxRssMb, summary, stages}` as
 * JSON, so the benchmark measures peak memory of the build alone. `runStartMs` is when the run started
 * (models loaded, stages built): `elapsedMs - runStartMs` is the pipeline's own time, and `runCpuMs` the
 * CPU time the process spent in it.
 */
import { runBuild } from '../src/run/run-build.js';
import { loadRecipe } from '../src/config/recipe.js';
import type { PipelineEvent } from '../src/core/events.js';

const recipePath = process.argv[2];
if (!recipePath) throw new Error('usage: build-child.js RECIPE');
const started = performance.now();
let end: Extract<PipelineEvent, { type: 'run-end' }> | null = null;
let runStartMs: number | null = null;
let runStartCpuMs: number | null = null;
/** CPU milliseconds of this process so far, every thread (main, workers, libuv's pool). */
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const startedCpuMs = cpuMs();
for await (const event of runBuild(loadRecipe(recipePath), { shard: { index: 0, count: 1 }, signal: new AbortController().signal })) {
  if (event.type === 'run-start') {
    runStartMs = performance.now() - started;
    runStartCpuMs = cpuMs();
  }
  if (event.type === 'run-end') end = event;
}
process.stdout.write(
  `${JSON.stringify({
    elapsedMs: performance.now() - started,
    // CPU time of the whole build (recipe load and setup too), every thread.
    cpuMs: cpuMs() - startedCpuMs,
    runStartMs,
    // CPU time of the run itself (after run-start): on a loaded machine much steadier than wall time.
    runCpuMs: runStartCpuMs === null ? null : cpuMs() - runStartCpuMs,
    // resourceUsage().maxRSS is in kilobytes.
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    summary: end?.summary,
    stages: end?.stages,
  })}\n`,
);
