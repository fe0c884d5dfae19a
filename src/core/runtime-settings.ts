/**
 * Where and how wide each ONNX model of a recipe runs: `device` (`cpu`, `cuda`, `cuda:N`), `threads`
 * (onnxruntime's intra-op threads per session) and `workers` (sessions of the model, each in its own
 * worker thread with its own copy of the weights). The recipe's top-level `runtime` is the default of every
 * model; a model's own `runtime` overrides it field by field.
 *
 * `auto` (the default of `threads` and `workers`) uses the machine, by this rule (`resolveRuntime`):
 * 1. Decoding gets `floor(cores / 8)` cores (none below 8 cores): sharp decodes on libvips' and libuv's
 *    threads next to the models, and a ViT costs 10-50x the decode of its image, so a small share does.
 * 2. The rest (at least 1) is split evenly between the models that run on the CPU at the same time (the
 *    filter's ITC and ITM and an ONNX captioner all work concurrently in a streaming build), the
 *    leftover cores to the first models in recipe order; a model that sets both `threads` and `workers`
 *    takes `threads x workers` cores off the top. Every model gets at least 1 core.
 * 3. Inside its share a model uses one session with all of it up to 8 threads; a larger share becomes
 *    `workers = ceil(share / 8)` sessions of `floor(share / workers)` threads each, since intra-op
 *    scaling flattens past ~8 threads while separate sessions keep scaling. A set `threads`
 *    gives `workers = floor(share / threads)`; a set `workers` gives `threads = floor(share / workers)`.
 * 4. A model on CUDA needs the CPU only to feed the GPU: `auto` there is 1 thread and 1 worker, and it
 *    takes no share.
 * 5. `decode.concurrency: auto` (images decoded at once, each on one of libuv's threads) is the decode
 *    share, at least 2: below 8 cores decoding has no cores of its own and shares the models', and one
 *    image in flight would leave the decoder idle while its result is handed on. (libuv runs 4 threads
 *    unless `UV_THREADPOOL_SIZE` says more, so past 32 cores set that too.)
 *
 * Commands that run one image (`vlcurate score`, `vlcurate caption`) resolve each model alone, as the only
 * model on the machine, and run one session of the rule's threads: more sessions would only copy the
 * weights (`resolveSingleImageRuntime`).
 */
import { z } from 'zod';

/** A device, parsed: the CPU, or CUDA device `id` (as numbered by CUDA, after `CUDA_VISIBLE_DEVICES`). */
export type Device = { type: 'cpu' } | { type: 'cuda'; id: number };

const DEVICE_EXPECTED = 'expected "cpu", "cuda" or "cuda:N" (N a CUDA device number from 0, e.g. "cuda:1")';
const COUNT_EXPECTED = 'expected "auto" or an integer from 1 and up';

const deviceField = z.string({ error: DEVICE_EXPECTED }).regex(/^(cpu|cuda(:(0|[1-9]\d{0,3}))?)$/, { error: DEVICE_EXPECTED });
/** `auto` or a count from 1 (threads, workers, decode.concurrency). */
export const countField = z.union(
  [z.literal('auto'), z.number({ error: COUNT_EXPECTED }).int({ error: COUNT_EXPECTED }).min(1, { error: COUNT_EXPECTED })],
  { error: COUNT_EXPECTED },
);

/** The recipe's top-level `runtime`: every ONNX model's default. */
export const runtimeSchema = z.strictObject({
  /** `cpu` (default), `cuda` (device 0) or `cuda:N`. */
  device: deviceField.default('cpu'),
  /** Intra-op threads per session, or `auto` (default; see the rule above). */
  threads: countField.default('auto'),
  /** Sessions (worker threads) per model, or `auto` (default). */
  workers: countField.default('auto'),
});

/** A model's own `runtime` (filter.itc, filter.itm, captioner): fields it leaves out come from the top level. */
export const modelRuntimeSchema = z.strictObject({
  device: deviceField.optional(),
  threads: countField.optional(),
  workers: countField.optional(),
});

export type RuntimeSettings = z.output<typeof runtimeSchema>;
export type ModelRuntimeSettings = z.output<typeof modelRuntimeSchema>;

/** `cpu`, `cuda`, `cuda:N` (already validated by the schema) as a {@link Device}. */
export function parseDevice(text: string): Device {
  if (text === 'cpu') return { type: 'cpu' };
  const id = text === 'cuda' ? 0 : Number(text.slice('cuda:'.length));
  return { type: 'cuda', id };
}

export function formatDevice(device: Device): string {
  return device.type === 'cpu' ? 'cpu' : `cuda:${device.id}`;
}

/** What one model runs with, every number concrete. */
export interface ResolvedModelRuntime {
  device: string;
  threads: number;
  workers: number;
  /** The fields whose value came from `auto` (the others were set in the recipe). */
  fromAuto: ('threads' | 'workers')[];
}

/** The resolved runtime of every model, and the numbers the `auto` rule started from. */
export interface ResolvedRuntime {
  /** Cores of this machine (`os.availableParallelism()`). */
  cores: number;
  /** Cores left to decoding by the `auto` rule. */
  decodeCores: number;
  /** Images the decode stage decodes at once (`decode.concurrency`, `auto` resolved by rule 5). */
  decodeConcurrency: number;
  /** Per model, by its recipe field (`filter.itc`, `filter.itm`, `captioner`), in the order given. */
  models: Record<string, ResolvedModelRuntime>;
}

/** Threads past which a larger share becomes more sessions rather than wider ones. */
const THREADS_PER_SESSION = 8;

/** Cores the `auto` rule leaves to decoding on a machine with `cores` cores. */
export function decodeCoresFor(cores: number): number {
  return Math.floor(cores / 8);
}

/** Images decoded at once for `decode.concurrency: auto` on a machine with `cores` cores (rule 5). */
export function decodeConcurrencyFor(cores: number): number {
  return Math.max(2, decodeCoresFor(Math.max(1, Math.floor(cores))));
}

/**
 * Resolve every model's runtime: its own settings over the shared ones, `auto` by the rule in this file's
 * header. `models` in recipe order (leftover cores go to the first ones); `cores` is injected for tests;
 * `decodeConcurrency` is the recipe's `decode.concurrency`.
 */
export function resolveRuntime(
  shared: RuntimeSettings,
  models: readonly { name: string; runtime?: ModelRuntimeSettings | undefined }[],
  cores: number,
  decodeConcurrency: 'auto' | number = 'auto',
): ResolvedRuntime {
  const machineCores = Math.max(1, Math.floor(cores));
  const decodeCores = decodeCoresFor(machineCores);
  const merged = models.map(({ name, runtime }) => ({
    name,
    device: parseDevice(runtime?.device ?? shared.device),
    threads: runtime?.threads ?? shared.threads,
    workers: runtime?.workers ?? shared.workers,
  }));
  const onCpu = merged.filter((m) => m.device.type === 'cpu');
  const fixed = onCpu.filter((m) => m.threads !== 'auto' && m.workers !== 'auto');
  const flexible = onCpu.filter((m) => !fixed.includes(m));
  const taken = fixed.reduce((sum, m) => sum + (m.threads as number) * (m.workers as number), 0);
  const pool = Math.max(0, machineCores - decodeCores - taken);
  const shares = new Map(
    flexible.map((m, i) => [m.name, Math.max(1, Math.floor(pool / flexible.length) + (i < pool % flexible.length ? 1 : 0))]),
  );

  const out: Record<string, ResolvedModelRuntime> = {};
  for (const m of merged) {
    const fromAuto: ('threads' | 'workers')[] = [];
    if (m.threads === 'auto') fromAuto.push('threads');
    if (m.workers === 'auto') fromAuto.push('workers');
    let threads: number;
    let workers: number;
    if (m.device.type === 'cuda') {
      threads = m.threads === 'auto' ? 1 : m.threads;
      workers = m.workers === 'auto' ? 1 : m.workers;
    } else {
      const share = shares.get(m.name) ?? 0;
      if (m.threads === 'auto' && m.workers === 'auto') {
        workers = Math.max(1, Math.ceil(share / THREADS_PER_SESSION));
        threads = Math.max(1, Math.floor(share / workers));
      } else if (m.threads === 'auto') {
        workers = m.workers as number;
        threads = Math.max(1, Math.floor(share / workers));
      } else if (m.workers === 'auto') {
        threads = m.threads;
        workers = Math.max(1, Math.floor(share / threads));
      } else {
        threads = m.threads;
        workers = m.workers;
      }
    }
    out[m.name] = { device: formatDevice(m.device), threads, workers, fromAuto };
  }
  return {
    cores: machineCores,
    decodeCores,
    decodeConcurrency: decodeConcurrency === 'auto' ? decodeConcurrencyFor(machineCores) : decodeConcurrency,
    models: out,
  };
}

/**
 * The runtime of a model that a command runs on one image at a time (`vlcurate score`, `caption`): the
 * rule for that model alone on the machine, in one session (a set `workers` is kept as given).
 */
export function resolveSingleImageRuntime(settings: RuntimeSettings, cores: number): ResolvedModelRuntime {
  const alone = resolveRuntime(settings, [{ name: 'model' }], cores).models['model']!;
  return settings.workers === 'auto' ? { ...alone, workers: 1 } : alone;
}
