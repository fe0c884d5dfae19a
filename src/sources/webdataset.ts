/**
 * WebDataset tar shards as img2dataset writes them: members `KEY.jpg|jpeg|png|webp`, `KEY.txt`,
 * `KEY.json`, a sample's members consecutive. The key is the member path up to the first dot of its
 * file name (a folder inside the tar stays part of the key, as in webdataset's own reader), made a valid
 * key by `toKey` (`sub/dir/0001` -> `sub_dir_0001`, the original kept as `meta.originalKey`). A key met
 * again apart from its sample's members is `key_duplicate`; two member names that become one key
 * (`a b.jpg`, `a_b.jpg`) are `key_collision`: the later sample is recorded, failed, as `KEY__dupN`.
 *
 * Shards are read as streams (tar-stream over a file stream, gunzipped when the file is gzip), one
 * sample in memory at a time. A shard may be an `s3://` object or an `https://` URL (`shard-listing.ts`
 * for listings): it is streamed, never downloaded first, and a dropped connection resumes with a range
 * request pinned to the object's ETag (`storage/resumable-read.ts`); when the resumes run out, or the
 * object changes meanwhile, the sample being read is `storage_interrupted` and the shard's reading stops
 * there, as for a shard cut off on disk. A missing object is `shard_missing`, refused credentials
 * `storage_denied`. Problems are data, never exceptions: a missing or unreadable shard, a
 * shard cut off mid-member, a sample without an image, an empty image member, bad JSON, a member larger
 * than `decode.maxBytes` (`image_too_large` for the image, `member_too_large` for another member: read
 * past from the size in its header, never buffered) — each becomes a failed `Pair` with a specific code,
 * and reading goes on with the next sample or shard.
 */
import type { FailureCode } from '../core/failure-codes.js';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { z } from 'zod';
import { describeError } from '../core/errors.js';
import { inShard } from '../core/shard.js';
import { fateOf, isValidKey, toKey, type Box, type Caption, type Pair, type SampleFailure } from '../core/sample.js';
import { StorageError } from '../core/object-store.js';
import { inputPathProblem } from '../storage/input-path.js';
import { splitPatterns } from './brace.js';
import { resolveShards } from './shard-listing.js';
import { collisionReason, KeyClaims } from './key-claims.js';
import { captionFromBytes, captionFromString } from './caption-text.js';
import { keyPrefixSchema, sourceNameSchema } from './common-options.js';
import { DEFAULT_MAX_FILE_BYTES } from '../images/local-file.js';
import { inputFailureCode, openInputStream } from '../images/input-file.js';
import type { Source, SourceContext, SourceType } from './source.js';

export const webdatasetOptionsSchema = z
  .object({
    type: z.literal('webdataset'),
    name: sourceNameSchema.optional(),
    /**
     * Shard paths, relative to the recipe's folder, or `s3://` / `https://` URLs: brace patterns
     * (`data/shard-{000000..000009}.tar`), several joined with `::`, or a list of them. On S3 also a
     * prefix ending in `/` or a key with `*` (listed: `shard-listing.ts`).
     */
    paths: z.union([shardPatternSchema(), z.array(shardPatternSchema()).min(1)]),
    /** Prepended to every key (default none). */
    keyPrefix: keyPrefixSchema.optional(),
  })
  .strict();

export type WebdatasetOptions = z.infer<typeof webdatasetOptionsSchema>;

/** A shard pattern whose scheme vlcurate reads (`gs://` and `pipe:` fail the recipe, naming the field). */
function shardPatternSchema() {
  return z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      let parts: string[];
      try {
        parts = splitPatterns(value);
      } catch {
        return; // a malformed pattern is reported, naming it, when the shards are expanded
      }
      for (const part of parts) {
        const problem = inputPathProblem(part);
        if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
      }
    });
}

/** Stage name recorded on failures this reader produces. */
const STAGE = 'source';

/** Member extensions (lower-cased, after the first dot of the file name) by role. */
const IMAGE_EXTENSIONS = new Set(['jpg', 'jpeg', 'png', 'webp']);
const CAPTION_EXTENSIONS = new Set(['txt', 'text', 'caption']);
const JSON_EXTENSION = 'json';

export const webdatasetSource = {
  type: 'webdataset',
  schema: webdatasetOptionsSchema,
  create(options: WebdatasetOptions, name: string): Source {
    return {
      name,
      read: (ctx) => readWebdataset(options, name, ctx),
      // Called before the run starts: a listing that fails or finds nothing stops the build there.
      count: async (ctx) => {
        await resolveShards(options.paths, ctx.baseDir, ctx.storage);
        return null;
      },
    };
  },
} satisfies SourceType<WebdatasetOptions>;

async function* readWebdataset(options: WebdatasetOptions, name: string, ctx: SourceContext): AsyncGenerator<Pair> {
  for (const shard of await resolveShards(options.paths, ctx.baseDir, ctx.storage)) {
    if (ctx.signal.aborted) return;
    yield* readShard(shard, { source: name, keyPrefix: options.keyPrefix ?? '', ctx });
  }
}

export interface ShardEnv {
  source: string;
  keyPrefix: string;
  ctx: SourceContext;
}

/** The members of one sample, gathered while reading. */
interface Group {
  /** Member path up to the first dot of the file name. */
  prefix: string;
  key: string;
  /** Out of this process's shard or already done: members are read past, not kept. */
  skip: boolean;
  image: { member: string; bytes: Buffer } | null;
  caption: Buffer | null;
  json: Buffer | null;
  failure: SampleFailure | null;
}

/** Read one shard, yielding its samples in order; never throws for bad data. */
export async function* readShard(absPath: string, env: ShardEnv): AsyncGenerator<Pair> {
  const shardFailure = (code: FailureCode, message: string): Pair | null => {
    // A URL's query (a presigned signature) is no part of the shard's name.
    const key = `${env.keyPrefix}${toKey(path.basename(absPath.replace(/[?#].*$/, '')))}__shard`;
    if (!inShard(key, env.ctx.shard)) return null;
    return {
      key,
      source: env.source,
      imageRef: `tar:${absPath}`,
      imageBytes: null,
      captions: [],
      boxes: [],
      meta: { shard: absPath },
      fate: { kind: 'failed', code, message, stage: STAGE },
    };
  };

  const opened = await openInputStream(absPath, 'shard', env.ctx.storage);
  if (!opened.ok) {
    const code = opened.problem === 'missing' ? 'shard_missing' : opened.problem === 'denied' || opened.problem === 'interrupted' ? inputFailureCode(opened.problem) : 'shard_unreadable';
    const failed = shardFailure(code, opened.message);
    if (failed) yield failed;
    return;
  }
  const maxBytes = env.ctx.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;

  const file = opened.stream;
  const tar = extract();
  const input: Readable = opened.gzip ? file.pipe(createGunzip()) : file;
  file.on('error', (err) => tar.destroy(err));
  input.on('error', (err) => tar.destroy(err));
  input.pipe(tar);

  const seen = new KeyClaims();
  let group: Group | null = null;
  let entries = 0;
  let lastMember: string | null = null;
  let reading: string | null = null;
  try {
    try {
      for await (const entry of tar) {
        entries++;
        const header: Header = entry.header;
        const member = header.name.replace(/^(\.\/)+/, '');
        reading = member;
        const split = header.type === 'file' || header.type === 'contiguous-file' ? splitMember(member) : null;
        if (split === null) {
          // Folders, links, files without an extension: nothing a sample is made of.
          await drain(entry);
        } else {
          if (group === null || group.prefix !== split.prefix) {
            if (group !== null) {
              const done = finishGroup(group, absPath, env);
              if (done) yield done;
              if (env.ctx.signal.aborted) return;
            }
            group = startGroup(split.prefix, member, seen, env);
          }
          const size = header.size ?? 0;
          if (group.skip) {
            await drain(entry);
          } else if (size > maxBytes) {
            // The size is in the header: a member over the limit is read past, never buffered.
            await drain(entry);
            const image = IMAGE_EXTENSIONS.has(split.extension);
            group.failure ??= {
              code: image ? 'image_too_large' : 'member_too_large',
              message: `member ${member} of ${absPath} is ${size.toLocaleString('en-US')} bytes, more than decode.maxBytes ${maxBytes.toLocaleString('en-US')}; it was not read`,
              stage: STAGE,
            };
            if (image) group.image ??= { member, bytes: Buffer.alloc(0) };
          } else {
            addMember(group, split.extension, member, await readAll(entry as AsyncIterable<Buffer>));
          }
        }
        lastMember = member;
        reading = null;
      }
    } catch (err) {
      const { code, message } = describeReadError(err, absPath, entries, reading, lastMember);
      if (group === null) {
        // No sample was being read: the shard-level record carries the problem.
        const failed = shardFailure(code, message);
        if (failed) yield failed;
      } else if (!group.skip) {
        group.failure = { code, message, stage: STAGE };
        const done = finishGroup(group, absPath, env);
        if (done) yield done;
      }
      // A skipped sample cut off here belongs to another process's shard, or an earlier run recorded it.
      return;
    }
    if (group !== null) {
      const done = finishGroup(group, absPath, env);
      if (done) yield done;
    }
  } finally {
    file.destroy();
    input.destroy();
    tar.destroy();
  }
}

/** `dir/000001.input_ids.npy` -> prefix `dir/000001`, extension `input_ids.npy`; null when no extension. */
export function splitMember(member: string): { prefix: string; extension: string } | null {
  const slash = member.lastIndexOf('/');
  const base = member.slice(slash + 1);
  const dot = base.indexOf('.');
  if (dot <= 0 || dot === base.length - 1) return null;
  return { prefix: member.slice(0, slash + 1) + base.slice(0, dot), extension: base.slice(dot + 1).toLowerCase() };
}

function startGroup(prefix: string, member: string, seen: KeyClaims, env: ShardEnv): Group {
  const cleaned = env.keyPrefix + (isValidKey(prefix) ? prefix : toKey(prefix));
  const { key, clash } = seen.claim(cleaned, prefix, env.keyPrefix);
  let failure: SampleFailure | null = null;
  // Members of a sample must be consecutive; a key met again gets its own failed record.
  if (clash?.code === 'key_duplicate') {
    failure = { code: clash.code, message: `key "${prefix}" appears again at member ${member}, apart from its earlier members`, stage: STAGE };
  } else if (clash?.code === 'key_collision') {
    failure = { code: clash.code, message: `member ${member}: ${collisionReason(clash.earlier, prefix, cleaned.slice(env.keyPrefix.length))}`, stage: STAGE };
  }
  const skip = !inShard(key, env.ctx.shard) || (env.ctx.isDone?.([key]).has(key) ?? false);
  return { prefix, key, skip, image: null, caption: null, json: null, failure };
}

function addMember(group: Group, extension: string, member: string, bytes: Buffer): void {
  if (IMAGE_EXTENSIONS.has(extension)) {
    group.image ??= { member, bytes };
  } else if (CAPTION_EXTENSIONS.has(extension)) {
    group.caption ??= bytes;
  } else if (extension === JSON_EXTENSION) {
    group.json ??= bytes;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function finishGroup(group: Group, absPath: string, env: ShardEnv): Pair | null {
  if (group.skip) return null;
  const fail = (code: FailureCode, message: string) => {
    group.failure ??= { code, message, stage: STAGE };
  };

  let meta: Record<string, unknown> = {};
  if (group.json !== null) {
    try {
      const parsed: unknown = JSON.parse(strictUtf8.decode(group.json));
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        fail('json_invalid', `${group.prefix}.json holds ${Array.isArray(parsed) ? 'an array' : JSON.stringify(parsed)}, expected an object`);
      } else {
        meta = parsed as Record<string, unknown>;
      }
    } catch (err) {
      fail('json_invalid', `${group.prefix}.json is not valid JSON: ${describeError(err)}`);
    }
  }
  if (group.prefix !== group.key.slice(env.keyPrefix.length)) meta = { ...meta, originalKey: group.prefix };

  const captions: Caption[] = [];
  if (group.caption !== null) {
    captions.push(captionFromBytes(group.caption, 'web'));
  } else if (typeof meta['caption'] === 'string') {
    captions.push(captionFromString(meta['caption'], 'web'));
  }

  let imageBytes: Buffer | null = null;
  if (group.image === null) {
    fail('image_missing', `sample ${group.prefix} in ${absPath} has no image member (.jpg, .jpeg, .png or .webp)`);
  } else if (group.image.bytes.length === 0) {
    fail('image_empty', `image member ${group.image.member} in ${absPath} is empty (0 bytes)`);
  } else if (group.failure === null || group.failure.code === 'json_invalid' || group.failure.code === 'key_duplicate' || group.failure.code === 'key_collision') {
    imageBytes = group.image.bytes;
  }

  return {
    key: group.key,
    source: env.source,
    imageRef: `tar:${absPath}#${group.image?.member ?? group.prefix}`,
    imageBytes,
    captions,
    boxes: boxesFromMeta(meta),
    meta,
    fate: fateOf(group.failure),
  };
}

const metaBoxSchema = z.object({ label: z.string().min(1), box: z.tuple([z.number(), z.number(), z.number(), z.number()]) });

/**
 * Boxes carried in `key.json` as `boxes: [{label, box: [x1, y1, x2, y2]}]` in pixels (our convention for
 * detection-annotated shards; the shapes demo writes it). Entries that do not have that shape, or whose
 * corners are out of order, are left out.
 */
function boxesFromMeta(meta: Record<string, unknown>): Box[] {
  const raw = meta['boxes'];
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((entry): Box[] => {
    const parsed = metaBoxSchema.safeParse(entry);
    if (!parsed.success) return [];
    const [x1, y1, x2, y2] = parsed.data.box;
    return x2 > x1 && y2 > y1 ? [{ label: parsed.data.label, box: [x1, y1, x2, y2] }] : [];
  });
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    length += chunk.length;
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // discard
  }
}

function describeReadError(
  err: unknown,
  absPath: string,
  entries: number,
  reading: string | null,
  lastMember: string | null,
): { code: FailureCode; message: string } {
  const text = describeError(err);
  if (err instanceof StorageError) {
    // A remote shard whose connection kept dropping, or that changed: the samples before stay.
    const where = reading !== null ? `inside member ${reading}` : lastMember !== null ? `after member ${lastMember}` : 'at its start';
    return { code: err.kind === 'denied' ? 'storage_denied' : 'storage_interrupted', message: `shard ${absPath} stopped ${where}: ${text}` };
  }
  if (entries === 0) {
    return { code: 'shard_unreadable', message: `shard ${absPath} is not a readable tar file: ${text}` };
  }
  const where = reading !== null ? `inside member ${reading}` : lastMember !== null ? `after member ${lastMember}` : 'at its start';
  if (/unexpected end of (data|file)/i.test(text)) {
    return { code: 'tar_truncated', message: `shard ${absPath} is cut off ${where}: ${text}` };
  }
  return { code: 'tar_corrupt', message: `shard ${absPath} is damaged ${where}: ${text}` };
}
