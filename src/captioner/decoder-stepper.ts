/**
 * Stepping a captioner's decoder with or without a key/value cache (`captioner-graphs.ts` finds the graphs).
 *
 * - `merged`: step 0 feeds zero-length caches `[B, heads, 0, head_dim]` and `use_cache_branch` false;
 *   later steps feed the last token, the cache, and true.
 * - `pair`: step 0 runs the first decoder, later steps the one with past inputs.
 * - `no-cache`: every step re-runs the whole sequence.
 * The decoders may also declare `attention_mask` (ones over the whole sequence), `position_ids` (`[B, T]`),
 * `cache_position` (`[T]`) and `encoder_attention_mask` (ones); they are fed only when declared. All rows
 * of a batch step together with equally long sequences (the prompt is the same for all), so no padding is
 * ever fed. A past input without a matching `present.*` output (the cross-attention caches of seq2seq
 * exports) keeps the value from step 0.
 *
 * Values that do not change between steps stay in the decoder's worker (`OnnxSession.resident`): the
 * encoder states and `encoder_attention_mask` are sent once per batch; the key/value cache stays where
 * the graph that produced it runs next (the `pair` layout's step-0 cache crosses once, to the
 * with-past graph); `select()` reorders them there. Each step sends the new tokens and receives the
 * logits. `release()` drops them; the captioner calls it when a batch ends, however it ends.
 */
import type { OnnxSession, ResidentTensors } from '../backends/onnx-session.js';
import { toFloat32, type TensorData } from '../backends/onnx-tensor.js';
import { emptyFloatTensor, gatherRows, int64Matrix } from '../backends/tensor-rows.js';
import { ConfigError } from '../core/errors.js';
import type { StepModel } from './decoding/step-model.js';

/** The key/value cache a decoder declares. */
export interface CacheSpec {
  /** Declared `past_key_values.*` inputs, in graph order. */
  pastNames: string[];
  /** Distinct layer indices among them. */
  layers: number;
  /** Attention heads and size per head (dims 1 and 3 of the past inputs), when known. */
  heads: number | undefined;
  headDim: number | undefined;
}

export type DecoderGraphs =
  | { layout: 'merged'; merged: OnnxSession }
  | { layout: 'pair'; first: OnnxSession; withPast: OnnxSession }
  | { layout: 'no-cache'; first: OnnxSession };

export const CACHE_INPUT = /^past_key_values\.(\d+)\.(.+)$/;

/** `present.<rest>` for `past_key_values.<rest>`. */
export function presentName(past: string): string {
  return `present.${past.slice('past_key_values.'.length)}`;
}

/** Steps a captioner's decoder graphs, one row per image, keeping the key/value cache between steps. */
export class DecoderStepper implements StepModel {
  /** Current decoder rows. */
  private rows: number;
  /** Tokens of the encoder states. */
  private readonly encoderLength: number;
  /** Per decoder graph, the tensors kept in its worker, one row per current decoder row. */
  private readonly residents = new Map<OnnxSession, ResidentTensors>();
  /** Cached keys and values by past input name, one row per current decoder row. */
  private cache = new Map<string, TensorData>();
  /** Tokens the cache holds (0 before the first step). */
  private seen = 0;

  constructor(
    private readonly graphs: DecoderGraphs,
    private readonly spec: CacheSpec | undefined,
    encoderStates: TensorData,
  ) {
    this.rows = encoderStates.dims[0]!;
    this.encoderLength = encoderStates.dims[1]!;
    const sessions = graphs.layout === 'merged' ? [graphs.merged] : graphs.layout === 'pair' ? [graphs.first, graphs.withPast] : [graphs.first];
    try {
      for (const session of sessions) {
        const set = session.resident();
        this.residents.set(session, set);
        set.set('encoder_hidden_states', encoderStates);
        if (session.input('encoder_attention_mask') !== undefined) {
          set.set('encoder_attention_mask', int64Matrix([this.rows, this.encoderLength], () => 1));
        }
      }
    } catch (err) {
      this.release();
      throw err;
    }
  }

  async next(sequences: readonly (readonly number[])[]): Promise<Float32Array> {
    const rows = sequences.length;
    const total = sequences[0]?.length ?? 0;
    if (rows !== this.rows) throw new RangeError(`Expected ${this.rows} sequences (one per row), got ${rows}`);
    if (sequences.some((s) => s.length !== total)) throw new RangeError('Expected equally long sequences');
    const g = this.graphs;
    const cached = g.layout !== 'no-cache' && this.seen > 0;
    const start = cached ? this.seen : 0;
    const steps = total - start;
    if (steps < 1) throw new RangeError(`Expected new tokens after the ${this.seen} already seen, got sequences of ${total}`);
    const feeds: Record<string, TensorData> = {
      input_ids: int64Matrix([rows, steps], (r, c) => sequences[r]![start + c]!),
      attention_mask: int64Matrix([rows, total], () => 1),
      position_ids: int64Matrix([rows, steps], (_r, c) => start + c),
      cache_position: { type: 'int64', dims: [steps], data: BigInt64Array.from({ length: steps }, (_, c) => BigInt(start + c)) },
    };
    let session: OnnxSession;
    if (g.layout === 'merged') {
      session = g.merged;
      feeds.use_cache_branch = { type: 'bool', dims: [1], data: new Uint8Array([cached ? 1 : 0]) };
    } else if (g.layout === 'pair') {
      session = cached ? g.withPast : g.first;
    } else {
      session = g.first;
    }
    const resident = this.residents.get(session)!;
    const outputs = ['logits'];
    const keep: Record<string, string> = {};
    // The graph of the next step: where a cache this step produces is fed.
    const nextSession = g.layout === 'pair' ? g.withPast : session;
    if (this.spec !== undefined) {
      for (const name of this.spec.pastNames) {
        const present = presentName(name);
        if (session.output(present) !== undefined) {
          if (nextSession === session && session.input(name) !== undefined) keep[present] = name;
          else outputs.push(present);
        }
        if (session.input(name) === undefined) continue;
        if (cached) {
          if (resident.has(name)) continue;
          // A cache that came back to this thread (the pair layout's step 0) moves to the worker, once.
          resident.set(name, this.cache.get(name)!);
          this.cache.delete(name);
        } else {
          const meta = session.input(name)!;
          feeds[name] = emptyFloatTensor(meta.type, [rows, this.spec.heads ?? 1, 0, this.spec.headDim ?? 1]);
        }
      }
    }
    const out = await session.run(feeds, { outputs, resident, keep });
    const logits = out.logits!;
    if (logits.dims.length !== 3 || logits.dims[0] !== rows || logits.dims[1] !== steps) {
      throw new ConfigError(`Expected logits of ${session.path} to have dims [${rows}, ${steps}, vocab], got [${logits.dims.join(', ')}]`);
    }
    if (this.spec !== undefined) {
      for (const name of this.spec.pastNames) {
        const present = out[presentName(name)];
        if (present !== undefined) this.cache.set(name, present);
        else if (!this.cache.has(name) && !resident.has(name)) {
          throw new ConfigError(`ONNX model ${session.path} returned no ${presentName(name)} at the first step, so "${name}" has no value`);
        }
      }
      this.seen = total;
    }
    const vocab = logits.dims[2]!;
    const values = toFloat32(logits, `logits of ${session.path}`);
    if (steps === 1) return values;
    const last = new Float32Array(rows * vocab);
    for (let r = 0; r < rows; r++) last.set(values.subarray((r * steps + steps - 1) * vocab, (r * steps + steps) * vocab), r * vocab);
    return last;
  }

  select(rows: readonly number[]): void {
    this.rows = rows.length;
    for (const set of this.residents.values()) set.gather(rows);
    for (const [name, value] of this.cache) this.cache.set(name, gatherRows(value, rows));
  }

  release(): void {
    for (const set of this.residents.values()) set.release();
  }
}
