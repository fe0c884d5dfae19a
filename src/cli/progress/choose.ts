import { ConfigError } from '../../core/errors.js';
import type { ProgressReporter } from './reporter.js';
import { PlainReporter } from './plain.js';
import { JsonReporter } from './json.js';
import { LazyInkReporter } from './ink-loader.js';

export const PROGRESS_MODES = ['auto', 'tty', 'plain', 'json'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export function parseProgressMode(value: string): ProgressMode {
  if ((PROGRESS_MODES as readonly string[]).includes(value)) return value as ProgressMode;
  throw new ConfigError(`--progress: expected one of ${PROGRESS_MODES.join(' | ')}, got "${value}"`);
}

/** The terminal the UI would draw on: stderr, so stdout stays free for data. */
interface Terminal {
  isTTY?: boolean;
}

/**
 * `tty` always; `auto` when stderr is an interactive terminal (not a pipe, a file, or TERM=dumb) outside CI.
 * CI runners that give a pseudo-terminal keep only a log, and ink holds every frame back there (it
 * draws once, at the end), so `auto` under `CI` prints plain lines instead.
 */
export function usesInteractiveUi(mode: ProgressMode, terminal: Terminal = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  if (mode === 'tty') return true;
  return mode === 'auto' && terminal.isTTY === true && env.TERM !== 'dumb' && !inCi(env);
}

/** `CI` (or `CONTINUOUS_INTEGRATION`) set to anything but `0` or `false`, as CI services do. */
function inCi(env: NodeJS.ProcessEnv): boolean {
  return ['CI', 'CONTINUOUS_INTEGRATION'].some((name) => env[name] !== undefined && env[name] !== '0' && env[name] !== 'false');
}

/**
 * The reporter for a `--progress` mode. `json`: one event per line on stdout; `plain`: periodic lines on
 * stderr; `tty`, and `auto` on a terminal: the ink UI on stderr, whose module (ink, React) is imported
 * only then. The ink reporter is returned at once and replays the events it got while ink loaded; await
 * {@link openReporter} instead to start the run with the UI already up.
 */
export function createReporter(mode: ProgressMode): ProgressReporter {
  if (mode === 'json') return new JsonReporter();
  if (usesInteractiveUi(mode)) return new LazyInkReporter();
  return new PlainReporter();
}

/** {@link createReporter}, resolved once the interactive UI (if any) is drawn. */
export async function openReporter(mode: ProgressMode): Promise<ProgressReporter> {
  const reporter = createReporter(mode);
  if (reporter instanceof LazyInkReporter) await reporter.ready;
  return reporter;
}
