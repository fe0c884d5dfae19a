/**
 * The `auto` rule of `core/runtime-settings.ts`, for several machines (the core count is injected) and
 * model combinations; explicit settings, inheritance from the shared default and CUDA models.
 */
import { describe, expect, it } from 'vitest';
import { decodeConcurrencyFor, decodeCoresFor, parseDevice, resolveRuntime, resolveSingleImageRuntime, runtimeSchema } from '../../src/core/runtime-settings.js';

const AUTO = runtimeSchema.parse({});
const models = (...names: string[]) => names.map((name) => ({ name }));
/** `threads x workers` per model, in order. */
const shape = (r: ReturnType<typeof resolveRuntime>) => Object.values(r.models).map((m) => `${m.threads}x${m.workers}`);

describe('resolving auto runtime settings', () => {
  it('leaves decoding floor(cores / 8) cores: none below 8 cores', () => {
    expect([1, 2, 4, 7, 8, 16, 32, 64, 96].map(decodeCoresFor)).toEqual([0, 0, 0, 0, 1, 2, 4, 8, 12]);
  });

  it('decode.concurrency auto is the decode share, at least 2; a set one is kept', () => {
    expect([1, 2, 4, 8, 16, 32, 64, 96].map(decodeConcurrencyFor)).toEqual([2, 2, 2, 2, 2, 4, 8, 12]);
    expect(resolveRuntime(AUTO, models('filter.itc'), 48).decodeConcurrency).toBe(6);
    expect(resolveRuntime(AUTO, models('filter.itc'), 48, 3).decodeConcurrency).toBe(3);
  });

  it('a one-image command runs one session of the rule\'s threads; a set workers is kept', () => {
    const one = (settings: Record<string, unknown>, cores: number) => {
      const r = resolveSingleImageRuntime(runtimeSchema.parse(settings), cores);
      return `${r.threads}x${r.workers}`;
    };
    expect([2, 8, 16, 64].map((cores) => one({}, cores))).toEqual(['2x1', '7x1', '7x1', '8x1']);
    expect(one({ threads: 3 }, 64)).toBe('3x1');
    expect(one({ workers: 2 }, 16)).toBe('7x2');
    expect(one({ threads: 2, workers: 3 }, 2)).toBe('2x3');
    expect(resolveSingleImageRuntime(runtimeSchema.parse({ device: 'cuda:1' }), 64)).toMatchObject({ device: 'cuda:1', threads: 1, workers: 1 });
  });

  it('one model gets every core not left to decoding, in sessions of at most 8 threads', () => {
    const cases: [number, string][] = [
      [1, '1x1'],
      [2, '2x1'],
      [4, '4x1'],
      [8, '7x1'], // 1 core decodes
      [16, '7x2'], // 14 cores: 2 sessions of 7 threads
      [32, '7x4'], // 28 cores
      [64, '8x7'], // 56 cores
    ];
    for (const [cores, expected] of cases) {
      const r = resolveRuntime(AUTO, models('filter.itc'), cores);
      expect(shape(r), `${cores} cores`).toEqual([expected]);
      expect(r.cores).toBe(cores);
      expect(r.models['filter.itc']!.fromAuto).toEqual(['threads', 'workers']);
      expect(r.models['filter.itc']!.device).toBe('cpu');
    }
  });

  it('models that run together split the cores evenly, the leftover to the first ones, never below 1', () => {
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm'), 2))).toEqual(['1x1', '1x1']);
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm'), 8))).toEqual(['4x1', '3x1']); // 7 cores
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm', 'captioner'), 16))).toEqual(['5x1', '5x1', '4x1']); // 14
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm', 'captioner'), 2))).toEqual(['1x1', '1x1', '1x1']);
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm', 'captioner'), 64))).toEqual(['6x3', '6x3', '6x3']); // 56: 19, 19, 18 cores, sessions of floor(19 / 3) threads
    expect(shape(resolveRuntime(AUTO, models('filter.itc', 'filter.itm'), 1))).toEqual(['1x1', '1x1']);
  });

  it('a model with threads and workers set takes threads x workers off the top; the others share the rest', () => {
    const r = resolveRuntime(AUTO, [{ name: 'filter.itc', runtime: { threads: 2, workers: 2 } }, { name: 'filter.itm' }], 16);
    expect(r.models['filter.itc']).toEqual({ device: 'cpu', threads: 2, workers: 2, fromAuto: [] });
    expect(r.models['filter.itm']).toEqual({ device: 'cpu', threads: 5, workers: 2, fromAuto: ['threads', 'workers'] }); // 16 - 2 - 4 = 10
  });

  it('a set threads gives workers from the share, a set workers gives threads', () => {
    const r = resolveRuntime(AUTO, [{ name: 'a', runtime: { threads: 3 } }, { name: 'b', runtime: { workers: 4 } }], 32);
    // 28 cores, 14 each: 3-thread sessions x 4; 4 sessions of 3 threads.
    expect(r.models['a']).toEqual({ device: 'cpu', threads: 3, workers: 4, fromAuto: ['workers'] });
    expect(r.models['b']).toEqual({ device: 'cpu', threads: 3, workers: 4, fromAuto: ['threads'] });
  });

  it('a model inherits the shared settings field by field', () => {
    const shared = runtimeSchema.parse({ threads: 3 });
    const r = resolveRuntime(shared, [{ name: 'filter.itc', runtime: { workers: 2 } }, { name: 'filter.itm' }], 4);
    expect(r.models['filter.itc']).toEqual({ device: 'cpu', threads: 3, workers: 2, fromAuto: [] });
    expect(r.models['filter.itm']).toEqual({ device: 'cpu', threads: 3, workers: 1, fromAuto: ['workers'] }); // 4 - 6 < 0: share 1
  });

  it('a CUDA model gets 1 thread and 1 worker from auto and leaves the CPU to the others', () => {
    const r = resolveRuntime(AUTO, [{ name: 'captioner', runtime: { device: 'cuda:1' } }, { name: 'filter.itc' }], 8);
    expect(r.models['captioner']).toEqual({ device: 'cuda:1', threads: 1, workers: 1, fromAuto: ['threads', 'workers'] });
    expect(r.models['filter.itc']).toMatchObject({ device: 'cpu', threads: 7, workers: 1 });
    const shared = runtimeSchema.parse({ device: 'cuda' });
    expect(resolveRuntime(shared, models('filter.itm'), 8).models['filter.itm']!.device).toBe('cuda:0');
  });

  it('parses devices', () => {
    expect(parseDevice('cpu')).toEqual({ type: 'cpu' });
    expect(parseDevice('cuda')).toEqual({ type: 'cuda', id: 0 });
    expect(parseDevice('cuda:3')).toEqual({ type: 'cuda', id: 3 });
  });
});
