/**
 * Downloading images over HTTP(S) for manifests whose image column holds URLs, the way img2dataset does
 * it, with every failure turned into a per-sample code (`DownloadFailureCode`; what each means is in the
 * failure-code registry, `core/failure-codes.ts`, stage `source`, and the README table made from it).
 *
 * Destinations (SSRF): unless `allowPrivateNetworks` is set, every hop (the first request and each redirect)
 * is checked on the address it connects to (`address-policy.ts`): an IP literal before anything is sent,
 * a host name in the agent's `lookup`, which drops disallowed answers and hands the connection only the
 * addresses it checked, so a DNS answer that changes between check and connect cannot slip through.
 *
 * Transient failures are retried by the shared retry policy (`backends/retry-policy.ts`, with the numbers of
 * `downloadRetryPolicy`): timeouts, dropped or refused connections, 408, 429 and 5xx, with exponential
 * backoff and jitter. A `Retry-After` header (seconds or an HTTP date) sets the wait instead, up to
 * `maxRetryDelayMs`; a server asking for a longer wait gets the failure right away.
 *
 * Concurrency: at most `concurrency` requests in flight in all, and at most `perHost` to one host name
 * (politeness). A request waits for its host's slot before it takes a global one, so requests queued
 * behind a busy host never hold slots other hosts could use. Redirects are followed by hand (never to a
 * scheme other than http/https) inside the first host's slot. Backoff waits hold no slot.
 *
 * Node's `http`/`https` are used directly rather than `fetch`: repeated `X-Robots-Tag` headers must be seen
 * one by one (fetch joins them with commas, which changes what a `bot: directives` value applies to), and
 * socket errors keep their codes.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import PQueue from 'p-queue';
import { z } from 'zod';
import { decideRetry, isRetryableStatus, isTransientSocketError, parseRetryAfter, sleep, type RetryPolicy } from '../backends/retry-policy.js';
import { describeError, VlcurateError } from '../core/errors.js';
import { disallowedReason, isAddressLiteral } from './address-policy.js';

export type DownloadFailureCode =
  | 'url_invalid'
  | 'timeout'
  | 'connection_failed'
  | `http_${number}`
  | 'redirect_invalid'
  | 'too_many_redirects'
  | 'too_large'
  | 'not_an_image'
  | 'robots_disallowed'
  | 'address_disallowed';

/** The `X-Robots-Tag` directives img2dataset refuses by default. */
export const DEFAULT_DISALLOWED_DIRECTIVES = ['noai', 'noimageai', 'noindex', 'noimageindex'] as const;

export const fetchOptionsSchema = z
  .object({
    /** Requests in flight at once, over all hosts. Default 16. */
    concurrency: z.number().int().min(1).default(16),
    /** Requests in flight at once to one host name (politeness). Default 4. */
    perHost: z.number().int().min(1).default(4),
    /** Per request (connect, headers and the whole body), in milliseconds. Default 10000 (img2dataset's 10 s). */
    timeoutMs: z.number().int().min(1).default(10_000),
    /** Retries after a transient failure (timeout, connection error, 408, 429, 5xx). Default 2. */
    retries: z.number().int().min(0).default(2),
    /** First backoff wait in milliseconds; doubles each retry, with jitter. Default 500. */
    retryBaseMs: z.number().int().min(0).default(500),
    /** Longest wait before a retry, `Retry-After` included; a server asking for more fails at once. Default 30000. */
    maxRetryDelayMs: z.number().int().min(0).default(30_000),
    /** Largest body accepted, in bytes. Default 32 MiB. */
    maxBytes: z.number().int().min(1).default(32 * 1024 * 1024),
    /** Redirects followed per request. Default 5. */
    maxRedirects: z.number().int().min(0).default(5),
    /** `User-Agent` header sent. */
    userAgent: z.string().min(1).default('Mozilla/5.0 (compatible; vlcurate/0.1; +https://github.com/vlcurate/vlcurate)'),
    /** Our token in `X-Robots-Tag: <token>: <directives>` values (img2dataset matches its own name likewise). */
    userAgentToken: z.string().min(1).default('vlcurate'),
    /** Ignore `X-Robots-Tag` opt-outs. Default false: they are honoured (`robots_disallowed`). */
    ignoreRobots: z.boolean().default(false),
    /** `X-Robots-Tag` directives that refuse the download. Default img2dataset's: noai, noimageai, noindex, noimageindex. */
    disallowedDirectives: z.array(z.string().min(1)).default([...DEFAULT_DISALLOWED_DIRECTIVES]),
    /**
     * Download from loopback, private, link-local and other non-public addresses too (a private mirror, a
     * test server). Default false: a URL list cannot make this host fetch its own or its network's
     * services (`address_disallowed`).
     */
    allowPrivateNetworks: z.boolean().default(false),
  })
  .strict();

export type FetchOptions = z.infer<typeof fetchOptionsSchema>;

export interface FetchSuccess {
  ok: true;
  bytes: Buffer;
  /** The URL asked for, and the one that answered after redirects. */
  url: string;
  finalUrl: string;
  status: number;
  contentType: string | null;
  redirects: number;
  attempts: number;
}

export interface FetchFailure {
  ok: false;
  code: DownloadFailureCode;
  message: string;
  /** Another try later (another run) may succeed: timeouts, connection errors, 408, 429, 5xx. */
  transient: boolean;
  attempts: number;
}

export type FetchResult = FetchSuccess | FetchFailure;

/** Counters for benchmarks and tests. */
export interface FetcherStats {
  /** HTTP requests sent, redirect hops and retries included. */
  requests: number;
  retries: number;
  /** Body bytes received, those of refused and cut-off bodies included. */
  bytes: number;
}

/**
 * Why an address may not be reached (null: it may). The default is `disallowedReason`; tests that can only
 * use 127.0.0.1 pass another to tell their "public" server from their "private" one.
 */
export type AddressCheck = (address: string, url: URL) => string | null;

/** A host name whose every address was refused, raised from the agent's lookup. */
class AddressDisallowedError extends VlcurateError {
  constructor(message: string) {
    // Errno-style: it travels through the socket's lookup callback like a system error.
    super('EADDRDISALLOWED', message);
  }
}

/** Thrown (only) when the caller's signal aborts. */
export class DownloadAbortedError extends VlcurateError {
  constructor() {
    super('download_aborted', 'download aborted');
    this.name = 'AbortError';
  }
}

/** One request's outcome, before retry decisions. */
type Attempt =
  | { kind: 'body'; status: number; contentType: string | null; bytes: Buffer }
  | { kind: 'redirect'; status: number; location: string | null }
  | { kind: 'failure'; code: DownloadFailureCode; message: string; transient: boolean; retryAfterMs: number | null };

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** Content types accepted besides `image/*`; the magic bytes decide for these. */
const GENERIC_CONTENT_TYPES = new Set([
  'application/octet-stream',
  'binary/octet-stream',
  'application/binary',
  'application/x-octet-stream',
  'application/force-download',
  'application/x-download',
  'application/download',
]);

/**
 * The download numbers of the shared retry policy (`backends/retry-policy.ts`): `retries` retries, a backoff
 * step from `retryBaseMs` doubling each time with equal jitter (half the step, plus up to half again), and
 * `maxRetryDelayMs` as the longest wait, backoff or `Retry-After`.
 */
export function downloadRetryPolicy(options: Pick<FetchOptions, 'retries' | 'retryBaseMs' | 'maxRetryDelayMs'>): RetryPolicy {
  return { retries: options.retries, baseMs: options.retryBaseMs, maxBackoffMs: options.maxRetryDelayMs, jitter: 'equal', maxServerWaitMs: options.maxRetryDelayMs };
}

/** Parse a URL the fetcher accepts; a reason when it is not one. */
export function parseHttpUrl(text: string): { ok: true; url: URL } | { ok: false; message: string } {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    return { ok: false, message: `${JSON.stringify(truncate(text, 200))} is not a valid URL` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, message: `only http: and https: URLs are downloaded, got ${url.protocol} in ${truncate(text, 200)}` };
  }
  if (url.hostname.length === 0) return { ok: false, message: `URL ${truncate(text, 200)} has no host` };
  return { ok: true, url };
}

export class UrlFetcher {
  readonly options: FetchOptions;
  readonly stats: FetcherStats = { requests: 0, retries: 0, bytes: 0 };
  private readonly global: PQueue;
  private readonly hosts = new Map<string, { queue: PQueue; users: number }>();
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly disallowed: Set<string>;
  private readonly addressCheck: AddressCheck | null;

  constructor(options: z.input<typeof fetchOptionsSchema> = {}, internals: { addressCheck?: AddressCheck } = {}) {
    this.options = fetchOptionsSchema.parse(options);
    this.addressCheck = this.options.allowPrivateNetworks ? null : (internals.addressCheck ?? ((address) => disallowedReason(address)));
    this.global = new PQueue({ concurrency: this.options.concurrency });
    // Our own queues bound concurrency; the agents only keep connections alive for reuse.
    this.httpAgent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
    this.httpsAgent = new https.Agent({ keepAlive: true, maxFreeSockets: 64 });
    this.disallowed = new Set(this.options.disallowedDirectives.map((d) => d.toLowerCase()));
  }

  /**
   * Download one URL. Resolves to the bytes or a failure; rejects only with `DownloadAbortedError` when
   * `signal` aborts (in-flight requests are destroyed).
   */
  async fetch(urlText: string, signal?: AbortSignal): Promise<FetchResult> {
    const parsed = parseHttpUrl(urlText);
    if (!parsed.ok) return { ok: false, code: 'url_invalid', message: parsed.message, transient: false, attempts: 0 };
    const host = parsed.url.hostname.toLowerCase();
    const policy = downloadRetryPolicy(this.options);
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      const result = await this.onHost(host, () => this.follow(parsed.url, signal), signal);
      if (result.kind === 'success') return { ...result.value, attempts: attempt };
      const failure = result.value;
      const decision = decideRetry(policy, { retryable: failure.transient, serverWaitMs: failure.retryAfterMs }, attempt);
      if (!decision.retry) {
        const message =
          decision.why === 'server_wait_too_long'
            ? `${failure.message}; the server asks to retry after ${Math.round(failure.retryAfterMs! / 1000)} s, more than maxRetryDelayMs ${policy.maxServerWaitMs}`
            : withAttempts(failure.message, attempt);
        return { ok: false, code: failure.code, message, transient: failure.transient, attempts: attempt };
      }
      this.stats.retries++;
      try {
        await sleep(decision.delayMs, signal);
      } catch {
        throw new DownloadAbortedError();
      }
    }
  }

  /** Close kept-alive connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /** Run `task` holding one of the host's slots, then one of the global slots. */
  private async onHost<T>(host: string, task: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    let entry = this.hosts.get(host);
    if (entry === undefined) {
      entry = { queue: new PQueue({ concurrency: this.options.perHost }), users: 0 };
      this.hosts.set(host, entry);
    }
    entry.users++;
    try {
      return await entry.queue.add(() => this.global.add(task, { signal }), { signal });
    } catch (err) {
      if (signal?.aborted) throw new DownloadAbortedError();
      throw err;
    } finally {
      // Forget idle hosts, so millions of distinct hosts do not pile up queues.
      if (--entry.users === 0) this.hosts.delete(host);
    }
  }

  /** One attempt: request, following redirects by hand. */
  private async follow(
    start: URL,
    signal: AbortSignal | undefined,
  ): Promise<{ kind: 'success'; value: Omit<FetchSuccess, 'attempts'> } | { kind: 'failure'; value: Extract<Attempt, { kind: 'failure' }> }> {
    let url = start;
    const seen = new Set<string>([url.href]);
    for (let hop = 0; ; hop++) {
      const answer = await this.request(url, signal);
      if (answer.kind === 'failure') return { kind: 'failure', value: answer };
      if (answer.kind === 'body') {
        return {
          kind: 'success',
          value: { ok: true, bytes: answer.bytes, url: start.href, finalUrl: url.href, status: answer.status, contentType: answer.contentType, redirects: hop },
        };
      }
      const permanent = (code: DownloadFailureCode, message: string) =>
        ({ kind: 'failure', value: { kind: 'failure', code, message, transient: false, retryAfterMs: null } }) as const;
      if (answer.location === null) {
        return permanent(`http_${answer.status}`, `${url.href} answered ${answer.status} (a redirect) without a Location header`);
      }
      let next: URL;
      try {
        next = new URL(answer.location, url);
      } catch {
        return permanent('redirect_invalid', `${url.href} redirects to ${JSON.stringify(truncate(answer.location, 200))}, which is not a URL`);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        return permanent('redirect_invalid', `${url.href} redirects to ${truncate(next.href, 200)}: only http: and https: redirects are followed`);
      }
      if (seen.has(next.href)) {
        return permanent('too_many_redirects', `redirect loop: ${url.href} redirects back to ${next.href}`);
      }
      if (hop + 1 > this.options.maxRedirects) {
        return permanent('too_many_redirects', `${start.href} redirects more than maxRedirects ${this.options.maxRedirects} times`);
      }
      seen.add(next.href);
      url = next;
    }
  }

  /** One HTTP request; never rejects except on abort. */
  private request(url: URL, signal: AbortSignal | undefined): Promise<Attempt> {
    const { timeoutMs, maxBytes } = this.options;
    this.stats.requests++;
    return new Promise<Attempt>((resolve, reject) => {
      let settled = false;
      let request: http.ClientRequest | null = null;
      let body: Readable | null = null;
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const finish = (attempt: Attempt) => {
        if (settled) return;
        settled = true;
        cleanup();
        resolve(attempt);
      };
      const stop = () => {
        body?.destroy();
        request?.destroy();
      };
      const fail = (code: DownloadFailureCode, message: string, transient: boolean, retryAfterMs: number | null = null) => {
        finish({ kind: 'failure', code, message, transient, retryAfterMs });
        stop();
      };
      const onAbort = () => {
        if (settled) return;
        settled = true;
        cleanup();
        stop();
        reject(new DownloadAbortedError());
      };
      const timer = setTimeout(() => fail('timeout', `${url.href} gave no complete answer within ${timeoutMs} ms`, true), timeoutMs);
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });

      const secure = url.protocol === 'https:';
      const check = this.addressCheck;
      if (check !== null && isAddressLiteral(url.hostname)) {
        const reason = check(url.hostname, url);
        if (reason !== null) {
          fail('address_disallowed', refusal(url, url.hostname, reason), false);
          return;
        }
      }
      const options: http.RequestOptions = {
        method: 'GET',
        agent: secure ? this.httpsAgent : this.httpAgent,
        ...(check === null ? {} : { lookup: checkedLookup(url, check) }),
        headers: {
          'user-agent': this.options.userAgent,
          accept: 'image/avif,image/webp,image/png,image/jpeg,image/*;q=0.8,*/*;q=0.5',
          'accept-encoding': 'gzip, deflate, br',
        },
      };
      try {
        request = (secure ? https : http).request(url, options);
      } catch (err) {
        fail('url_invalid', `cannot request ${url.href}: ${describeError(err)}`, false);
        return;
      }
      request.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof AddressDisallowedError) {
          fail('address_disallowed', err.message, false);
          return;
        }
        const code = err.code ?? '';
        const transient = isTransientSocketError(err);
        fail('connection_failed', `${url.href}: ${code ? `${code} ` : ''}${describeError(err)}`, transient);
      });
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (REDIRECT_STATUSES.has(status)) {
          response.resume();
          finish({ kind: 'redirect', status, location: response.headers.location ?? null });
          return;
        }
        if (status < 200 || status > 299) {
          response.resume();
          const retryable = isRetryableStatus(status);
          fail(`http_${status}`, `${url.href} answered HTTP ${status}${response.statusMessage ? ` ${response.statusMessage}` : ''}`, retryable, retryable ? parseRetryAfter(response.headers['retry-after']) : null);
          return;
        }
        const refusal = this.options.ignoreRobots ? null : robotsRefusal(response.rawHeaders, this.options.userAgentToken, this.disallowed);
        if (refusal !== null) {
          fail('robots_disallowed', `${url.href} opts out with X-Robots-Tag: ${refusal}`, false);
          return;
        }
        const declared = Number(response.headers['content-length']);
        const encoding = (response.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
        if (Number.isFinite(declared) && declared > maxBytes && encoding === 'identity') {
          fail('too_large', `${url.href} declares ${declared} bytes, more than maxBytes ${maxBytes}`, false);
          return;
        }
        const contentType = response.headers['content-type'] ?? null;
        const mediaType = contentType?.split(';', 1)[0]!.trim().toLowerCase() ?? '';
        if (mediaType.length > 0 && !mediaType.startsWith('image/') && !GENERIC_CONTENT_TYPES.has(mediaType)) {
          fail('not_an_image', `${url.href} serves ${contentType}, not an image`, false);
          return;
        }
        const decoder = decompressorFor(encoding);
        if (decoder === undefined) {
          fail('not_an_image', `${url.href} uses Content-Encoding ${encoding}, which is not supported`, false);
          return;
        }
        body = decoder === null ? response : response.pipe(decoder);
        if (decoder !== null) response.on('error', (err) => decoder.destroy(err));
        const chunks: Buffer[] = [];
        let length = 0;
        body.on('data', (chunk: Buffer) => {
          length += chunk.length;
          this.stats.bytes += chunk.length;
          if (length > maxBytes) {
            fail('too_large', `${url.href} sent more than maxBytes ${maxBytes} bytes${Number.isFinite(declared) ? '' : ' (no Content-Length declared)'}; the read was stopped`, false);
            return;
          }
          chunks.push(chunk);
        });
        body.on('error', (err: NodeJS.ErrnoException) => {
          const compressed = decoder !== null && err.code?.startsWith('Z_');
          if (compressed) fail('not_an_image', `${url.href}: its ${encoding} body cannot be decoded: ${describeError(err)}`, false);
          else fail('connection_failed', `${url.href}: the body was cut off after ${length} bytes (${describeError(err)})`, true);
        });
        response.on('close', () => {
          // Closed without 'end' or 'error' (the socket went away): whatever came is not the whole body.
          if (!settled && !response.complete) fail('connection_failed', `${url.href}: the connection closed after ${length} bytes of the body`, true);
        });
        body.on('end', () => {
          if (!response.complete) {
            fail('connection_failed', `${url.href}: the body was cut off after ${length} bytes`, true);
            return;
          }
          const bytes = Buffer.concat(chunks, length);
          const sniffed = sniffImage(bytes);
          if (sniffed === null) {
            fail('not_an_image', `${url.href} sent ${length} bytes${contentType ? ` as ${contentType}` : ''} that start like no image format (${describeStart(bytes)})`, false);
            return;
          }
          finish({ kind: 'body', status, contentType, bytes });
        });
      });
      request.end();
    });
  }
}

function refusal(url: URL, address: string, reason: string): string {
  return `${url.href}: ${address} is ${/^[aeiou]/.test(reason) ? 'an' : 'a'} ${reason} address; downloads from non-public addresses are refused (set download.allowPrivateNetworks: true to allow them)`;
}

/**
 * A `lookup` for one request: resolves the host, keeps only the addresses `check` allows, and fails with
 * `AddressDisallowedError` when none is left. The socket connects to what this returns, so the address
 * checked is the address used.
 */
function checkedLookup(url: URL, check: AddressCheck) {
  return (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, '');
        return;
      }
      const refused: string[] = [];
      const allowed = addresses.filter((entry) => {
        const reason = check(entry.address, url);
        if (reason !== null) refused.push(`${entry.address} (${reason})`);
        return reason === null;
      });
      if (allowed.length === 0) {
        const message = `${url.href}: ${hostname} resolves only to non-public addresses: ${refused.join(', ')}; downloads from them are refused (set download.allowPrivateNetworks: true to allow them)`;
        callback(new AddressDisallowedError(message), '');
        return;
      }
      if (options.all) callback(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };
}

function decompressorFor(encoding: string): ReturnType<typeof createGunzip> | null | undefined {
  switch (encoding) {
    case 'identity':
    case '':
      return null;
    case 'gzip':
    case 'x-gzip':
      return createGunzip();
    case 'deflate':
      return createInflate();
    case 'br':
      return createBrotliDecompress();
    default:
      return undefined;
  }
}

/**
 * img2dataset's rule: each `X-Robots-Tag` value is `[token:] directive, directive, ...`; it refuses when a
 * value without a token, or with our token, lists a disallowed directive. Returns the refusing value, or null.
 */
export function robotsRefusal(rawHeaders: readonly string[], userAgentToken: string, disallowed: ReadonlySet<string>): string | null {
  const token = userAgentToken.toLowerCase();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== 'x-robots-tag') continue;
    const value = rawHeaders[i + 1]!;
    const colon = value.indexOf(':');
    const agent = colon >= 0 ? value.slice(0, colon).trim().toLowerCase() : null;
    // `unavailable_after: <date>` is a directive, not a user agent.
    const isAgent = agent !== null && agent !== 'unavailable_after' && /^[a-z0-9_.-]+$/.test(agent);
    const directives = (isAgent ? value.slice(colon + 1) : value).split(',').map((d) => d.trim().toLowerCase());
    if ((!isAgent || agent === token) && directives.some((d) => disallowed.has(d))) return value;
  }
  return null;
}

/** Image format from magic bytes; null when the bytes start like no image format. */
export function sniffImage(bytes: Buffer): string | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47 && bytes.readUInt32BE(4) === 0x0d0a1a0a) return 'png';
  if (bytes.length >= 6 && /^GIF8[79]a$/.test(bytes.toString('latin1', 0, 6))) return 'gif';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  if (bytes.length >= 4 && (bytes.readUInt32BE(0) === 0x49492a00 || bytes.readUInt32BE(0) === 0x4d4d002a)) return 'tiff';
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0x0a) return 'jxl';
  if (bytes.length >= 12 && bytes.readUInt32BE(0) === 0x0c && bytes.toString('latin1', 4, 8) === 'JXL ') return 'jxl';
  if (bytes.length >= 12 && bytes.readUInt32BE(0) === 0x0c && bytes.toString('latin1', 4, 8) === 'jP  ') return 'jp2';
  if (bytes.length >= 12 && bytes.toString('latin1', 4, 8) === 'ftyp') {
    const brand = bytes.toString('latin1', 8, 12);
    if (['avif', 'avis', 'heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1'].includes(brand)) return 'heif';
  }
  return null;
}

function describeStart(bytes: Buffer): string {
  if (bytes.length === 0) return 'empty';
  const head = bytes.subarray(0, 8);
  const text = head.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return `${[...head].map((b) => b.toString(16).padStart(2, '0')).join(' ')} "${text}"`;
}

function withAttempts(message: string, attempts: number): string {
  return attempts > 1 ? `${message} (after ${attempts} attempts)` : message;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new DownloadAbortedError();
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 3)}...` : text;
}
