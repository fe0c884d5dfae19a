import { ConfigError } from '../../core/errors.js';
import type { ProgressReporter } from './reporter.js';
import { PlainReporter } from './plain.js';
import { JsonReporter } from './json.js';

export const PROGRESS_MODES = ['auto', 'tty', 'plain', 'json'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export function parseProgressMode(value: string): ProgressMode {
  if ((PROGRESS_MODES as readonly string[]).includes(value)) return value as ProgressMode;
  throw new ConfigError(`--progress: expected one of ${PROGRESS_MODES.join(' | ')}, got "${value}"`);
}

/** `auto` and `tty` use plain lines until the interactive UI lands; both consume the same event stream. */
export function createReporter(mode: ProgressMode): ProgressReporter {
  if (mode === 'json') return new JsonReporter();
  return new PlainReporter();
}
