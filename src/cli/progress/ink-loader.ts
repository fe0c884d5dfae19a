/**
 * Loads the ink UI on demand: `ink-reporter.tsx` (and with it ink and React) is imported dynamically,
 * only when an interactive run asks for it. This file imports neither.
 */
import type { PipelineEvent } from '../../core/events.js';
import type { ProgressReporter } from './reporter.js';
import type { InkReporterOptions } from './ink-reporter.js';
import { PlainReporter } from './plain.js';

/** Import ink and start the UI. Rejects when ink cannot be loaded. */
export async function loadInkReporter(options: InkReporterOptions = {}): Promise<ProgressReporter> {
  const { InkReporter } = await import('./ink-reporter.js');
  return new InkReporter(options);
}

/**
 * A reporter usable at once while ink loads: events are kept until the UI is up, then replayed. If ink
 * cannot be loaded the plain reporter takes over (with a warning), so a run never fails for its UI.
 * `close()` before the UI is up draws the final frame as soon as it is.
 */
export class LazyInkReporter implements ProgressReporter {
  private target: ProgressReporter | null = null;
  private pending: PipelineEvent[] = [];
  private closed = false;
  /** Settles when the UI (or the plain fallback) is up. */
  readonly ready: Promise<void>;

  constructor(
    options: InkReporterOptions = {},
    load: (options: InkReporterOptions) => Promise<ProgressReporter> = loadInkReporter,
    fallback: () => ProgressReporter = () => new PlainReporter(),
  ) {
    this.ready = load(options).then(
      (reporter) => this.attach(reporter),
      (err: unknown) => {
        const plain = fallback();
        plain.onEvent({ type: 'log', level: 'warn', message: `interactive progress unavailable (${(err as Error).message}); using plain lines` });
        this.attach(plain);
      },
    );
  }

  onEvent(event: PipelineEvent): void {
    if (this.target) this.target.onEvent(event);
    else this.pending.push(event);
  }

  close(): void {
    this.closed = true;
    this.target?.close();
  }

  private attach(reporter: ProgressReporter): void {
    for (const event of this.pending) reporter.onEvent(event);
    this.pending = [];
    this.target = reporter;
    if (this.closed) reporter.close();
  }
}
