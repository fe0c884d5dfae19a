/**
 * A local image server for download tests and benchmarks: real sockets (node:http on port 0), counting
 * every request, with routes for each way a web image can go wrong.
 *
 * | route | answer |
 * |---|---|
 * | `/img/NAME` | the image registered as NAME (content type from its extension; `?type=` overrides, `?type=none` omits) |
 * | `/octet/NAME` | the image as `application/octet-stream` |
 * | `/gzip/NAME` | the image with `Content-Encoding: gzip` |
 * | `/slow-headers/NAME?ms=N` | waits N ms before the headers |
 * | `/slow-body/NAME?ms=N` | sends the headers and half the body, waits N ms, then the rest |
 * | `/cut/NAME` | declares the whole image's `Content-Length`, sends half of it, then destroys the socket |
 * | `/chain/N/NAME` | redirects N times, then the image |
 * | `/redirect?to=URL&status=S` | a redirect (default 302) to URL (absolute or relative, any scheme) |
 * | `/loop/a`, `/loop/b` | redirect to each other |
 * | `/status/S` | status S with a text body (`?retryAfter=` adds the header) |
 * | `/html` | `text/html` page |
 * | `/fake/NAME` | says `image/jpeg`, sends HTML |
 * | `/big-declared?bytes=N` | declares N bytes, sends a JPEG start, then holds the connection |
 * | `/big-undeclared?bytes=N` | streams N bytes of JPEG-looking data without Content-Length |
 * | `/robots/NAME?tag=V&tag=W` | the image with one `X-Robots-Tag` header per `tag` |
 * | `/flaky/ID/NAME?fail=N&status=S&retryAfter=R` | the first N requests for ID get status S (default 429, Retry-After R), then the image |
 * | `/reset/ID/NAME?times=N` | the first N requests for ID have their connection destroyed, then the image |
 *
 * `latencyMs` delays every answer (for benchmarks with 100 ms latency). `hosts` listens on several loopback
 * addresses (`127.0.0.1`, `127.0.0.2`, ...: Linux routes all of 127/8 to lo), one socket each, sharing
 * routes and counters, so a client sees several distinct hosts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';

export interface ServedRequest {
  path: string;
  at: number;
}

export interface ImageServerOptions {
  /** Addresses to listen on; default `['127.0.0.1']`. */
  hosts?: string[];
  latencyMs?: number;
  images?: Record<string, Buffer>;
}

export interface ImageServer {
  readonly origin: string;
  /** One origin per address in `hosts`. */
  readonly origins: string[];
  /** `origin + path`; `host` picks another address's origin. */
  url(path: string, host?: number): string;
  readonly requests: ServedRequest[];
  /** Requests whose path (without query) starts with `prefix` (all when omitted). */
  count(prefix?: string): number;
  /** Most requests in flight at once since the last `resetStats`. */
  readonly maxInFlight: number;
  addImage(name: string, bytes: Buffer): void;
  resetStats(): void;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif' };

export async function startImageServer(options: ImageServerOptions = {}): Promise<ImageServer> {
  const images = new Map<string, Buffer>(Object.entries(options.images ?? {}));
  const requests: ServedRequest[] = [];
  const counters = new Map<string, number>();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let maxInFlight = 0;

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  const image = (name: string): Buffer | null => images.get(name) ?? null;
  const typeOf = (name: string) => TYPES[name.slice(name.lastIndexOf('.') + 1).toLowerCase()] ?? 'application/octet-stream';

  const sendImage = (res: ServerResponse, name: string, headers: Record<string, string | string[]> = {}, type?: string | null) => {
    const bytes = image(name);
    if (bytes === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`no image ${name}`);
      return;
    }
    const contentType = type === undefined ? typeOf(name) : type;
    res.writeHead(200, { ...(contentType === null ? {} : { 'content-type': contentType }), 'content-length': String(bytes.length), ...headers });
    res.end(bytes);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter((p) => p.length > 0).map(decodeURIComponent);
    const query = url.searchParams;
    if (options.latencyMs) await wait(options.latencyMs);
    const [route, ...rest] = parts;
    switch (route) {
      case 'img': {
        const type = query.get('type');
        return sendImage(res, rest.join('/'), {}, type === null ? undefined : type === 'none' ? null : type);
      }
      case 'octet':
        return sendImage(res, rest.join('/'), {}, 'application/octet-stream');
      case 'gzip': {
        const bytes = image(rest.join('/'));
        if (bytes === null) return void res.writeHead(404).end();
        const body = gzipSync(bytes);
        res.writeHead(200, { 'content-type': typeOf(rest.join('/')), 'content-encoding': 'gzip', 'content-length': String(body.length) });
        return void res.end(body);
      }
      case 'slow-headers':
        await wait(Number(query.get('ms') ?? 1000));
        return sendImage(res, rest.join('/'));
      case 'slow-body': {
        const bytes = image(rest.join('/'));
        if (bytes === null) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': typeOf(rest.join('/')), 'content-length': String(bytes.length) });
        const half = Math.floor(bytes.length / 2);
        res.write(bytes.subarray(0, half));
        await wait(Number(query.get('ms') ?? 1000));
        if (!res.destroyed) res.end(bytes.subarray(half));
        return;
      }
      case 'cut': {
        const bytes = image(rest.join('/'));
        if (bytes === null) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': typeOf(rest.join('/')), 'content-length': String(bytes.length) });
        res.write(bytes.subarray(0, Math.floor(bytes.length / 2)));
        await wait(20);
        return void res.destroy();
      }
      case 'chain': {
        const n = Number(rest[0]);
        const name = rest.slice(1).join('/');
        if (n <= 0) return sendImage(res, name);
        res.writeHead(302, { location: `/chain/${n - 1}/${encodeURIComponent(name)}` });
        return void res.end();
      }
      case 'redirect': {
        const status = Number(query.get('status') ?? 302);
        const to = query.get('to');
        res.writeHead(status, to === null ? {} : { location: to });
        return void res.end();
      }
      case 'loop':
        res.writeHead(302, { location: rest[0] === 'a' ? '/loop/b' : '/loop/a' });
        return void res.end();
      case 'status': {
        const status = Number(rest[0]);
        const retryAfter = query.get('retryAfter');
        res.writeHead(status, { 'content-type': 'text/plain', ...(retryAfter === null ? {} : { 'retry-after': retryAfter }) });
        return void res.end(`status ${status}`);
      }
      case 'html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return void res.end('<!doctype html><html><body>not found</body></html>');
      case 'fake':
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        return void res.end('<!doctype html><html><body>soft 404</body></html>');
      case 'big-declared': {
        const bytes = Number(query.get('bytes') ?? 100_000_000);
        res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(bytes) });
        res.write(Buffer.from([0xff, 0xd8, 0xff, 0xe0]));
        await wait(5000); // the client should have given up long before
        return void res.destroy();
      }
      case 'big-undeclared': {
        let left = Number(query.get('bytes') ?? 10_000_000);
        res.writeHead(200, { 'content-type': 'image/jpeg' });
        const block = Buffer.alloc(64 * 1024, 0x55);
        block[0] = 0xff;
        block[1] = 0xd8;
        block[2] = 0xff;
        while (left > 0 && !res.destroyed) {
          const piece = block.subarray(0, Math.min(left, block.length));
          left -= piece.length;
          if (!res.write(piece)) {
            await new Promise<void>((resolve) => {
              const go = () => {
                res.off('drain', go).off('close', go);
                resolve();
              };
              res.on('drain', go).on('close', go);
            });
          }
        }
        if (!res.destroyed) res.end();
        return;
      }
      case 'robots': {
        const tags = query.getAll('tag');
        return sendImage(res, rest.join('/'), { 'x-robots-tag': tags });
      }
      case 'flaky': {
        const id = rest[0]!;
        const seen = (counters.get(`flaky:${id}`) ?? 0) + 1;
        counters.set(`flaky:${id}`, seen);
        if (seen <= Number(query.get('fail') ?? 1)) {
          const retryAfter = query.get('retryAfter');
          res.writeHead(Number(query.get('status') ?? 429), retryAfter === null ? {} : { 'retry-after': retryAfter });
          return void res.end('slow down');
        }
        return sendImage(res, rest.slice(1).join('/'));
      }
      case 'reset': {
        const id = rest[0]!;
        const seen = (counters.get(`reset:${id}`) ?? 0) + 1;
        counters.set(`reset:${id}`, seen);
        if (seen <= Number(query.get('times') ?? 1)) return void req.socket.destroy();
        return sendImage(res, rest.slice(1).join('/'));
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        return void res.end('unknown route');
    }
  };

  const listener = (req: IncomingMessage, res: ServerResponse) => {
    requests.push({ path: (req.url ?? '/').split('?')[0]!, at: performance.now() });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let counted = true;
    const done = () => {
      if (counted) inFlight--;
      counted = false;
    };
    res.on('close', done);
    handle(req, res).catch(() => res.destroy());
  };
  const servers: Server[] = [];
  const origins: string[] = [];
  for (const host of options.hosts ?? ['127.0.0.1']) {
    const server = createServer(listener);
    server.keepAliveTimeout = 10_000;
    server.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    const { address, port } = server.address() as AddressInfo;
    servers.push(server);
    origins.push(`http://${address}:${port}`);
  }
  const origin = origins[0]!;

  return {
    origin,
    origins,
    url: (path, host = 0) => `${origins[host]}${path}`,
    requests,
    count: (prefix) => (prefix === undefined ? requests.length : requests.filter((r) => r.path.startsWith(prefix)).length),
    get maxInFlight() {
      return maxInFlight;
    },
    addImage: (name, bytes) => void images.set(name, bytes),
    resetStats: () => {
      requests.length = 0;
      counters.clear();
      maxInFlight = inFlight;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      for (const socket of sockets) socket.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
