/**
 * ONNX inference sessions that run in worker threads.
 *
 * onnxruntime-node's `run()` is synchronous on the thread that calls it, so each session lives in a
 * `worker_threads` worker (src/backends/onnx-worker.js) and the main thread keeps decoding images and
 * reading files while a batch runs. A session may be a pool of several workers, each holding its own copy
 * of the model; runs go to the least busy worker. Tensors move between threads by transferring their
 * ArrayBuffers, not by copying them.
 *
 * This module and the worker are the only places that touch onnxruntime-node (the worker imports it; the
 * main thread never loads it).
 */
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { ConfigError, VlcurateError } from '../core/errors.js';
import { parseDevice, type ResolvedModelRuntime } from '../core/runtime-settings.js';
import { cudaError, type CudaFailure } from './onnx-cuda-errors.js';
import { convertTensor, elementCount, type TensorData, type ValueInfo } from './onnx-tensor.js';

/** Options for {@link OnnxSession.open}. */
export interface OnnxSessionOptions {
  /** Where to run: `'cpu'` (default) or `'cuda'` (needs onnxruntime's CUDA provider files: README "GPU"). */
  executionProvider?: 'cpu' | 'cuda';
  /**
   * Threads onnxruntime may use inside one operator, per worker. Default 1: throughput comes from several
   * workers (and from overlapping decoding with inference), not from many threads fighting over cores.
   */
  intraOpThreads?: number;
  /** Workers in the pool, each with its own copy of the session. Default 1. */
  workers?: number;
  /** CUDA device index (with `executionProvider: 'cuda'`). Default 0. */
  deviceId?: number;
}

/** Session options for a model's resolved recipe runtime (`core/runtime-settings.ts`). */
export function sessionOptionsFor(runtime: ResolvedModelRuntime): OnnxSessionOptions {
  const device = parseDevice(runtime.device);
  return {
    executionProvider: device.type,
    ...(device.type === 'cuda' ? { deviceId: device.id } : {}),
    intraOpThreads: runtime.threads,
    workers: runtime.workers,
  };
}

/** Options for one {@link OnnxSession.run} call. */
export interface OnnxRunOptions {
  /** Outputs to compute and return. Default: every output the graph declares. */
  outputs?: string[];
  /**
   * Move the feeds' buffers to the worker instead of copying them (default true). A moved buffer is
   * detached: its typed array reads as empty afterwards. Buffers that are shared, or views on part of a
   * larger buffer (a Node `Buffer` from the pool, a slice), are always copied. Pass `false` to keep reusing
   * a preallocated input array.
   */
  transferInputs?: boolean;
  /**
   * Tensors kept in a worker ({@link OnnxSession.resident}) that this run reads: the run goes to that
   * worker, and the set's tensors feed the declared inputs of the same names that `feeds` does not give.
   */
  resident?: ResidentTensors;
  /**
   * Outputs to keep in `resident` instead of returning them, each under the input name given
   * (`{ 'present.0.key': 'past_key_values.0.key' }`): a value the next run feeds never crosses.
   */
  keep?: Record<string, string>;
}

/** Bytes of tensor data that crossed between the main thread and the workers (`OnnxSession.traffic`). */
export interface TensorTraffic {
  /** Runs started. */
  runs: number;
  /** Bytes sent to the workers: run feeds and resident tensors. */
  sentBytes: number;
  /** Bytes of run outputs received. */
  receivedBytes: number;
  /** `sentBytes` by input name. */
  sentByInput: Record<string, number>;
}

interface ResolvedOptions {
  executionProvider: 'cpu' | 'cuda';
  intraOpThreads: number;
  deviceId: number;
}

type WorkerReply =
  | { kind: 'ready'; inputs: ValueInfo[]; outputs: ValueInfo[] }
  | { kind: 'open-failed'; reason: 'load'; message: string }
  | { kind: 'open-failed'; reason: 'cuda'; message: string; cuda: Omit<CudaFailure, 'message'> }
  | { kind: 'result'; id: number; outputs: Record<string, TensorData> }
  | { kind: 'run-failed'; id: number; message: string }
  | { kind: 'resident-count'; id: number; sets: number };

interface Pending {
  resolve: (outputs: Record<string, TensorData>) => void;
  reject: (err: Error) => void;
}

/**
 * The worker entry sits next to this module: src/backends/onnx-worker.js when vitest runs the TypeScript
 * sources, dist/src/backends/onnx-worker.js in the build (tsc copies it there with `allowJs`).
 */
const WORKER_URL = new URL('./onnx-worker.js', import.meta.url);

/** One worker and its in-flight runs. */
class SessionWorker {
  readonly pending = new Map<number, Pending>();
  private readonly counts = new Map<number, (sets: number) => void>();
  private failure: Error | undefined;
  private closing = false;
  private exited = false;
  /** Called once the last run in flight has settled (set while closing). */
  private drained: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly modelPath: string,
  ) {
    worker.on('message', (msg: WorkerReply) => this.onMessage(msg));
    worker.on('error', (err) => this.fail(new VlcurateError('onnx_worker', `ONNX worker for ${modelPath} crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => {
      this.exited = true;
      if (!this.closing) this.fail(new VlcurateError('onnx_worker', `ONNX worker for ${modelPath} exited unexpectedly (code ${code})`));
    });
  }

  /** Start a worker and wait until its session is loaded. */
  static start(modelPath: string, options: ResolvedOptions): Promise<{ worker: SessionWorker; inputs: ValueInfo[]; outputs: ValueInfo[] }> {
    return new Promise((resolve, reject) => {
      let raw: Worker;
      try {
        raw = new Worker(WORKER_URL, { workerData: { modelPath, options } });
      } catch (err) {
        reject(new VlcurateError('onnx_worker', `Could not start the ONNX worker ${WORKER_URL.href}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      const onError = (err: Error): void => {
        cleanup();
        reject(new VlcurateError('onnx_worker', `ONNX worker for ${modelPath} failed to start: ${err.message}`, { cause: err }));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new VlcurateError('onnx_worker', `ONNX worker for ${modelPath} exited during start (code ${code})`));
      };
      const onMessage = (msg: WorkerReply): void => {
        cleanup();
        if (msg.kind === 'ready') {
          const worker = new SessionWorker(raw, modelPath);
          raw.unref();
          resolve({ worker, inputs: msg.inputs, outputs: msg.outputs });
          return;
        }
        void raw.terminate();
        if (msg.kind === 'open-failed' && msg.reason === 'cuda') {
          reject(cudaError({ ...msg.cuda, message: msg.message }, options.deviceId, modelPath));
        } else if (msg.kind === 'open-failed') {
          reject(new ConfigError(`Could not load ONNX model ${modelPath}: ${msg.message}`));
        } else {
          reject(new VlcurateError('onnx_worker', `ONNX worker for ${modelPath} sent ${msg.kind} before it was ready`));
        }
      };
      const cleanup = (): void => {
        raw.off('error', onError);
        raw.off('exit', onExit);
        raw.off('message', onMessage);
      };
      raw.on('error', onError);
      raw.on('exit', onExit);
      raw.on('message', onMessage);
    });
  }

  get busy(): number {
    return this.pending.size;
  }

  run(
    id: number,
    feeds: Record<string, TensorData>,
    outputs: string[],
    transfer: ArrayBuffer[],
    resident: { resident?: number; residentNames?: string[]; keep?: Record<string, string> } = {},
  ): Promise<Record<string, TensorData>> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new VlcurateError('onnx_closed', `ONNX session ${this.modelPath} was closed`));
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      try {
        this.worker.postMessage({ kind: 'run', id, feeds, outputs, ...resident }, transfer);
      } catch (err) {
        this.settle(id);
        reject(err as Error);
      }
    });
  }

  /** Post a resident-set message; the worker handles it after the messages posted before it. */
  post(msg: { kind: 'resident-set' | 'resident-gather' | 'resident-release'; set: number; [key: string]: unknown }): void {
    if (this.failure || this.exited) return;
    this.worker.postMessage(msg);
  }

  /** How many resident sets the worker holds (for tests and leak checks). */
  residentSets(id: number): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve) => {
      this.counts.set(id, resolve);
      this.worker.ref();
      this.worker.postMessage({ kind: 'resident-count', id });
    });
  }

  /** Let the runs in flight finish, then release the session and end the thread. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.pending.size > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ kind: 'close' });
    const timer = setTimeout(() => void this.worker.terminate(), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private settle(id: number): Pending | undefined {
    const entry = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) {
      this.worker.unref();
      this.drained?.();
    }
    return entry;
  }

  private onMessage(msg: WorkerReply): void {
    if (msg.kind === 'result') {
      this.settle(msg.id)?.resolve(msg.outputs);
    } else if (msg.kind === 'resident-count') {
      this.counts.get(msg.id)?.(msg.sets);
      this.counts.delete(msg.id);
      if (this.pending.size === 0 && this.counts.size === 0) this.worker.unref();
    } else if (msg.kind === 'run-failed') {
      this.settle(msg.id)?.reject(new VlcurateError('onnx_run', `ONNX model ${this.modelPath} failed to run: ${msg.message}`));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(err);
  }
}

function resolveOptions(options: OnnxSessionOptions): ResolvedOptions & { workers: number } {
  const { executionProvider = 'cpu', intraOpThreads = 1, workers = 1, deviceId = 0 } = options;
  if (executionProvider !== 'cpu' && executionProvider !== 'cuda') {
    throw new ConfigError(`Expected \`executionProvider\` to be 'cpu' or 'cuda', got ${JSON.stringify(executionProvider)}`);
  }
  for (const [name, value] of [['intraOpThreads', intraOpThreads], ['workers', workers]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new ConfigError(`Expected \`${name}\` to be an integer from 1 and up, got ${JSON.stringify(value)}`);
    }
  }
  if (!Number.isInteger(deviceId) || deviceId < 0) {
    throw new ConfigError(`Expected \`deviceId\` to be an integer from 0 and up, got ${JSON.stringify(deviceId)}`);
  }
  return { executionProvider, intraOpThreads, workers, deviceId };
}

/** A loaded ONNX model, run in one or more worker threads. */
export class OnnxSession {
  /** Inputs the graph declares, in graph order. */
  readonly inputNames: readonly string[];
  /** Outputs the graph declares, in graph order. */
  readonly outputNames: readonly string[];
  private nextId = 0;
  private nextResident = 0;
  private closed = false;
  private readonly counted: TensorTraffic = { runs: 0, sentBytes: 0, receivedBytes: 0, sentByInput: {} };

  private constructor(
    /** Path of the model file. */
    readonly path: string,
    /** Name, element type and shape of each declared input. */
    readonly inputMetadata: readonly ValueInfo[],
    /** Name, element type and shape of each declared output. */
    readonly outputMetadata: readonly ValueInfo[],
    private readonly workers: SessionWorker[],
  ) {
    this.inputNames = inputMetadata.map((m) => m.name);
    this.outputNames = outputMetadata.map((m) => m.name);
  }

  /**
   * Load `modelPath` in `options.workers` worker threads. Throws a {@link ConfigError} when the file is
   * missing or is not a model onnxruntime can load, and when `cuda` is asked for but this install of
   * onnxruntime-node cannot provide it.
   */
  static async open(modelPath: string, options: OnnxSessionOptions = {}): Promise<OnnxSession> {
    const resolved = resolveOptions(options);
    if (!existsSync(fileURLToPath(WORKER_URL))) {
      throw new VlcurateError(
        'onnx_worker',
        `The ONNX worker script ${fileURLToPath(WORKER_URL)} is missing: the build must emit src/backends/onnx-worker.js ` +
          'next to onnx-session.js (tsconfig.build.json needs "allowJs": true)',
      );
    }
    try {
      const info = await stat(modelPath);
      if (!info.isFile()) throw new ConfigError(`ONNX model path is not a file: ${modelPath}`);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`ONNX model file not found: ${modelPath}`, { cause: err });
    }
    const started = await Promise.allSettled(
      Array.from({ length: resolved.workers }, () => SessionWorker.start(modelPath, resolved)),
    );
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    const ok = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    if (failed) {
      await Promise.all(ok.map((s) => s.worker.close()));
      throw failed.reason;
    }
    const first = ok[0]!;
    return new OnnxSession(modelPath, first.inputs, first.outputs, ok.map((s) => s.worker));
  }

  /** Number of worker threads (each with its own copy of the session). */
  get workerCount(): number {
    return this.workers.length;
  }

  /** Metadata of a declared input, or undefined. */
  input(name: string): ValueInfo | undefined {
    return this.inputMetadata.find((m) => m.name === name);
  }

  /** Metadata of a declared output, or undefined. */
  output(name: string): ValueInfo | undefined {
    return this.outputMetadata.find((m) => m.name === name);
  }

  /**
   * Run the graph. Only the inputs the graph declares are fed; other entries in `feeds` are ignored.
   * A feed whose element type differs from the declared one is converted when that is the usual
   * conversion (float32 -> float16 for fp16 graphs, int64 <-> int32, float32 <-> float64).
   * Throws a {@link ConfigError} naming the model file when a declared input is missing, has the wrong
   * rank, fixed dims or type, or when a requested output is not in the graph.
   */
  async run(feeds: Record<string, TensorData>, options: OnnxRunOptions = {}): Promise<Record<string, TensorData>> {
    if (this.closed) throw new VlcurateError('onnx_closed', `ONNX session ${this.path} was closed`);
    const outputs = this.checkOutputs(options.outputs);
    const keep = options.keep ?? {};
    this.checkOutputs(Object.keys(keep));
    const resident = options.resident;
    if (Object.keys(keep).length > 0 && resident === undefined) {
      throw new VlcurateError('onnx_run', `Outputs of ${this.path} can be kept only in a resident tensor set`);
    }
    if (resident !== undefined && (resident.session !== this || resident.released)) {
      throw new VlcurateError('onnx_run', `A resident tensor set of ${resident.session.path} was ${resident.released ? 'released' : 'given to another session'}`);
    }
    const declared = this.prepareFeeds(feeds, resident);
    const transferInputs = options.transferInputs ?? true;
    const transfer = new Set<ArrayBuffer>();
    const sendable: Record<string, TensorData> = {};
    for (const [name, t] of Object.entries(declared)) {
      const buf = t.data.buffer;
      const whole = t.data.byteOffset === 0 && t.data.byteLength === buf.byteLength;
      if (transferInputs && whole && buf instanceof ArrayBuffer && !transfer.has(buf)) {
        transfer.add(buf);
        sendable[name] = t;
      } else {
        // Copy just this tensor's values (a structured clone would copy the whole underlying buffer of a
        // view) and move the copy.
        const copy = { ...t, data: t.data.slice() } as TensorData;
        transfer.add(copy.data.buffer as ArrayBuffer);
        sendable[name] = copy;
      }
    }
    const residentNames = resident === undefined ? [] : this.inputNames.filter((n) => feeds[n] === undefined && resident.has(n));
    for (const name of residentNames) delete sendable[name];
    const worker = resident?.worker ?? this.leastBusy();
    this.counted.runs++;
    for (const [name, t] of Object.entries(sendable)) this.countSent(name, t.data.byteLength);
    for (const input of Object.values(keep)) resident!.keepName(input);
    const message = resident === undefined ? {} : { resident: resident.id, residentNames, keep };
    const result = await worker.run(this.nextId++, sendable, outputs, [...transfer], message);
    for (const t of Object.values(result)) this.counted.receivedBytes += t.data.byteLength;
    return result;
  }

  /**
   * A set of tensors kept in one of this session's workers, for runs that feed the same large values again
   * and again (a captioner's encoder states at every decoding step). Release it when done.
   */
  resident(): ResidentTensors {
    if (this.closed) throw new VlcurateError('onnx_closed', `ONNX session ${this.path} was closed`);
    return new ResidentTensors(this, this.leastBusy(), this.nextResident++, (name, bytes) => this.countSent(name, bytes));
  }

  /** Tensor bytes moved between this thread and the workers so far. */
  get traffic(): TensorTraffic {
    return { ...this.counted, sentByInput: { ...this.counted.sentByInput } };
  }

  private countSent(name: string, bytes: number): void {
    this.counted.sentBytes += bytes;
    this.counted.sentByInput[name] = (this.counted.sentByInput[name] ?? 0) + bytes;
  }

  /** Resident sets the workers hold now, summed (0 once every set is released). */
  async residentSets(): Promise<number> {
    const counts = await Promise.all(this.workers.map((w) => w.residentSets(this.nextId++)));
    return counts.reduce((a, b) => a + b, 0);
  }

  private leastBusy(): SessionWorker {
    return this.workers.reduce((best, w) => (w.busy < best.busy ? w : best));
  }

  /** Stop the workers and release the sessions, after the runs already in flight have finished. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
  }

  private describeInputs(): string {
    return this.inputMetadata.map((m) => `${m.name} (${m.type ?? 'non-tensor'} [${m.shape.join(', ')}])`).join(', ');
  }

  private checkOutputs(requested: string[] | undefined): string[] {
    if (requested === undefined) return [...this.outputNames];
    const unique = [...new Set(requested)];
    const missing = unique.filter((name) => !this.outputNames.includes(name));
    if (missing.length > 0) {
      throw new ConfigError(
        `ONNX model ${this.path} has no output${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}; ` +
          `it declares outputs: ${this.outputNames.join(', ')}`,
      );
    }
    return unique;
  }

  private prepareFeeds(feeds: Record<string, TensorData>, resident: ResidentTensors | undefined): Record<string, TensorData> {
    const out: Record<string, TensorData> = {};
    const given = Object.keys(feeds);
    for (const meta of this.inputMetadata) {
      if (feeds[meta.name] === undefined && resident?.has(meta.name)) {
        // Checked against the graph when it was set; its rows follow gather().
        continue;
      }
      const t = feeds[meta.name];
      if (t === undefined) {
        throw new ConfigError(
          `ONNX model ${this.path} needs input "${meta.name}", which was not given ` +
            `(it declares inputs: ${this.describeInputs()}; given: ${given.join(', ') || 'none'})`,
        );
      }
      if (t.data.length !== elementCount(t.dims)) {
        throw new ConfigError(
          `Input "${meta.name}" of ONNX model ${this.path} has dims [${t.dims.join(', ')}] but ${t.data.length} values`,
        );
      }
      if (meta.shape.length > 0) {
        const badDim = meta.shape.findIndex((d, i) => typeof d === 'number' && d !== t.dims[i]);
        if (meta.shape.length !== t.dims.length || badDim >= 0) {
          throw new ConfigError(
            `Input "${meta.name}" of ONNX model ${this.path} must have shape [${meta.shape.join(', ')}], ` +
              `got dims [${t.dims.join(', ')}]`,
          );
        }
      }
      let value: TensorData = t;
      if (meta.type !== undefined && meta.type !== t.type) {
        const converted = convertTensor(t, meta.type);
        if (converted === undefined) {
          throw new ConfigError(`Input "${meta.name}" of ONNX model ${this.path} must be ${meta.type}, got ${t.type}`);
        }
        value = converted;
      }
      out[meta.name] = value;
    }
    return out;
  }
}

/**
 * Tensors kept in one worker of a session ({@link OnnxSession.resident}): each is sent once, then runs that
 * name the set feed it from the worker's side. Messages to the worker are handled in the order they are
 * posted, so `set`, `gather` and `release` take effect before any run started after them.
 */
export class ResidentTensors {
  private readonly shapes = new Map<string, TensorData['type']>();
  private releasedFlag = false;

  /** @internal made by OnnxSession.resident() */
  constructor(
    readonly session: OnnxSession,
    /** @internal */ readonly worker: SessionWorker,
    /** @internal */ readonly id: number,
    private readonly countSent: (name: string, bytes: number) => void,
  ) {}

  get released(): boolean {
    return this.releasedFlag;
  }

  /** Whether the set holds `name`. */
  has(name: string): boolean {
    return this.shapes.has(name);
  }

  /**
   * Keep a copy of `t` as `name` (converted to the type the graph declares for that input, as `run` does).
   * Throws a ConfigError when the graph declares no such input or `t` does not fit it.
   */
  set(name: string, t: TensorData): void {
    if (this.releasedFlag) throw new VlcurateError('onnx_run', `A resident tensor set of ${this.session.path} was released`);
    const meta = this.session.input(name);
    if (meta === undefined) throw new ConfigError(`ONNX model ${this.session.path} declares no input "${name}" to keep resident`);
    let value = t;
    if (meta.type !== undefined && meta.type !== t.type) {
      const converted = convertTensor(t, meta.type);
      if (converted === undefined) throw new ConfigError(`Input "${name}" of ONNX model ${this.session.path} must be ${meta.type}, got ${t.type}`);
      value = converted;
    }
    this.shapes.set(name, value.type);
    this.countSent(name, value.data.byteLength);
    // Structured clone: the worker gets its own copy; the caller keeps `t`.
    this.worker.post({ kind: 'resident-set', set: this.id, name, tensor: value });
  }

  /** @internal a run keeps an output under `name` (OnnxRunOptions.keep). */
  keepName(name: string): void {
    this.shapes.set(name, this.session.input(name)?.type ?? 'float32');
  }

  /** Make row i of every tensor of the set its current row `rows[i]` (dim 0), in the worker. */
  gather(rows: readonly number[]): void {
    if (this.releasedFlag) return;
    this.worker.post({ kind: 'resident-gather', set: this.id, rows: [...rows] });
  }

  /** Drop the set in the worker (idempotent). */
  release(): void {
    if (this.releasedFlag) return;
    this.releasedFlag = true;
    this.worker.post({ kind: 'resident-release', set: this.id });
  }
}
