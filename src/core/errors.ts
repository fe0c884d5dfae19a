/**
 * Error kinds. Each has a stable `code`; configuration errors stop a run (exit 2), sample errors are data.
 */
export class VlcurateError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A recipe, flag or model folder is wrong. The message names the field, the value and what was expected. */
export class ConfigError extends VlcurateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('config', message, options);
  }
}

/**
 * Run `work`; a ConfigError it throws is thrown again with the recipe field it concerns in front, so a
 * message from deep inside (a model folder, a tokenizer) still says which part of the recipe to fix.
 */
export async function inField<T>(field: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ConfigError && !err.message.startsWith(`${field}`)) throw new ConfigError(`${field}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * One sample could not be processed. Thrown inside a stage's per-sample work and turned into a recorded
 * failure on that sample; never stops the run.
 */
export class SampleError extends VlcurateError {}

/** Describe any thrown value in one line, for error messages stored with a sample. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
