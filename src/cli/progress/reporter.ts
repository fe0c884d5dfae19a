import type { PipelineEvent } from '../../core/events.js';

/** Consumes the run's event stream and shows it somehow (plain lines, JSON lines, the ink UI). */
export interface ProgressReporter {
  onEvent(event: PipelineEvent): void;
  close(): void;
}
