import type { PipelineEvent } from '../../core/events.js';
import type { ProgressReporter } from './reporter.js';

/** `--progress json`: one JSON event per line on stdout, for scripts and dashboards. */
export class JsonReporter implements ProgressReporter {
  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(`${line}\n`)) {}

  onEvent(event: PipelineEvent): void {
    this.write(JSON.stringify(event));
  }

  close(): void {}
}
