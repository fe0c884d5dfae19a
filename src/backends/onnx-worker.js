// Worker-thread entry for OnnxSession (src/backends/onnx-session.ts). Plain JavaScript on purpose: Node
// starts it directly with `new Worker(new URL('./onnx-worker.js', import.meta.url))`, both from the
// TypeScript sources (vitest) and from the compiled `dist/src/backends/`, with no loader in between.
// It owns one onnxruntime InferenceSession; `run()` blocks this thread only, never the main one.
//
// Protocol (types in onnx-session.ts):
//   workerData                      { modelPath, options: { executionProvider, intraOpThreads, deviceId } }
//   worker -> main, once            { kind: 'ready', inputs, outputs } | { kind: 'open-failed', reason, message, cuda? }
//   main -> worker                  { kind: 'run', id, feeds: { [name]: { type, dims, data } }, outputs }
//   worker -> main                  { kind: 'result', id, outputs } | { kind: 'run-failed', id, message }
//   main -> worker                  { kind: 'close' }  (the worker releases the session and exits)
//   main -> worker                  { kind: 'resident-set', set, name, tensor }   keep a tensor in set `set`
//   main -> worker                  { kind: 'resident-gather', set, rows }        rows[i] of every tensor of the set (dim 0)
//   main -> worker                  { kind: 'resident-release', set }             drop the set
//   main -> worker                  { kind: 'resident-count', id }  -> { kind: 'resident-count', id, sets }
// A run may name a resident set (`resident`, `residentNames`): those tensors are fed from this thread, so
// values that do not change between runs (a captioner's encoder states) cross the thread boundary once.
// `keep` ({ [output]: input }) stores those outputs in the set under the input's name instead of sending
// them back (a decoder's key/value cache, fed to its next step).
// Tensor buffers move both ways in transfer lists, so no tensor is copied between threads.

import { createRequire } from 'node:module';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

import ort from 'onnxruntime-node';

import { diagnoseCudaProvider } from './onnx-cuda-probe.js';

const require = createRequire(import.meta.url);

/** onnxruntime-node's folder of native libraries, where its install script puts the CUDA provider. */
function nativeDir() {
  return path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
}

function describeValues(metadata) {
  return metadata.map((m) => ({
    name: m.name,
    type: m.isTensor ? m.type : undefined,
    shape: m.isTensor ? [...m.shape] : [],
  }));
}

/** A typed array whose buffer can be moved to the other thread without copying anything else along. */
function ownBuffer(data) {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
  if (whole && !(typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer)) return data;
  return data.slice();
}

async function open() {
  const { modelPath, options } = workerData;
  if (options.executionProvider === 'cuda') {
    // Missing provider files are found before onnxruntime tries (and logs its native error to stderr).
    const cuda = diagnoseCudaProvider(nativeDir());
    if (cuda.missingFiles.length > 0) {
      return { kind: 'open-failed', reason: 'cuda', message: 'the CUDA provider files are not installed', cuda };
    }
  }
  const sessionOptions = {
    executionProviders: options.executionProvider === 'cuda' ? [{ name: 'cuda', deviceId: options.deviceId }] : ['cpu'],
    intraOpNumThreads: options.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    enableCpuMemArena: true,
    enableMemPattern: true,
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  };
  try {
    const session = await ort.InferenceSession.create(modelPath, sessionOptions);
    return { kind: 'ready', session };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (options.executionProvider === 'cuda' && /cuda|cudnn|cublas|provider|shared library|device/i.test(message)) {
      return { kind: 'open-failed', reason: 'cuda', message, cuda: diagnoseCudaProvider(nativeDir()) };
    }
    return { kind: 'open-failed', reason: 'load', message };
  }
}

const opened = await open();
if (opened.kind !== 'ready') {
  parentPort.postMessage(opened);
} else {
  const session = opened.session;
  parentPort.postMessage({
    kind: 'ready',
    inputs: describeValues(session.inputMetadata),
    outputs: describeValues(session.outputMetadata),
  });

  // Messages are handled one after another: runs in arrival order, and `close` only after them.
  let queue = Promise.resolve();
  parentPort.on('message', (msg) => {
    queue = queue.then(() => handle(session, msg));
  });
}

/** Resident tensor sets by id: name -> ort.Tensor. */
const residents = new Map();

/** Rows `rows[i]` of `t` along dim 0, as a new tensor. */
function gatherRows(t, rows) {
  const rest = t.dims.slice(1);
  const size = rest.reduce((a, b) => a * b, 1);
  const out = new t.data.constructor(rows.length * size);
  rows.forEach((r, i) => out.set(t.data.subarray(r * size, (r + 1) * size), i * size));
  return new ort.Tensor(t.type, out, [rows.length, ...rest]);
}

async function handle(session, msg) {
  if (msg.kind === 'close') {
    residents.clear();
    await session.release();
    parentPort.close();
    return;
  }
  if (msg.kind === 'resident-set') {
    if (!residents.has(msg.set)) residents.set(msg.set, new Map());
    residents.get(msg.set).set(msg.name, new ort.Tensor(msg.tensor.type, msg.tensor.data, msg.tensor.dims));
    return;
  }
  if (msg.kind === 'resident-gather') {
    const set = residents.get(msg.set);
    if (set !== undefined) for (const [name, t] of set) set.set(name, gatherRows(t, msg.rows));
    return;
  }
  if (msg.kind === 'resident-release') {
    residents.delete(msg.set);
    return;
  }
  if (msg.kind === 'resident-count') {
    parentPort.postMessage({ kind: 'resident-count', id: msg.id, sets: residents.size });
    return;
  }
  if (msg.kind !== 'run') return;
  try {
    const feeds = {};
    for (const [name, t] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor(t.type, t.data, t.dims);
    if (msg.resident !== undefined) {
      const set = residents.get(msg.resident);
      if (set === undefined) throw new Error(`resident tensor set ${msg.resident} was released`);
      for (const name of msg.residentNames) feeds[name] = set.get(name);
    }
    const results = await session.run(feeds, [...msg.outputs, ...Object.keys(msg.keep ?? {})]);
    for (const [output, input] of Object.entries(msg.keep ?? {})) residents.get(msg.resident).set(input, results[output]);
    const outputs = {};
    const transfer = [];
    for (const name of msg.outputs) {
      const value = results[name];
      const data = ownBuffer(value.data);
      outputs[name] = { type: value.type, dims: [...value.dims], data };
      transfer.push(data.buffer);
    }
    parentPort.postMessage({ kind: 'result', id: msg.id, outputs }, transfer);
  } catch (err) {
    parentPort.postMessage({ kind: 'run-failed', id: msg.id, message: err instanceof Error ? err.message : String(err) });
  }
}
