import { escapeControlChars } from '../../core/control-chars.js';
import type { PipelineEvent } from '../../core/events.js';
import type { ProgressReporter } from './reporter.js';
import { estimateRemainingMs, formatDuration, formatStageCounts, formatSummary } from './format.js';

const MAX_ERRORS_SHOWN = 10;

/** One line every `everyMs` for logs and CI; the first errors verbatim; a summary at the end. */
export class PlainReporter implements ProgressReporter {
  private lastLine = 0;
  private errorsShown = 0;
  private errorsHidden = 0;
  private resumed = 0;

  private readonly write: (line: string) => void;

  constructor(
    write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
    private readonly everyMs = 2000,
  ) {
    // Messages carry text from inputs (file names, quoted lines): no control character reaches the terminal.
    this.write = (line) => write(escapeControlChars(line));
  }

  onEvent(event: PipelineEvent): void {
    switch (event.type) {
      case 'run-start':
        this.resumed = event.resumed;
        this.write(
          `run ${event.runId}: ${event.stages.join(' -> ')}` +
            (event.total !== null ? `, ${event.total} samples` : '') +
            (event.resumed ? `, resuming (${event.resumed} already done)` : ''),
        );
        break;
      case 'progress': {
        if (event.elapsedMs - this.lastLine < this.everyMs) break;
        this.lastLine = event.elapsedMs;
        const eta = estimateRemainingMs(event.stages, event.total, this.resumed);
        this.write(`[${formatDuration(event.elapsedMs)}] ${event.stages.map((s) => formatStageCounts(s)).join(' | ')}${eta !== null ? ` | ETA ${formatDuration(eta)}` : ''}`);
        break;
      }
      case 'sample-error':
        if (this.errorsShown < MAX_ERRORS_SHOWN) {
          this.errorsShown++;
          this.write(`  ${event.stage}: ${event.key}: ${event.code}: ${event.message}`);
        } else {
          this.errorsHidden++;
        }
        break;
      case 'log':
        this.write(`${event.level === 'warn' ? 'warning: ' : ''}${event.message}`);
        break;
      case 'aborting':
        this.write(`${event.reason} (press Ctrl-C again to quit at once; the run stays resumable)`);
        break;
      case 'llm':
        break;
      case 'run-end':
        if (this.errorsHidden) this.write(`  ... and ${this.errorsHidden} more sample errors (vlcurate inspect RUN.db samples --status failed)`);
        this.write(`${event.aborted ? 'stopped' : 'finished'} in ${formatDuration(event.elapsedMs)}: ${event.stages.map((s) => formatStageCounts(s, 'avg')).join(' | ')}`);
        for (const line of formatSummary(event.summary)) this.write(line);
        break;
    }
  }

  close(): void {}
}
