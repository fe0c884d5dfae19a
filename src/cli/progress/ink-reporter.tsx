/**
 * `--progress tty` (and `auto` on a terminal): the ink UI as a {@link ProgressReporter}. This module
 * imports ink and React; load it only through `ink-loader.ts` (a dynamic import), so plain and JSON runs
 * never pay for them.
 *
 * Ctrl-C: ink is rendered with `exitOnCtrlC: false` and never puts stdin in raw mode, so the terminal
 * still turns Ctrl-C into SIGINT for the process's own handler (the build command aborts gracefully);
 * the `aborting` event then shows that in-flight work is being finished.
 */
import { render, type Instance } from 'ink';
import type { PipelineEvent } from '../../core/events.js';
import type { ProgressReporter } from './reporter.js';
import { ProgressApp } from './ink-app.js';
import { emptyView, reduceView, type ProgressView } from './ink-model.js';

export interface InkReporterOptions {
  /** Where the UI is drawn. Default `process.stderr` (stdout stays free for data). */
  stdout?: NodeJS.WriteStream;
  stdin?: NodeJS.ReadStream;
  /** Least time between two redraws caused by progress, error and LLM events. Default 100 ms. */
  throttleMs?: number;
  /** Write every frame whole instead of redrawing in place (ink's `debug`; for tests). Default false. */
  debug?: boolean;
}

/** Events that are drawn at once; the rest are folded in and drawn at most every `throttleMs`. */
const IMMEDIATE = new Set<PipelineEvent['type']>(['run-start', 'aborting', 'run-end']);

export class InkReporter implements ProgressReporter {
  private view: ProgressView = emptyView();
  private readonly instance: Instance;
  private readonly throttleMs: number;
  private lastDraw = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(options: InkReporterOptions = {}) {
    this.throttleMs = options.throttleMs ?? 100;
    this.instance = render(<ProgressApp view={this.view} />, {
      stdout: options.stdout ?? process.stderr,
      stdin: options.stdin ?? process.stdin,
      exitOnCtrlC: false,
      patchConsole: true,
      debug: options.debug ?? false,
    });
  }

  onEvent(event: PipelineEvent): void {
    if (this.closed) return;
    this.view = reduceView(this.view, event);
    if (IMMEDIATE.has(event.type)) {
      this.draw();
      return;
    }
    const wait = this.lastDraw + this.throttleMs - performance.now();
    if (wait <= 0) this.draw();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.draw(), wait);
      this.timer.unref();
    }
  }

  /** Draw the final frame and leave it on the terminal. */
  close(): void {
    if (this.closed) return;
    this.draw();
    this.closed = true;
    this.instance.unmount();
  }

  private draw(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.lastDraw = performance.now();
    this.instance.rerender(<ProgressApp view={this.view} />);
  }
}
