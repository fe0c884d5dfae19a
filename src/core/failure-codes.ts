/**
 * Every failure code a sample can be recorded with, in one list: the code, the stage that records it,
 * whether a later run tries again (resumable), and what it means. `FailureCode` is the type of
 * `SampleFailure.code`, so a code that is not listed here does not compile; the README table
 * ("Bad input never stops a run") is generated from this list (`npm run docs:failures`) and a test checks it.
 *
 * Stages: `source` (readers and URL downloads), `decode`, `record` (keys that clash across sources),
 * `filter`, `captioner`, `synth` (a failed instruction row; the sample itself stays ok), `export` (a record
 * or sample one export left out, in `export_records` or `export_left_out`), and `image-ref`
 * (reading a recorded sample's image back for a re-export or refilter). The LLM codes are recorded by
 * synthesis on the instruction row (the next run asks again when the code is resumable) and, for the
 * resumable ones only, by the OpenAI captioner on the sample it holds back for the next run (a caption
 * request that failed for good just leaves that caption out).
 */

export type FailureStage = 'source' | 'decode' | 'record' | 'filter' | 'captioner' | 'synth' | 'export' | 'image-ref';

export interface FailureCodeEntry {
  /** The code as stored (`http_<status>` stands for every `http_404`, `http_503`, ...). */
  code: string;
  stages: readonly FailureStage[];
  /** True when the next run tries the work again instead of keeping the failure. */
  resumable: boolean;
  description: string;
}

const LLM: readonly FailureStage[] = ['captioner', 'synth'];

export const FAILURE_CODES = [
  // Readers.
  { code: 'shard_missing', stages: ['source', 'image-ref'], resumable: false, description: 'a WebDataset shard named by the source does not exist' },
  { code: 'shard_unreadable', stages: ['source', 'image-ref'], resumable: false, description: 'a shard that is not a readable tar file (or cannot be opened)' },
  { code: 'tar_truncated', stages: ['source'], resumable: false, description: 'a shard cut off partway: the samples before the cut are kept' },
  { code: 'tar_corrupt', stages: ['source'], resumable: false, description: 'a damaged tar header or member in a shard' },
  { code: 'json_invalid', stages: ['source'], resumable: false, description: "a sample's `.json` member (or a JSON record) that does not parse" },
  { code: 'member_too_large', stages: ['source'], resumable: false, description: 'a tar member other than the image over `decode.maxBytes`, refused from its size' },
  { code: 'caption_unreadable', stages: ['source'], resumable: false, description: "a folder source's `.txt` sidecar that cannot be read" },
  { code: 'manifest_unreadable', stages: ['source'], resumable: false, description: 'a manifest, LLaVA file or Parquet row group that cannot be read past some point' },
  { code: 'row_invalid', stages: ['source'], resumable: false, description: 'a manifest row, LLaVA record or COCO image entry with a missing or wrong field' },
  {
    code: 'key_duplicate',
    stages: ['source', 'record'],
    resumable: false,
    description:
      "a key seen again in one shard set, manifest key column or COCO `images` list (recorded as `KEY__dupN`), or a key another source already used (recorded as `KEY__<source name>`; set a distinct `keyPrefix` per source to keep both). LLaVA files reuse ids on purpose: there the record is kept, ok, as `ID__dupN`",
  },
  {
    code: 'key_collision',
    stages: ['source'],
    resumable: false,
    description: 'two different input keys that become the same key once cleaned (`a b` and `a_b`); the later one is recorded as `KEY__dupN` and the message names both',
  },
  {
    code: 'annotation_unknown_image',
    stages: ['source'],
    resumable: false,
    description:
      'COCO annotations of an image id no `images` list has (one record per id); a bad annotation of a known image does not fail it, it is listed under `meta.droppedAnnotations`',
  },
  { code: 'text_only', stages: ['source'], resumable: false, description: 'a LLaVA record without an image, with `textOnly: fail` (the default `skip` drops it instead)' },
  // Local image files (manifests, LLaVA, COCO, folders).
  { code: 'image_missing', stages: ['source', 'decode', 'export', 'image-ref'], resumable: false, description: 'no image member or file, or no image bytes to decode or to copy into an export' },
  {
    code: 'image_unreadable',
    stages: ['source', 'image-ref'],
    resumable: false,
    description: 'not a regular file (a FIFO, `/dev/zero`, a socket: never opened) or a permission or I/O error',
  },
  {
    code: 'image_path_invalid',
    stages: ['source', 'image-ref'],
    resumable: false,
    description: "a path that leads out of the source's folders (see [Security defaults and limits](#security-defaults-and-limits))",
  },
  // Remote inputs (s3://, https://): shards, manifests' images, LLaVA and COCO images.
  {
    code: 'storage_denied',
    stages: ['source', 'image-ref'],
    resumable: false,
    description: 'an `s3://` or `https://` shard or image the credentials may not read (HTTP 401/403, no credentials found)',
  },
  {
    code: 'storage_interrupted',
    stages: ['source', 'image-ref'],
    resumable: false,
    description:
      'an `s3://` or `https://` shard or image whose connection kept dropping after every resumed read, or that was replaced while it was read (new ETag): the samples before are kept, a later run reads the rest of the shard',
  },
  // URL downloads.
  { code: 'url_invalid', stages: ['source'], resumable: false, description: 'not a URL, or a scheme other than `http:` / `https:` (nothing is requested)' },
  { code: 'timeout', stages: ['source'], resumable: false, description: 'a download gave no complete answer within `download.timeoutMs` (connect, headers and body), after every retry' },
  { code: 'connection_failed', stages: ['source'], resumable: false, description: 'a download whose DNS lookup, connection or TLS failed, or whose body was cut off' },
  { code: 'http_<status>', stages: ['source'], resumable: false, description: 'a download answered with an error status, e.g. `http_404`, `http_503` (408, 429 and 5xx after every retry)' },
  { code: 'redirect_invalid', stages: ['source'], resumable: false, description: 'a redirect to another scheme (`ftp:`, `file:`, `data:`) or an unparseable `Location`' },
  { code: 'too_many_redirects', stages: ['source'], resumable: false, description: 'more than `download.maxRedirects` hops, or a redirect loop' },
  { code: 'too_large', stages: ['source'], resumable: false, description: 'a download over `download.maxBytes` (from `Content-Length`, or the read is stopped)' },
  { code: 'not_an_image', stages: ['source'], resumable: false, description: 'a download whose `Content-Type` or first bytes are not an image' },
  { code: 'robots_disallowed', stages: ['source'], resumable: false, description: 'an `X-Robots-Tag` opt-out (`noai`, `noimageai`, `noindex`, `noimageindex`)' },
  {
    code: 'address_disallowed',
    stages: ['source'],
    resumable: false,
    description: 'a download from a loopback, private, link-local or other non-public address, refused by default',
  },
  // Decoding.
  { code: 'image_empty', stages: ['decode'], resumable: false, description: 'a zero-byte image' },
  { code: 'image_truncated', stages: ['decode'], resumable: false, description: 'the image ends early' },
  { code: 'image_unsupported', stages: ['decode'], resumable: false, description: 'not an image (e.g. text named `.jpg`), or a vector format' },
  {
    code: 'image_too_large',
    stages: ['source', 'decode', 'image-ref'],
    resumable: false,
    description:
      "more pixels than `decode.maxPixels` (decompression bomb guard), or more bytes than `decode.maxBytes` (refused from the file's or tar member's size, never read)",
  },
  { code: 'image_corrupt', stages: ['decode'], resumable: false, description: 'any other decoding failure' },
  // Models.
  { code: 'score_failed', stages: ['filter'], resumable: false, description: 'the filter models could not score this image' },
  { code: 'caption_failed', stages: ['captioner'], resumable: false, description: 'the captioner could not caption this image' },
  // The LLM (OpenAI-compatible API).
  { code: 'timeout', stages: LLM, resumable: true, description: 'an LLM request got no answer within `timeoutMs`, or HTTP 408, after every retry' },
  { code: 'rate_limited', stages: LLM, resumable: true, description: 'HTTP 429 after every retry' },
  { code: 'server_error', stages: LLM, resumable: true, description: 'HTTP 5xx after every retry' },
  { code: 'connection_error', stages: LLM, resumable: true, description: 'the connection dropped or the answer was cut off, after every retry' },
  { code: 'bad_response', stages: LLM, resumable: true, description: 'an answer that is not a chat completion (malformed JSON, no choices), after every retry' },
  { code: 'key_rejected', stages: LLM, resumable: true, description: 'HTTP 401/403: the API key was refused; the client stops at once' },
  { code: 'server_unreachable', stages: LLM, resumable: true, description: 'the server cannot be reached (refused, DNS, TLS); the client stops' },
  { code: 'budget_exhausted', stages: LLM, resumable: true, description: '`--max-cost` was reached: the request was not sent' },
  { code: 'aborted', stages: LLM, resumable: true, description: 'the run was interrupted before the request was sent or answered' },
  { code: 'http_409', stages: LLM, resumable: true, description: 'HTTP 409 (a conflict, retried as OpenAI\'s SDK does) after every retry' },
  { code: 'http_401', stages: ['synth'], resumable: true, description: 'stored by versions before `key_rejected` for a refused key: asked again' },
  { code: 'http_403', stages: ['synth'], resumable: true, description: 'stored by versions before `key_rejected` for a refused key: asked again' },
  { code: 'http_<status>', stages: ['synth'], resumable: false, description: 'any other HTTP error status of the LLM API (400, 404, 422, ...): not retried' },
  { code: 'finish_length', stages: ['synth'], resumable: false, description: 'the answer was cut off at `max_tokens`' },
  { code: 'content_filter', stages: ['synth'], resumable: false, description: 'the provider withheld the answer (`finish_reason: content_filter`)' },
  { code: 'batch_incomplete', stages: ['synth'], resumable: true, description: 'Batch API mode: the batch was still running after `synth.batch.maxWaitMs` (or gave no answer); the next run collects it' },
  // Exports (a record or sample an export leaves out; the sample itself stays ok and the other exports write it).
  { code: 'no_caption', stages: ['export'], resumable: false, description: 'a caption export (WebDataset without conversation options): the sample has no caption to train on' },
  { code: 'no_conversation', stages: ['export'], resumable: false, description: 'a conversation export: no valid record of the tasks it exports' },
  { code: 'conversation_invalid', stages: ['export'], resumable: false, description: 'a record whose conversations are not a list of turns `{from, value}` (from: human or gpt)' },
  { code: 'conversation_empty', stages: ['export'], resumable: false, description: 'a record with no turns' },
  { code: 'conversation_empty_turn', stages: ['export'], resumable: false, description: 'a turn with no text' },
  { code: 'conversation_alternation', stages: ['export'], resumable: false, description: 'turns that do not alternate human, gpt starting with human, or that end with a human turn' },
  { code: 'image_token_position', stages: ['export'], resumable: false, description: '`<image>` in a turn other than the first human turn' },
  { code: 'image_token_count', stages: ['export'], resumable: false, description: '`<image>` more than once, or `<image>` for a sample without an image' },
  { code: 'text_special_token', stages: ['export'], resumable: false, description: "a turn whose text holds one of the tokenizer's special tokens" },
  { code: 'text_video_token', stages: ['export'], resumable: false, description: "a turn holding Qwen's video placeholder, which its finetune code reads as a video" },
  { code: 'assistant_token_in_text', stages: ['export'], resumable: false, description: "`qwen2_vl`: \"assistant\" tokenized in a user or system message, which Qwen's finetune code would take for an answer" },
  { code: 'separator_in_text', stages: ['export'], resumable: false, description: "`vicuna_v1`: a turn holding the template's separator (`</s>`), which would cut the conversation" },
  { code: 'region_invalid', stages: ['export'], resumable: false, description: 'a malformed region placeholder, a box outside the image, or a region in a sample without an image' },
  { code: 'template_turns', stages: ['export'], resumable: false, description: '`plain`: not exactly one human and one gpt turn' },
  { code: 'template_needs_image', stages: ['export'], resumable: false, description: '`plain`: the sample has no image' },
  { code: 'template_error', stages: ['export'], resumable: false, description: 'a chat template that fails to render, or a tokenizer without the BOS token it needs' },
  { code: 'template_not_incremental', stages: ['export'], resumable: false, description: 'a chat template whose rendering up to a turn is not a prefix of the next (its loss mask cannot be found)' },
  { code: 'template_rewrites_turn', stages: ['export'], resumable: false, description: 'a chat template that does not render a turn verbatim' },
  { code: 'mask_mismatch', stages: ['export'], resumable: false, description: 'the trained tokens do not decode to the answers (a loss-mask check failed)' },
  { code: 'image_too_small', stages: ['export'], resumable: false, description: '`qwen2_vl`: a side under 28 px, which Qwen2-VL image processors refuse or resize differently' },
  { code: 'image_aspect_ratio', stages: ['export'], resumable: false, description: '`qwen2_vl`: an aspect ratio over 200, which Qwen2-VL image processors refuse' },
  { code: 'image_size_unsupported', stages: ['export'], resumable: false, description: '`qwen2_vl`: the image cannot be sized for the model' },
  { code: 'over_length', stages: ['export'], resumable: false, description: 'more tokens than `maxLength` with `truncation: drop` (the record is dropped, not failed)' },
  { code: 'truncated_no_target', stages: ['export'], resumable: false, description: 'truncating to `maxLength` leaves no whole answer to train on' },
  { code: 'truncated_image', stages: ['export'], resumable: false, description: "truncating to `maxLength` would cut the image's tokens" },
  { code: 'image_write_failed', stages: ['export'], resumable: false, description: "a JSON export's image file that cannot be written (its name refused, a folder in its place)" },
  // Reading a recorded image back.
  { code: 'image_changed', stages: ['image-ref'], resumable: false, description: 'the image file no longer matches the sha256 recorded when it was first read' },
  { code: 'image_ref_invalid', stages: ['image-ref'], resumable: false, description: "a recorded image reference that names no readable file or tar member" },
] as const satisfies readonly FailureCodeEntry[];

type ListedCode = (typeof FAILURE_CODES)[number]['code'];

/** A failure code: one of the list, with `http_<status>` as any `http_404`, `http_503`, ... */
export type FailureCode = Exclude<ListedCode, 'http_<status>'> | `http_${number}`;

/** Codes of failed LLM work (a captioner-held sample, an instruction row) that the next run tries again. */
export const RESUMABLE_LLM_CODES: ReadonlySet<string> = new Set<string>(
  FAILURE_CODES.filter((entry) => entry.resumable && entry.stages.some((stage) => stage === 'synth')).map((entry) => entry.code),
);

/** Whether the next run tries again failed LLM work of this code. */
export function isResumableLlmCode(code: string): code is FailureCode {
  return RESUMABLE_LLM_CODES.has(code);
}

/** LLM failure codes that stop the client: the one line that says why, instead of a warning per request. */
export const STOP_CODES: ReadonlySet<string> = new Set<FailureCode>(['key_rejected', 'server_unreachable']);

/** The entry of a code stored by `stage` (`http_404` finds `http_<status>`), or undefined for a code not listed. */
export function failureCodeEntry(code: string, stage: FailureStage): FailureCodeEntry | undefined {
  const find = (c: string) => FAILURE_CODES.find((entry) => entry.code === c && entry.stages.some((s) => s === stage));
  return find(code) ?? (/^http_\d+$/.test(code) ? find('http_<status>') : undefined);
}

/** The README table of failure codes, as markdown (`npm run docs:failures` writes it). */
export function failureCodeTable(): string {
  const rows = FAILURE_CODES.map((e) => `| \`${e.code}\` | ${e.stages.join(', ')} | ${e.resumable ? 'yes' : 'no'} | ${e.description} |`);
  return ['| code | stage | next run retries | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
