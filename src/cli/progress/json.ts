import { escapeControlChars } from '../../core/control-chars.js';
import type { PipelineEvent } from '../../core/events.js';
import type { ProgressReporter } from './reporter.js';

/** `--progress json`: one JSON event per line on stdout, for scripts and dashboards. */
export class JsonReporter implements ProgressReporter {
  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  onEvent(event: PipelineEvent): void {
    // JSON escapes C0 controls itself; DEL, C1 and bidi controls are escaped too (still valid JSON).
    this.write(escapeControlChars(JSON.stringify(event)));
  }

  close(): void {}
}
