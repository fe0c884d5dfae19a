/** Text pieces of the interactive progress UI (pure; the layout is in `ink-app.tsx`). */
import type { LlmCounters, StageCounts } from '../../core/events.js';

/** 1234567 -> `1,234,567`. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Compact counts for tight cells: 950, 12.3k, 4.56M. */
export function formatCompact(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 2 : 1)}k`;
  if (n < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)}M`;
  return `${(n / 1e9).toFixed(2)}G`;
}

/** A rate cell: `0.52`, `12.3`, `1,234`. */
export function formatRateCell(perSecond: number): string {
  if (perSecond <= 0) return '–';
  if (perSecond >= 100) return formatCount(perSecond);
  if (perSecond >= 10) return perSecond.toFixed(1);
  return perSecond.toFixed(2);
}

export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  if (usd < 1) return `$${usd.toFixed(3)}`;
  if (usd < 100) return `$${usd.toFixed(2)}`;
  return `$${Math.round(usd).toLocaleString('en-US')}`;
}

export function formatLatency(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`;
}

/** The detail cell of a stage row: batch latency for model stages, request counters for LLM stages. */
export function stageDetail(stage: StageCounts, llm: LlmCounters | undefined): string {
  const parts: string[] = [];
  if (stage.batchLatencyMs !== undefined) parts.push(`batch ${formatLatency(stage.batchLatencyMs)}`);
  if (llm) {
    parts.push(`${llm.inFlight} in flight`);
    parts.push(`${formatCount(llm.requests)} req${llm.cached ? ` (${formatCount(llm.cached)} cached)` : ''}`);
    parts.push(`${formatCount(llm.retries)} retries`);
    parts.push(`${formatCompact(llm.promptTokens + llm.completionTokens)} tok`);
    parts.push(formatUsd(llm.costUsd));
  }
  return parts.join(' · ');
}

/** A bar of `width` cells, filled to `fraction`. */
export function progressBar(fraction: number, width: number): string {
  const cells = Math.max(0, width);
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * cells);
  return '█'.repeat(filled) + '░'.repeat(cells - filled);
}

/** Cut to `width` characters with an ellipsis (for text ink cannot wrap, such as error messages). */
export function truncate(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ');
  if (width <= 0) return '';
  return flat.length > width ? `${flat.slice(0, Math.max(0, width - 1))}…` : flat;
}
