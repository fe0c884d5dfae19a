/**
 * A local OpenAI-compatible server for tests and benchmarks: real sockets (node:http on port 0), spoken
 * to by the real `openai` client. It answers chat completions deterministically from the request (it
 * reads the `<scene>` context and echoes its objects in the format the few-shot answers use, or writes
 * a caption for an image), reports usage, records every request with its arrival time, and can be
 * scripted per request: latency, HTTP errors with headers (429 + Retry-After), hanging until the client
 * gives up, dropped connections, malformed bodies, truncated (`length`) or filtered answers, leaking or
 * adversarial content, and bodies that break off (a `Content-Length` promising more than is sent before
 * the socket is destroyed) or stall after the headers. It also enforces an optional requests-per-window limit like a real provider, and
 * implements the minimal `/v1/files` and `/v1/batches` endpoints that batch mode uses.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  /** Position among chat completion requests (live and batch), from 0. */
  index: number;
  /** Arrival time, `performance.now()` milliseconds. */
  at: number;
  path: string;
  /** The parsed JSON body. */
  body: ChatBody;
  /** sha256 of the body's canonical JSON (keys sorted): the same request sent twice has the same hash. */
  hash: string;
  authorization: string | null;
  /** True for lines of a batch. */
  viaBatch: boolean;
}

export interface ChatBody {
  model: string;
  messages: { role: string; content: string | { type: string; text?: string; image_url?: { url: string } }[] }[];
  temperature?: number;
  max_tokens?: number;
  seed?: number;
  [key: string]: unknown;
}

export type Behaviour =
  | { kind: 'answer'; content?: string; finishReason?: 'stop' | 'length' | 'content_filter'; noUsage?: boolean; latencyMs?: number }
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: unknown; latencyMs?: number }
  | { kind: 'hang' }
  | { kind: 'drop' }
  | { kind: 'malformed'; text?: string; contentType?: string }
  /** A 200 whose `Content-Length` promises `missingBytes` (default 500) more than is sent; then the socket is destroyed. */
  | { kind: 'cut'; missingBytes?: number }
  /** A 200 with headers and the first part of the body, then nothing (until the client gives up). */
  | { kind: 'stall' };

export interface FakeServerOptions {
  /** Delay before every answer, in milliseconds. */
  latencyMs?: number;
  /** Provider-style limit: more than `requests` chat requests within `windowMs` get a 429 with Retry-After. */
  limit?: { requests: number; windowMs: number };
  /** Per-request behaviour; return nothing for the default answer. */
  script?: (request: ReceivedRequest) => Behaviour | null | undefined | void;
  /** Batch polls answered `in_progress` before a batch completes. Default 1. */
  batchPollsBeforeDone?: number;
  /** Answer every request, of any path, with this status (a server that refuses the key: 401, 403). */
  refuseAll?: number;
  /** The first this many file downloads (`/v1/files/ID/content`) send headers and half the file, then stall. */
  stalledDownloads?: number;
}

interface StoredFile {
  id: string;
  filename: string;
  purpose: string;
  content: string;
  createdAt: number;
}

interface StoredBatch {
  id: string;
  inputFileId: string;
  status: string;
  polls: number;
  outputFileId: string | null;
  errorFileId: string | null;
  counts: { total: number; completed: number; failed: number };
  createdAt: number;
  metadata: Record<string, string>;
}

/** Keys sorted at every level, so two serialisations of one request compare equal. */
function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${sortedJson((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The identity of a chat request body as this server sees it. */
export function bodyHash(body: unknown): string {
  return createHash('sha256').update(sortedJson(body)).digest('hex');
}

export function tokensOf(text: string): number {
  return Math.ceil(text.length / 4);
}

function contentText(content: ChatBody['messages'][number]['content']): string {
  if (typeof content === 'string') return content;
  return content.map((part) => part.text ?? '').join('');
}

/** Prompt tokens as this server counts them: a quarter of the characters of every message. */
export function promptTokensOf(body: ChatBody): number {
  return tokensOf(body.messages.map((m) => contentText(m.content)).join(''));
}

/** The context of the last user message: captions (before the blank line) and box labels (after it). */
export function sceneOf(body: ChatBody): { captions: string[]; labels: string[] } {
  const last = [...body.messages].reverse().find((m) => m.role === 'user');
  const text = last ? contentText(last.content) : '';
  const inner = /<scene>\n([\s\S]*)\n<\/scene>/.exec(text)?.[1] ?? '';
  const [captionPart = '', boxPart = ''] = inner.split('\n\n');
  const captions = captionPart.split('\n').filter((line) => line.trim() !== '' && !/^[^:]+: \[/.test(line));
  const labels = (boxPart || (captions.length === 0 ? captionPart : ''))
    .split('\n')
    .map((line) => /^(.+?): \[/.exec(line)?.[1])
    .filter((label): label is string => label !== undefined);
  return { captions, labels };
}

function firstImageUrl(body: ChatBody): string | null {
  for (const message of body.messages) {
    if (typeof message.content === 'string') continue;
    for (const part of message.content) if (part.type === 'image_url' && part.image_url) return part.image_url.url;
  }
  return null;
}

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon'];

/** The answer this server gives when not scripted otherwise. */
export function defaultAnswer(body: ChatBody): string {
  const image = firstImageUrl(body);
  if (image !== null) {
    const digest = createHash('sha256').update(`${image}\0${body.seed ?? 0}`).digest();
    return `a picture of a ${COLORS[digest[0]! % COLORS.length]} ${SHAPES[digest[1]! % SHAPES.length]}`;
  }
  const { captions, labels } = sceneOf(body);
  const first = (captions[0] ?? labels.join(' and ')).replace(/[.\s]+$/, '');
  const fewShot = body.messages.find((m) => m.role === 'assistant');
  const qa = fewShot ? contentText(fewShot.content).startsWith('Question:') : true;
  if (!qa) {
    const objects = labels.length > 0 ? ` In view: ${[...new Set(labels)].join(', ')}.` : '';
    return `The picture shows ${first}.${objects} The scene is simple and clearly lit.`;
  }
  const last = (captions[captions.length - 1] ?? first).replace(/[.\s]+$/, '');
  return [
    'Question:',
    'What does the image show?',
    '===',
    'Answer:',
    `It shows ${first}.`,
    '===',
    'Question:',
    'Can you say more about the scene?',
    '===',
    'Answer:',
    `Yes: it is ${last}.`,
  ].join('\n');
}

export class FakeLlmServer {
  readonly requests: ReceivedRequest[] = [];
  /** Every HTTP request, of any path (for checking what the client sent). */
  readonly rawRequests: { at: number; method: string; path: string; authorization: string | null }[] = [];
  /** 429s produced by the window limit (not by the script). */
  limited = 0;
  /** Chat requests being answered now, and the most at once. */
  inFlight = 0;
  maxInFlight = 0;
  latencyMs: number;
  script: FakeServerOptions['script'];
  private readonly limit: FakeServerOptions['limit'];
  private readonly accepted: number[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly files = new Map<string, StoredFile>();
  private readonly batches = new Map<string, StoredBatch>();
  private readonly batchPollsBeforeDone: number;
  private readonly refuseAll: number | null;
  private stalledDownloads: number;
  private nextId = 1;
  private server!: Server;
  baseURL = '';

  private constructor(options: FakeServerOptions) {
    this.latencyMs = options.latencyMs ?? 0;
    this.script = options.script;
    this.limit = options.limit;
    this.batchPollsBeforeDone = options.batchPollsBeforeDone ?? 1;
    this.refuseAll = options.refuseAll ?? null;
    this.stalledDownloads = options.stalledDownloads ?? 0;
  }

  static async start(options: FakeServerOptions = {}): Promise<FakeLlmServer> {
    const server = new FakeLlmServer(options);
    await server.listen();
    return server;
  }

  private listen(): Promise<void> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: String(err) } }));
      });
    });
    this.server.keepAliveTimeout = 60_000;
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        const { port } = this.server.address() as AddressInfo;
        this.baseURL = `http://127.0.0.1:${port}/v1`;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Chat requests sent live (not through a batch). */
  liveRequests(): ReceivedRequest[] {
    return this.requests.filter((r) => !r.viaBatch);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const authorization = req.headers.authorization ?? null;
    this.rawRequests.push({ at: performance.now(), method: req.method ?? '', path, authorization });
    if (this.refuseAll !== null) return json(res, this.refuseAll, { error: { message: 'Incorrect API key provided', code: 'invalid_api_key' } });
    if (req.method === 'POST' && path === '/v1/chat/completions') return this.chat(raw, authorization, res);
    if (req.method === 'POST' && path === '/v1/files') return this.uploadFile(req, raw, res);
    const content = /^\/v1\/files\/([^/]+)\/content$/.exec(path);
    if (req.method === 'GET' && content) {
      const file = this.files.get(content[1]!);
      if (!file) return json(res, 404, { error: { message: 'no such file' } });
      if (this.stalledDownloads > 0) {
        this.stalledDownloads--;
        const whole = Buffer.from(file.content);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(whole.length) });
        res.write(whole.subarray(0, Math.floor(whole.length / 2)));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(file.content);
      return;
    }
    if (req.method === 'POST' && path === '/v1/batches') return this.createBatch(raw, res);
    const batch = /^\/v1\/batches\/([^/]+)(\/cancel)?$/.exec(path);
    if (batch) return this.batchStatus(batch[1]!, Boolean(batch[2]), res);
    json(res, 404, { error: { message: `no route ${req.method} ${path}` } });
  }

  private record(body: ChatBody, _text: string, authorization: string | null, viaBatch: boolean): ReceivedRequest {
    const received: ReceivedRequest = {
      index: this.requests.length,
      at: performance.now(),
      path: '/v1/chat/completions',
      body,
      hash: bodyHash(body),
      authorization,
      viaBatch,
    };
    this.requests.push(received);
    return received;
  }

  private overLimit(now: number): number | null {
    if (!this.limit) return null;
    while (this.accepted.length > 0 && now - this.accepted[0]! >= this.limit.windowMs) this.accepted.shift();
    if (this.accepted.length >= this.limit.requests) return this.limit.windowMs - (now - this.accepted[0]!);
    this.accepted.push(now);
    return null;
  }

  /** What to send for one chat request (live or batch). */
  private respond(request: ReceivedRequest): { behaviour: Behaviour; completion?: object } {
    const behaviour = this.script?.(request) ?? { kind: 'answer' };
    if (behaviour.kind !== 'answer' && behaviour.kind !== 'cut' && behaviour.kind !== 'stall') return { behaviour };
    const content = (behaviour.kind === 'answer' ? behaviour.content : undefined) ?? defaultAnswer(request.body);
    const promptTokens = promptTokensOf(request.body);
    const completionTokens = tokensOf(content);
    const completion = {
      id: `chatcmpl-${request.index}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.body.model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: (behaviour.kind === 'answer' && behaviour.finishReason) || 'stop' }],
      ...(behaviour.kind === 'answer' && behaviour.noUsage ? {} : { usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens } }),
    };
    return { behaviour, completion };
  }

  private async chat(raw: Buffer, authorization: string | null, res: ServerResponse): Promise<void> {
    const text = raw.toString('utf8');
    const body = JSON.parse(text) as ChatBody;
    const request = this.record(body, text, authorization, false);
    const wait = this.overLimit(request.at);
    if (wait !== null) {
      this.limited++;
      return json(res, 429, { error: { message: 'rate limit reached for requests', type: 'requests' } }, { 'retry-after-ms': String(Math.ceil(wait)) });
    }
    const { behaviour, completion } = this.respond(request);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.on('close', () => this.inFlight--);
    if (behaviour.kind === 'hang') return; // never answer: the client times out and closes the socket
    if (behaviour.kind === 'drop') {
      res.socket?.destroy();
      return;
    }
    const latency = 'latencyMs' in behaviour && behaviour.latencyMs !== undefined ? behaviour.latencyMs : this.latencyMs;
    if (latency > 0) await new Promise((resolve) => setTimeout(resolve, latency));
    if (behaviour.kind === 'cut' || behaviour.kind === 'stall') {
      const whole = Buffer.from(JSON.stringify(completion ?? { choices: [] }));
      const missing = behaviour.kind === 'cut' ? (behaviour.missingBytes ?? 500) : 0;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(whole.length + missing) });
      // Half the body reaches the client, so it is past the headers and reading when the fault comes.
      res.write(whole.subarray(0, Math.floor(whole.length / 2)));
      if (behaviour.kind === 'cut') setTimeout(() => res.socket?.destroy(), 20);
      return;
    }
    if (behaviour.kind === 'malformed') {
      res.writeHead(200, { 'content-type': behaviour.contentType ?? 'application/json' });
      res.end(behaviour.text ?? '{"choices": [{"message": {"content": "cut');
      return;
    }
    if (behaviour.kind === 'status') {
      return json(res, behaviour.status, behaviour.body ?? { error: { message: `scripted ${behaviour.status}` } }, behaviour.headers);
    }
    json(res, 200, completion);
  }

  private async uploadFile(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    // Let the platform parse the multipart body, as any server framework would.
    const form = await new Request('http://localhost/upload', {
      method: 'POST',
      headers: { 'content-type': req.headers['content-type'] ?? '' },
      body: raw,
    }).formData();
    const file = form.get('file');
    if (!file || typeof file === 'string') return json(res, 400, { error: { message: 'expected a file part' } });
    const stored: StoredFile = {
      id: `file-${this.nextId++}`,
      filename: file.name,
      purpose: String(form.get('purpose') ?? ''),
      content: await file.text(),
      createdAt: Math.floor(Date.now() / 1000),
    };
    this.files.set(stored.id, stored);
    json(res, 200, fileObject(stored));
  }

  /** A file uploaded with purpose `batch`, by id (for checking the request file the client wrote). */
  file(id: string): StoredFile | undefined {
    return this.files.get(id);
  }

  uploadedFiles(): StoredFile[] {
    return [...this.files.values()];
  }

  private createBatch(raw: Buffer, res: ServerResponse): void {
    const body = JSON.parse(raw.toString('utf8')) as { input_file_id: string; endpoint: string; completion_window: string; metadata?: Record<string, string> };
    if (!this.files.has(body.input_file_id)) return json(res, 400, { error: { message: `unknown input_file_id ${body.input_file_id}` } });
    if (body.endpoint !== '/v1/chat/completions') return json(res, 400, { error: { message: `unsupported endpoint ${body.endpoint}` } });
    const batch: StoredBatch = {
      id: `batch_${this.nextId++}`,
      inputFileId: body.input_file_id,
      status: 'validating',
      polls: 0,
      outputFileId: null,
      errorFileId: null,
      counts: { total: 0, completed: 0, failed: 0 },
      createdAt: Math.floor(Date.now() / 1000),
      metadata: body.metadata ?? {},
    };
    this.batches.set(batch.id, batch);
    json(res, 200, batchObject(batch));
  }

  private batchStatus(id: string, cancel: boolean, res: ServerResponse): void {
    const batch = this.batches.get(id);
    if (!batch) return json(res, 404, { error: { message: `no batch ${id}` } });
    if (cancel && batch.status !== 'completed') batch.status = 'cancelled';
    if (!cancel && (batch.status === 'validating' || batch.status === 'in_progress')) {
      batch.polls++;
      if (batch.polls > this.batchPollsBeforeDone) this.runBatch(batch);
      else batch.status = 'in_progress';
    }
    json(res, 200, batchObject(batch));
  }

  private runBatch(batch: StoredBatch): void {
    const input = this.files.get(batch.inputFileId)!.content;
    const output: string[] = [];
    const errors: string[] = [];
    for (const line of input.split('\n')) {
      if (line.trim() === '') continue;
      const entry = JSON.parse(line) as { custom_id: string; method: string; url: string; body: ChatBody };
      batch.counts.total++;
      const request = this.record(entry.body, JSON.stringify(entry.body), null, true);
      const { behaviour, completion } = this.respond(request);
      const id = `batch_req_${request.index}`;
      if (behaviour.kind === 'answer') {
        batch.counts.completed++;
        output.push(JSON.stringify({ id, custom_id: entry.custom_id, response: { status_code: 200, request_id: id, body: completion }, error: null }));
      } else if (behaviour.kind === 'status') {
        batch.counts.failed++;
        errors.push(
          JSON.stringify({
            id,
            custom_id: entry.custom_id,
            response: { status_code: behaviour.status, request_id: id, body: behaviour.body ?? { error: { message: `scripted ${behaviour.status}` } } },
            error: null,
          }),
        );
      } else {
        batch.counts.failed++;
        errors.push(JSON.stringify({ id, custom_id: entry.custom_id, response: null, error: { code: 'server_error', message: `scripted ${behaviour.kind}` } }));
      }
    }
    const now = Math.floor(Date.now() / 1000);
    if (output.length > 0) {
      const file: StoredFile = { id: `file-${this.nextId++}`, filename: `${batch.id}_output.jsonl`, purpose: 'batch_output', content: `${output.join('\n')}\n`, createdAt: now };
      this.files.set(file.id, file);
      batch.outputFileId = file.id;
    }
    if (errors.length > 0) {
      const file: StoredFile = { id: `file-${this.nextId++}`, filename: `${batch.id}_errors.jsonl`, purpose: 'batch_output', content: `${errors.join('\n')}\n`, createdAt: now };
      this.files.set(file.id, file);
      batch.errorFileId = file.id;
    }
    batch.status = 'completed';
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function fileObject(file: StoredFile): object {
  return { id: file.id, object: 'file', bytes: Buffer.byteLength(file.content), created_at: file.createdAt, filename: file.filename, purpose: file.purpose, status: 'processed' };
}

function batchObject(batch: StoredBatch): object {
  return {
    id: batch.id,
    object: 'batch',
    endpoint: '/v1/chat/completions',
    errors: null,
    input_file_id: batch.inputFileId,
    completion_window: '24h',
    status: batch.status,
    output_file_id: batch.outputFileId,
    error_file_id: batch.errorFileId,
    created_at: batch.createdAt,
    request_counts: batch.counts,
    metadata: batch.metadata,
  };
}
