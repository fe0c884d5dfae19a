/**
 * The stats file of a conversation export (`stats.json`): records written, failed and dropped with their
 * reasons, how many were tokenized and verified, and the sequence-length distribution. Computed from the
 * store, so it covers every run of a resumed export, not only the last one.
 */
import type { LegacySource } from '../tokenizers/chat-tokenizer.js';
import type { ModelRegionFormat } from '../regions/region-format.js';
import type { QwenImageText } from './templates/qwen-user-text.js';
import type { VisionPixels } from './templates/vision-pixels.js';
import type { ExportRecords } from '../store/export-records.js';
import { lengthStats, type LengthStats } from './token-stats.js';

export interface ExportStats {
  export: string;
  format: string;
  tokenizer: string | null;
  template: string | null;
  stage1Template: string | null;
  /** Records written (JSON: one per conversation; WebDataset: one per sample). */
  records: number;
  samples: number;
  /** Written records whose loss mask passed the verifier; null without a tokenizer. */
  verified: number | null;
  failed: number;
  dropped: number;
  truncated: number;
  /** Failed and dropped records by code. */
  reasons: Record<string, number>;
  /** Sequence lengths with visual tokens (before truncation); null without a tokenizer or records. */
  tokens: LengthStats | null;
  /** The `smart_resize` pixel bounds used for Qwen2-VL image tokens and Qwen2.5-VL coordinates: the trainer's processor must use the same. */
  visionPixels: VisionPixels;
  /**
   * How regions are written: the format, and for `llava` the frame the fractions are of (`padToSquare`
   * true: the image padded to a centred square, as LLaVA-1.5 trains with `image_aspect_ratio: pad`; false:
   * the image itself); null for other formats.
   */
  regions: { format: ModelRegionFormat; padToSquare: boolean | null };
  /** The sentencepiece (Llama) tokenizer's `legacy` mode the masks were made with, and its source; null without one. */
  legacy: { value: boolean; from: LegacySource } | null;
  /**
   * Qwen exports: how user text sits around the image (`stripped`: right after `<|vision_end|>`, as Qwen's
   * current finetune code builds it; `verbatim`: as written, for the older string-replacing code); null
   * for other exports.
   */
  qwenImageText: QwenImageText | null;
}

export interface ExportStatsInfo {
  exportName: string;
  format: string;
  tokenizer: string | null;
  template: string | null;
  stage1Template: string | null;
  maxLength: number | null;
  visionPixels: VisionPixels;
  regions: ExportStats['regions'];
  legacy: ExportStats['legacy'];
  qwenImageText: QwenImageText | null;
}

export function exportStats(records: ExportRecords, info: ExportStatsInfo): ExportStats {
  const summary = records.summary(info.exportName);
  return {
    export: info.exportName,
    format: info.format,
    tokenizer: info.tokenizer,
    template: info.template,
    stage1Template: info.stage1Template,
    records: summary.records,
    samples: summary.samples,
    verified: info.tokenizer === null ? null : summary.verified,
    failed: summary.failed,
    dropped: summary.dropped,
    truncated: summary.truncated,
    reasons: summary.reasons,
    tokens: info.tokenizer === null ? null : lengthStats(summary.lengths, info.maxLength),
    visionPixels: info.visionPixels,
    regions: info.regions,
    legacy: info.legacy,
    qwenImageText: info.qwenImageText,
  };
}

/**
 * The settings a trainer must share, for the summary: `llava boxes in the padded square frame, legacy true
 * (default)`, or `qwen min_pixels 3136, max_pixels 1003520 (defaults), user text right after <|vision_end|>`.
 */
export function describeSettings(stats: Pick<ExportStats, 'regions' | 'legacy' | 'visionPixels' | 'qwenImageText' | 'tokenizer'>): string[] {
  const parts: string[] = [];
  if (stats.regions?.format === 'llava') {
    parts.push(stats.regions.padToSquare ? 'llava boxes in the padded square frame (padToSquare)' : 'llava boxes in the image frame (padToSquare: false)');
  }
  if (stats.legacy) parts.push(`tokenizer legacy ${stats.legacy.value} (${stats.legacy.from})`);
  // The bounds shape the output only through image tokens (a Qwen export with a tokenizer) or Qwen2.5-VL
  // coordinates. Older stats files have no qwenImageText: undefined, not null, so they say nothing here.
  const pixelsMatter = (stats.qwenImageText != null && stats.tokenizer !== null) || stats.regions?.format === 'qwen25vl';
  if (pixelsMatter && stats.visionPixels) {
    const { minPixels, maxPixels, from } = stats.visionPixels;
    parts.push(`qwen min_pixels ${minPixels}, max_pixels ${maxPixels} (${from})`);
  }
  if (stats.qwenImageText === 'stripped') parts.push('user text right after <|vision_end|> (qwenImageText: stripped)');
  if (stats.qwenImageText === 'verbatim') parts.push('user text verbatim after <|vision_end|> (qwenImageText: verbatim)');
  return parts;
}

/** One line for the run log: `export llava: 1200 records from 400 samples, 1190 verified, 10 failed (mask_mismatch 10)`. */
export function describeStats(stats: ExportStats): string {
  const parts = [`${stats.records} records from ${stats.samples} samples`];
  if (stats.verified !== null) parts.push(`${stats.verified} verified`);
  if (stats.failed > 0 || stats.dropped > 0) {
    const reasons = Object.entries(stats.reasons)
      .slice(0, 5)
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
    parts.push(`${stats.failed} failed, ${stats.dropped} dropped (${reasons})`);
  }
  if (stats.truncated > 0) parts.push(`${stats.truncated} truncated`);
  if (stats.tokens) parts.push(`tokens p50 ${stats.tokens.p50}, p99 ${stats.tokens.p99}, max ${stats.tokens.max}`);
  parts.push(...describeSettings(stats));
  return `export ${stats.export}: ${parts.join(', ')}`;
}
