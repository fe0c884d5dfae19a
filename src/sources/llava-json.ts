/**
 * `type: llava`: an existing LLaVA-format file, `[{id, image, conversations: [{from, value}, ...]}, ...]`,
 * so its images, captions and conversations can be re-scored, recaptioned or re-exported.
 *
 * - The file is streamed record by record (`json-records.ts`): memory holds one record, not the file (the
 *   LLaVA-1.5 mix is over 1 GB). A JSON Lines file of the same records works too, and either may be gzipped.
 * - Key: `keyPrefix` + the record's `id` (made a valid key by `toKey`, the original kept as
 *   `meta.originalId`); a record without an id gets `<source name>_<index:09d>`. An id seen again gets
 *   `__dup2`, `__dup3` (LLaVA mixes reuse ids across their parts; each record is kept); so does an id that
 *   cleans to an earlier id's key (`a b`, `a_b`), with `meta.keyCollision` saying which two collided.
 * - Image: `image` resolved against `images` (default the file's folder, which may be `s3://` or
 *   `https://`: the images are then read from there); a one-element list is accepted, more than one image
 *   is `row_invalid` (one image per sample).
 * - meta: the whole record, so `meta.conversations` keeps the conversation as it was.
 * - Conversations: a record's conversation is recorded as an instruction sample of task `imported` (turns
 *   as they are; exports check them like any other), except a brief-description record's, which becomes
 *   the caption below.
 * - Caption rule: when the conversation is exactly one human turn and one gpt answer, and the human turn
 *   (without `<image>`) is a short request (at most 20 words) to describe the image as a whole (describe,
 *   summarize, a caption for it, what the image shows, ...) briefly (brief, concise, succinct, short,
 *   compact, terse, in a few words, in one sentence, ...), the answer becomes a caption with origin
 *   `annotation`. That is the shape of LLaVA's stage-1
 *   (brief-caption) data; longer descriptions and Q&A stay conversations only. `briefCaptions: false`
 *   turns this off.
 * - Text-only records (no `image`) have nothing for an image pipeline, but they are part of the input, so
 *   every count shows them. `textOnly: skip` (default) records each as a dropped sample (reason `text_only`,
 *   meta: the record without its conversation, which can be long and is not used); `textOnly: fail`
 *   records each as a failed pair with code `text_only` (the run exits 1).
 *
 * Failures: `row_invalid` (a record that is not JSON, not an object, an object with neither `image` nor
 * `conversations`, bad `conversations`, several images), `image_missing` / `image_unreadable`, `url_invalid`
 * (an image given as a URL: LLaVA images are local files), `text_only` (with `textOnly: fail`). The file
 * itself missing, or holding no records at all (one JSON object such as `{"data": [...]}`, a bare value,
 * JSON over several lines that is not a list), is a configuration error.
 */
import type { FailureCode } from '../core/failure-codes.js';
import { collisionReason, KeyClaims } from './key-claims.js';
import { z } from 'zod';
import { ConfigError, describeError } from '../core/errors.js';
import { IMAGE_TOKEN, type Turn } from '../core/conversation.js';
import { OPEN, toKey, type Caption, type Pair } from '../core/sample.js';
import { loadInstructionList } from '../core/prompt-files.js';
import { captionFromString } from './caption-text.js';
import { keyPrefixSchema, localPathFields, sourceNameSchema } from './common-options.js';
import { loadImage, locateImage, locationRef, SOURCE_STAGE, type LocalImages } from '../images/image-location.js';
import { imageRootsFor } from '../images/image-roots.js';
import { readJsonRecords, type JsonLayout, type JsonRecord } from './json-records.js';
import { DEFAULT_MAX_FILE_BYTES } from '../images/local-file.js';
import { resolvePending, type Pending } from './pending-pairs.js';
import type { Source, SourceContext, SourceType } from './source.js';
import { openInput, stripBom } from './text-input.js';
import type { Downloader } from '../images/download-cache.js';
import { inputDir, inputPathSchema, resolveInput } from '../storage/input-path.js';
import type { StorageSettings } from '../storage/storage-settings.js';

export const llavaOptionsSchema = z
  .object({
    type: z.literal('llava'),
    name: sourceNameSchema.optional(),
    /** The LLaVA JSON (or JSONL) file, relative to the recipe's folder, or an `s3://` / `https://` URL; may be gzipped. */
    path: inputPathSchema,
    /**
     * Folder the records' `image` paths are relative to (relative to the recipe's folder). Default: the
     * file's folder. Image paths must stay in it (or in `imageRoots`) unless `allowAbsolutePaths` is set.
     */
    images: inputPathSchema.optional(),
    ...localPathFields,
    /** Prepended to every key (default none: ids are the keys). */
    keyPrefix: keyPrefixSchema.optional(),
    /** Records without an image: `skip` (default: a dropped sample each, reason `text_only`) or `fail` (a failed pair each, code `text_only`). */
    textOnly: z.enum(['skip', 'fail']).default('skip'),
    /** Take the answer of a single-turn brief-description sample as a caption (see the file comment). Default true. */
    briefCaptions: z.boolean().default(true),
    /** Images read at once. Default 8. */
    concurrency: z.number().int().min(1).default(8),
  })
  .strict();

export type LlavaOptions = z.infer<typeof llavaOptionsSchema>;

export const llavaSource = {
  type: 'llava',
  schema: llavaOptionsSchema,
  create(options: LlavaOptions, name: string): Source {
    return {
      name,
      read: (ctx) => readLlava(options, name, ctx),
      // Called before the run starts: a missing file, or one that holds no LLaVA records, stops the build there.
      count: async (ctx) => {
        await checkLlavaFile(resolveInput(options.path, ctx.baseDir), ctx.storage);
        return null;
      },
    };
  },
} satisfies SourceType<LlavaOptions>;

const conversationsSchema = z.array(z.looseObject({ from: z.string(), value: z.string() }));

/** The request asks for a description of the image as a whole, not about something in it. */
const DESCRIBE =
  /\b(describe|description|explain|explanation|interpretation|account|narrative|overview|summar(?:y|ize|ise)|sum (?:it )?up)\b|\b(?:write|give|provide|generate|create|suggest|add)\b[^.?!]{0,30}\bcaption\b|\bcaption (?:for|of) (?:this|the|that)\b|\bwhat (?:does|do) (?:this|the|that) (?:image|picture|photo|photograph) show\b|\bwhat(?: is|'s) (?:in|shown in) (?:this|the|that) (?:image|picture|photo|photograph)\b/i;
/** ...and a short one. */
const BRIEF = /\b(brief|briefly|concise|concisely|succinct|succinctly|short|compact|terse|caption|summar(?:y|ize|ise)|sum (?:it )?up|in a few words|in one (?:sentence|line)|one-line)\b/i;

/** The caption a record implies under the rule above, or null. */
export function briefCaption(conversations: readonly { from: string; value: string }[]): string | null {
  if (conversations.length !== 2) return null;
  const [question, answer] = conversations as [{ from: string; value: string }, { from: string; value: string }];
  if (question.from !== 'human' || answer.from !== 'gpt') return null;
  const request = question.value.replace(/<image>/g, ' ').trim();
  const words = request.split(/\s+/).filter((w) => w.length > 0);
  if (words.length === 0 || words.length > 20) return null;
  // vlcurate's own stage-1 requests, exactly (a file it wrote is read back as it was made).
  if (ownBriefRequests().has(normalise(request))) return answer.value;
  // "What is the short man holding? Be brief." is a question about the scene: its answer is no caption.
  return DESCRIBE.test(request) && BRIEF.test(request) ? answer.value : null;
}

/**
 * A record with an image whose turns never say `<image>` is still about that image: the token goes at the
 * start of the first human turn (where LLaVA puts it), so the export does not make it a text-only sample.
 */
function withImageToken(turns: Turn[]): Turn[] {
  if (turns.some((t) => t.value.includes(IMAGE_TOKEN))) return turns;
  const first = turns.findIndex((t) => t.from === 'human');
  if (first < 0) return turns;
  return turns.map((t, i) => (i === first ? { ...t, value: `${IMAGE_TOKEN}\n${t.value}` } : t));
}

let ownBrief: Set<string> | null = null;
function ownBriefRequests(): Set<string> {
  ownBrief ??= new Set(loadInstructionList('brief').map(normalise));
  return ownBrief;
}

function normalise(text: string): string {
  return text.toLowerCase().replace(/\s+/g, ' ').trim();
}

async function* readLlava(options: LlavaOptions, name: string, ctx: SourceContext): AsyncGenerator<Pair> {
  const file = resolveInput(options.path, ctx.baseDir);
  const imagesDir = options.images === undefined ? inputDir(file) : resolveInput(options.images, ctx.baseDir, 'images');
  const stream = await openInput(file, 'llava path', ctx.storage);
  const prefix = options.keyPrefix ?? '';
  const fallbackPrefix = `${options.keyPrefix ?? `${toKey(name)}_`}`;
  const used = new KeyClaims();
  const images: LocalImages = {
    dir: imagesDir,
    roots: await imageRootsFor(imagesDir, options, ctx.baseDir),
    maxBytes: ctx.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    storage: ctx.storage,
  };
  const noDownloads = (): Downloader => {
    throw new Error('llava sources read local files only');
  };

  const failed = (key: string, record: JsonRecord, meta: Record<string, unknown>, code: FailureCode, problem: string, imageRef = `llava:${file}#${record.index}`): Pending => ({
    key,
    pair: {
      key,
      source: name,
      imageRef,
      imageBytes: null,
      captions: [],
      boxes: [],
      meta,
      fate: { kind: 'failed', code, message: `record ${record.index} (line ${record.line}) of ${file}: ${problem}`, stage: SOURCE_STAGE },
    },
  });

  function toPending(record: JsonRecord): Pending {
    const fallbackKey = `${fallbackPrefix}${String(record.index).padStart(9, '0')}`;
    if (record.error !== null) return failed(fallbackKey, record, {}, 'row_invalid', record.error);
    const value = record.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return failed(fallbackKey, record, {}, 'row_invalid', `expected an object {id, image, conversations}, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
    }
    const item = value as Record<string, unknown>;
    if (!isLlavaRecord(item)) {
      return failed(fallbackKey, record, {}, 'row_invalid', `expected an object {id, image, conversations}, got one with neither "image" nor "conversations" (${describeKeys(item)})`);
    }
    const meta: Record<string, unknown> = { ...item };

    const id = item['id'];
    const hasId = (typeof id === 'string' && id.trim().length > 0) || typeof id === 'number';
    const raw = hasId ? String(id) : fallbackKey.slice(prefix.length);
    if (hasId && toKey(raw) !== raw) meta['originalId'] = raw;
    // Both kinds of clash keep their record under `__dupN`: LLaVA mixes reuse ids across their parts. A
    // collision (two different ids that clean to one key) is said on the record, since the file does not show it.
    const claim = used.claim(hasId ? prefix + toKey(raw) : fallbackKey, raw, prefix);
    const key = claim.key;
    if (claim.clash) {
      meta['originalId'] ??= raw;
      if (claim.clash.code === 'key_collision') meta['keyCollision'] = collisionReason(claim.clash.earlier, raw, key.replace(/__dup\d+$/, ''));
    }

    let image = item['image'];
    if (Array.isArray(image) && image.length === 1) image = image[0];
    if (image === undefined || image === null || image === '' || (Array.isArray(image) && image.length === 0)) {
      if (options.textOnly === 'skip') {
        const { conversations: _conversations, ...rest } = meta;
        const pair: Pair = { key, source: name, imageRef: `llava:${file}#${record.index}`, imageBytes: null, captions: [], boxes: [], meta: rest, fate: OPEN };
        return { key, pair: { ...pair, fate: { kind: 'dropped', reason: 'text_only', stage: SOURCE_STAGE } } };
      }
      return failed(key, record, meta, 'text_only', 'the record has no image (a text-only conversation)');
    }
    if (Array.isArray(image)) return failed(key, record, meta, 'row_invalid', `the record has ${image.length} images; one image per sample is supported`);
    if (typeof image !== 'string') return failed(key, record, meta, 'row_invalid', `"image" holds ${typeof image}, expected a path`);

    const conversations = conversationsSchema.safeParse(item['conversations'] ?? []);
    if (!conversations.success) {
      const issue = conversations.error.issues[0]!;
      return failed(key, record, meta, 'row_invalid', `"conversations${issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}": ${issue.message}`);
    }

    const location = locateImage(image, images);
    if (location.kind === 'url') {
      return failed(key, record, meta, 'url_invalid', `image ${location.url} is a URL; llava sources read local files under "images"`, locationRef(location));
    }
    const captions: Caption[] = [];
    const brief = options.briefCaptions ? briefCaption(conversations.data) : null;
    if (brief !== null) captions.push(captionFromString(brief, 'annotation'));
    if (record.invalidUtf8) for (const [i, c] of captions.entries()) captions[i] = { ...c, issue: 'invalid_utf8', usable: false };

    // A brief-description record lives on as its caption (stage 1 is made from it); any other
    // conversation is imported whole, so exports can write it again.
    const pair: Pair = { key, source: name, imageRef: locationRef(location), imageBytes: null, captions, boxes: [], meta, fate: OPEN };
    if (brief === null && conversations.data.length > 0) pair.conversations = withImageToken(conversations.data.map((t) => ({ from: t.from, value: t.value }) as Turn));
    return { key, load: (signal) => loadImage(pair, location, noDownloads, signal, images) };
  }

  async function* pending(): AsyncGenerator<Pending> {
    let lastLine = 0;
    let layout: JsonLayout = 'lines';
    // The first two records are held until they show the file is a list or JSON Lines of records at all.
    let lead: JsonRecord[] | null = [];
    try {
      for await (const record of readJsonRecords(stripBom(stream), (found) => (layout = found))) {
        if (ctx.signal.aborted) return;
        lastLine = record.line;
        if (lead !== null) {
          lead.push(record);
          if (lead.length < 2) continue;
          checkDocument(lead, layout, file);
          for (const held of lead) yield toPending(held);
          lead = null;
          continue;
        }
        yield toPending(record);
      }
      if (lead !== null) {
        checkDocument(lead, layout, file);
        for (const held of lead) yield toPending(held);
      }
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      // The stream itself broke (a gzip file cut off): one failed pair says where, and reading stops.
      const key = `${fallbackPrefix}_unreadable`;
      yield {
        key,
        pair: {
          key,
          source: name,
          imageRef: `llava:${file}`,
          imageBytes: null,
          captions: [],
          boxes: [],
          meta: {},
          fate: { kind: 'failed', code: 'manifest_unreadable', message: `${file}: cannot read past line ${lastLine}: ${describeError(err)}`, stage: SOURCE_STAGE },
        },
      };
    } finally {
      stream.destroy();
    }
  }

  yield* resolvePending(pending(), ctx, { concurrency: options.concurrency, ordered: true });
}

/** Throw the configuration error reading `file` would meet at its start (see `checkDocument`); reads two records at most. */
async function checkLlavaFile(file: string, storage: StorageSettings | undefined): Promise<void> {
  const stream = await openInput(file, 'llava path', storage);
  let layout: JsonLayout = 'lines';
  const lead: JsonRecord[] = [];
  try {
    for await (const record of readJsonRecords(stripBom(stream), (found) => (layout = found))) {
      lead.push(record);
      if (lead.length === 2) break;
    }
  } catch {
    return; // a stream that breaks is the reader's recorded failure (manifest_unreadable), not a configuration error
  } finally {
    stream.destroy();
  }
  checkDocument(lead, layout, file);
}

/** A LLaVA record has an image, a conversation, or both; an object with neither is something else. */
function isLlavaRecord(item: Record<string, unknown>): boolean {
  return 'image' in item || 'conversations' in item;
}

function describeKeys(item: Record<string, unknown>): string {
  const keys = Object.keys(item);
  if (keys.length === 0) return 'an empty object';
  const shown = keys.slice(0, 5).map((k) => JSON.stringify(k)).join(', ');
  return `keys ${shown}${keys.length > 5 ? `, ... (${keys.length} in all)` : ''}`;
}

const EXPECTED_LAYOUT =
  'expected a JSON list of LLaVA records [{"id", "image", "conversations"}, ...] or JSON Lines with one record per line';

/**
 * A file that is not records at all is a configuration error, not a run of failed rows: one JSON object
 * (a wrapper such as `{"data": [...]}`: LLaVA files are plain lists, and no wrapper convention exists to
 * follow), a bare value, or JSON written over several lines without being a list (its first two lines do
 * not parse, which a JSON Lines file with a broken line does not show).
 */
function checkDocument(lead: readonly JsonRecord[], layout: JsonLayout, file: string): void {
  if (layout !== 'lines') return;
  const [first, second] = lead;
  if (first === undefined) return;
  if (second !== undefined) {
    if (first.error !== null && second.error !== null) {
      throw new ConfigError(
        `llava path: "${file}" is neither a JSON list nor JSON Lines: its first two lines (${first.line} and ${second.line}) are not JSON values ` +
          `(one JSON object written over several lines?); ${EXPECTED_LAYOUT}`,
      );
    }
    return;
  }
  if (first.error !== null) return;
  const value = first.value;
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && isLlavaRecord(value as Record<string, unknown>)) return;
  const what =
    value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value === 'object' ? `one JSON object (${describeKeys(value as Record<string, unknown>)})` : `a JSON ${typeof value}`;
  throw new ConfigError(`llava path: "${file}" holds ${what} and no LLaVA records; ${EXPECTED_LAYOUT}`);
}
