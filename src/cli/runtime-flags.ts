/**
 * `--device`, `--threads` and `--workers` of the commands that run ONNX models on one image (`vlcurate
 * score`, `vlcurate caption`): the recipe's `runtime` fields, checked by the same schema with the same
 * expectations, naming the flag (`--threads: expected "auto" or an integer from 1 and up, got "0"`).
 * `auto` resolves as for a model alone on the machine, in one session (`resolveSingleImageRuntime`).
 */
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';

import { sessionOptionsFor, type OnnxSessionOptions } from '../backends/onnx-session.js';
import { ConfigError } from '../core/errors.js';
import { modelRuntimeSchema, resolveSingleImageRuntime, runtimeSchema, type RuntimeSettings } from '../core/runtime-settings.js';

/** The flags as commander gives them (strings). */
export interface RuntimeFlags {
  device?: string;
  threads?: string;
  workers?: string;
}

/** Declare the three flags on `command`. */
export function addRuntimeFlags(command: Command): Command {
  return command
    .option('--device <device>', 'cpu | cuda | cuda:N (default cpu; cuda needs onnxruntime\'s CUDA files, README "Runtime")')
    .option('--threads <n>', 'onnxruntime intra-op threads, or auto (default auto: the cores of this machine, up to 8)')
    .option('--workers <n>', 'sessions of each model, each with its own copy of the weights, or auto (default auto: 1)');
}

/** The flags checked and parsed; flags left out are `auto` (device `cpu`). */
export function runtimeFromFlags(flags: RuntimeFlags): RuntimeSettings {
  const settings: Record<string, unknown> = {};
  for (const field of ['device', 'threads', 'workers'] as const) {
    const raw = flags[field];
    if (raw === undefined) continue;
    const text = raw.trim();
    // Counts arrive as text: a whole number is read as one, anything else is checked as given.
    const value = field !== 'device' && /^\d+$/.test(text) ? Number(text) : text;
    const checked = modelRuntimeSchema.shape[field].safeParse(value);
    if (!checked.success) throw new ConfigError(`--${field}: ${checked.error.issues[0]!.message}, got ${JSON.stringify(raw)}`);
    settings[field] = value;
  }
  return runtimeSchema.parse(settings);
}

/** Session options for a model run by a one-image command with these flags (`cores` injected by tests). */
export function sessionOptionsFromFlags(flags: RuntimeFlags, cores: number = availableParallelism()): OnnxSessionOptions {
  return sessionOptionsFor(resolveSingleImageRuntime(runtimeFromFlags(flags), cores));
}
