/**
 * Conversations in WebDataset shards. A shard sample is one image, so the instruction records of the selected
 * tasks are merged into one multi-turn conversation (records with the image first; `<image>` only in the
 * very first human turn), written to `key.json` as `conversations`, with the record ids in
 * `conversation_records`. With a tokenizer, the merged conversation is tokenized with the template and
 * verified, and `key.input_ids.npy` / `key.labels.npy` (int32, .npy v1.0) are added; `key.json` then says
 * `tokens: {count, truncated}`. A sample whose conversation cannot be tokenized, or that has none, is left
 * out of the shards with a recorded reason (`no_conversation`: a trainer reading `conversations` or
 * `input_ids` would fail on it).
 *
 * Without any conversation option the export is a **caption export**: `key.txt` (the published caption) is
 * what a loader trains on (`to_tuple("jpg", "txt")`), so every sample written has one. A sample with no
 * caption to train on is left out and counted (`no_caption`): writing it without `key.txt` breaks such a
 * loader, and an empty `key.txt` would train an empty caption.
 *
 * Defaults: tasks are every task but `stage1` (with template `plain`: only `stage1`), and with a tokenizer a
 * sample with no record of them gets its stage-1 record (its caption, encoded with the stage-1 template) as
 * its conversation, so a build without synthesis still exports every captioned sample (LLaVA stage-1 style)
 * instead of leaving all of them out; regions are written in
 * the template's family style (`qwen2vl` for qwen2_vl, else `llava`).
 */
import type { FailureCode } from '../core/failure-codes.js';
import { IMAGE_TOKEN, type InstructionTask, type Turn } from '../core/conversation.js';
import { trainingCaption } from './webdataset-sample.js';
import type { ShardSpec } from '../core/shard.js';
import type { ExportRecords, RecordRow } from '../store/export-records.js';
import { ConversationEncoder } from './conversation-encoder.js';
import { regionSettings, resolveConversationOptions, type ConversationOptions, type ResolvedConversationOptions } from './conversation-options.js';
import { writeFileAtomically } from './durable-fs.js';
import { describeStats, exportStats, type ExportStats } from './export-stats.js';
import type { ExportContext } from './export-type.js';
import { ALL_TASKS, checkConversation, collectRecords, isProblem, type InstructionExportable } from './instruction-records.js';
import { int32Npy } from './npy.js';
import type { WebDatasetSampleExtras } from './webdataset-sample.js';
import type { SampleMember } from './webdataset-writer.js';

export type PreparedConversation = { ok: true; extras: WebDatasetSampleExtras | null } | { ok: false; code: FailureCode; message: string };

/** Option names that switch conversation handling on (besides samples that carry instructions). */
const CONVERSATION_KEYS: readonly (keyof ConversationOptions)[] = [
  'tasks',
  'regionFormat',
  'padToSquare',
  'tokenizer',
  'template',
  'stage1Template',
  'legacy',
  'system',
  'imagePlaceholderId',
  'maxLength',
  'overLength',
  'minPixels',
  'maxPixels',
  'qwenImageText',
];

/** Remove `<image>` (and one newline next to it) from a turn that is not the conversation's first. */
function withoutImage(text: string): string {
  return text.replace(`${IMAGE_TOKEN}\n`, '').replace(`\n${IMAGE_TOKEN}`, '').replace(IMAGE_TOKEN, '');
}

/** Merge records into one conversation: records with the image first, `<image>` kept only at the very start. */
export function mergeConversations(records: readonly { conversations: readonly Turn[]; hasImage: boolean }[]): Turn[] {
  const ordered = [...records.filter((r) => r.hasImage), ...records.filter((r) => !r.hasImage)];
  const merged: Turn[] = [];
  for (const record of ordered) {
    record.conversations.forEach((turn, i) => {
      merged.push({ from: turn.from, value: merged.length > 0 && i === 0 ? withoutImage(turn.value) : turn.value });
    });
  }
  return merged;
}

const STAGE1_ONLY: ReadonlySet<InstructionTask> = new Set(['stage1']);

export class WebDatasetConversations {
  private rows: RecordRow[] = [];
  private seq: number;
  /** Caption export: samples left out by this run, by reason. */
  readonly leftOut: Record<string, number> = {};

  private constructor(
    private readonly exportName: string,
    private readonly resolved: ResolvedConversationOptions,
    private readonly encoder: ConversationEncoder,
    /** Null when no conversation option is set: nothing is recorded, samples are written as before. */
    private readonly records: ExportRecords | null,
    private readonly maxLength: number | null,
    /** Default tasks with a tokenizer: a sample with no record of them gets its stage-1 record instead. */
    private readonly stage1Fallback: boolean,
  ) {
    this.seq = records ? records.nextSeq(exportName) : 0;
  }

  static async create(exportName: string, options: ConversationOptions, ctx: ExportContext): Promise<WebDatasetConversations> {
    const active = CONVERSATION_KEYS.some((k) => options[k] !== undefined);
    const plain = options.template === 'plain';
    const resolved = await resolveConversationOptions(
      options,
      {
        tasks: plain ? ['stage1'] : ALL_TASKS.filter((t) => t !== 'stage1'),
        regionFormat: 'llava',
        template: null,
        stage1Template: null,
      },
      ctx.baseDir,
    );
    // Regions follow the template's model family unless set.
    if (options.regionFormat === undefined && resolved.templateName === 'qwen2_vl') {
      resolved.encoder.regionFormat = 'qwen2vl';
      resolved.regions = regionSettings(resolved.encoder);
    }
    let records: ExportRecords | null = null;
    if (active) {
      records = ctx.store.exportRecords();
      records.claim(exportName, 'webdataset', {
        ...Object.fromEntries(CONVERSATION_KEYS.map((k) => [k, options[k]])),
        tasks: [...resolved.tasks],
        tokenizer: resolved.tokenizerPath,
        template: resolved.templateName,
        stage1Template: resolved.stage1TemplateName,
      });
    }
    const stage1Fallback = options.tasks === undefined && !plain && resolved.encoder.tokenization != null;
    return new WebDatasetConversations(exportName, resolved, new ConversationEncoder(resolved.encoder), records, options.maxLength ?? null, stage1Fallback);
  }

  private get tokenized(): boolean {
    return this.resolved.encoder.tokenization != null;
  }

  private stage(row: Omit<RecordRow, 'seq' | 'part'>): void {
    if (this.records) this.rows.push({ ...row, part: '', seq: this.seq++ });
  }

  /** The json fields and members a sample gets, or why it cannot be written. */
  prepare(sample: InstructionExportable): PreparedConversation {
    if (!this.records && trainingCaption(sample.captions) === null) {
      this.leftOut['no_caption'] = (this.leftOut['no_caption'] ?? 0) + 1;
      return { ok: false, code: 'no_caption', message: 'no caption to train on (every sample of a caption export has key.txt)' };
    }
    const image = sample.image ? { width: sample.image.width, height: sample.image.height } : null;
    let sources = collectRecords(sample, this.resolved.tasks);
    if (sources.length === 0 && this.stage1Fallback) sources = collectRecords(sample, STAGE1_ONLY);
    const valid: { id: string; task: InstructionTask; conversations: readonly Turn[]; hasImage: boolean }[] = [];
    const findSpecial = (text: string) => this.encoder.tokenizer?.findAddedToken(text) ?? null;
    for (const source of sources) {
      const checked = checkConversation(source.conversations, findSpecial, source.task === 'grounding' || source.task === 'referring');
      if (isProblem(checked)) {
        this.stage({ recordId: source.id, sampleKey: sample.key, status: 'failed', code: checked.code, message: checked.message, recordJson: null, tokens: null, truncated: false });
        continue;
      }
      valid.push({ id: source.id, task: source.task, conversations: source.conversations, hasImage: checked.hasImage });
    }
    const fail = (code: FailureCode, message: string, tokens: number | null = null, status: 'failed' | 'dropped' = 'failed'): PreparedConversation => {
      this.stage({ recordId: sample.key, sampleKey: sample.key, status, code, message, recordJson: null, tokens, truncated: false });
      return { ok: false, code, message };
    };
    if (valid.length === 0) {
      // A conversation export's loader reads `conversations` (and the .npy members): a sample without any
      // is left out, as a caption export leaves out a sample without a caption.
      if (this.records) return fail('no_conversation', `no valid record of the tasks ${[...this.resolved.tasks].join(', ')}${this.tokenized ? ' to tokenize' : ''}`);
      return { ok: true, extras: null };
    }
    const merged = mergeConversations(valid);
    const task: InstructionTask = valid.every((r) => r.task === 'stage1') ? 'stage1' : valid[0]!.task;
    const result = this.encoder.encode(task, merged, image);
    if (result.status !== 'ok') return fail(result.code, result.message, result.length, result.status);
    const json: Record<string, unknown> = { conversations: result.conversations, conversation_records: valid.map((r) => r.id) };
    const members: SampleMember[] = [];
    if (result.tokens) {
      json.tokens = { count: result.tokens.inputIds.length, truncated: result.tokens.truncated };
      members.push({ ext: 'input_ids.npy', data: int32Npy(result.tokens.inputIds) });
      members.push({ ext: 'labels.npy', data: int32Npy(result.tokens.labels) });
    }
    this.stage({
      recordId: sample.key,
      sampleKey: sample.key,
      status: 'ok',
      code: null,
      message: null,
      recordJson: null,
      tokens: result.tokens?.length ?? null,
      truncated: result.tokens?.truncated ?? false,
    });
    return { ok: true, extras: { json, members } };
  }

  /** Store the outcomes staged so far. Called before a shard is recorded, and at the end. */
  flush(): void {
    if (!this.records || this.rows.length === 0) return;
    this.records.upsert(this.exportName, this.rows);
    this.rows = [];
  }

  /** Write `stats.json` beside the manifest (only when conversation options are set); returns the stats. */
  async finish(dir: string, shard: ShardSpec): Promise<ExportStats | null> {
    this.flush();
    if (!this.records) return null;
    const stats = exportStats(this.records, {
      exportName: this.exportName,
      format: 'webdataset',
      tokenizer: this.resolved.tokenizerPath,
      template: this.resolved.templateName,
      stage1Template: this.resolved.stage1TemplateName,
      maxLength: this.maxLength,
      visionPixels: this.resolved.visionPixels,
      regions: this.resolved.regions,
      legacy: this.resolved.legacy,
      qwenImageText: this.resolved.qwen?.imageText ?? null,
    });
    await writeFileAtomically(`${dir}/${statsFileName(shard)}`, `${JSON.stringify(stats, null, 2)}\n`);
    return stats;
  }

  describe(stats: ExportStats): string {
    return describeStats(stats);
  }

  /** `export wds: 3 samples left out (no_caption 3): ...`, or null when none was. */
  describeLeftOut(): string | null {
    const entries = Object.entries(this.leftOut);
    if (entries.length === 0) return null;
    const total = entries.reduce((n, [, k]) => n + k, 0);
    return `export ${this.exportName}: ${total} sample(s) left out (${entries.map(([code, n]) => `${code} ${n}`).join(', ')}): a caption export writes only samples with a caption to train on, each with key.txt`;
  }
}

/** `stats.json`, or `stats-s{I}of{N}.json` under `--shard I/N` with N > 1. */
export function statsFileName(shard: ShardSpec): string {
  return shard.count > 1 ? `stats-s${shard.index}of${shard.count}.json` : 'stats.json';
}
