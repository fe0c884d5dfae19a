/**
 * What the object-storage tests share: reading what a bucket holds through the real AWS SDK client
 * (`backends/s3-store.ts`), and an HTTP proxy in front of the local S3 server that slows uploads down and
 * tells a test when one is half done (to kill a writer mid-upload).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Store } from '../../src/backends/s3-store.js';
import type { LocalS3 } from './s3-server.js';

/** A store on the local server's bucket, with the SDK reading the server's address from `endpoint`. */
export function bucketStore(s3: LocalS3, bucket: string): S3Store {
  process.env.AWS_ACCESS_KEY_ID = s3.env.AWS_ACCESS_KEY_ID;
  process.env.AWS_SECRET_ACCESS_KEY = s3.env.AWS_SECRET_ACCESS_KEY;
  return new S3Store(bucket, { endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, profile: undefined, partSize: 16 * 1024 * 1024 });
}

/** Every key under `prefix`, sorted. */
export async function keysUnder(store: S3Store, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  return keys.sort();
}

/** Download the objects to a fresh local folder (by their names after `prefix`); returns the folder. */
export async function download(store: S3Store, prefix: string, keys: readonly string[]): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-s3-dl-'));
  for (const key of keys) writeFileSync(join(dir, key.slice(prefix.length).replaceAll('/', '__')), await store.readBytes(key));
  return dir;
}

export interface SlowProxy {
  endpoint: string;
  /**
   * Called once per upload (a PUT, or a part of a multipart upload) when half of its body has gone through.
   * Returning true cuts that upload there, as a lost machine's connection would be cut (a killed process's
   * socket buffers would still be delivered by its kernel); nothing after it goes through.
   */
  onHalfUpload: ((path: string) => boolean | void) | null;
  close(): Promise<void>;
}

/**
 * An HTTP proxy to `target` that forwards request bodies at `bytesPerSecond` (answers at full speed).
 * Headers go through unchanged, so the SDK's signatures (over the Host header) stay valid.
 */
export async function startSlowProxy(target: string, bytesPerSecond: number): Promise<SlowProxy> {
  const to = new URL(target);
  const proxy: SlowProxy = { endpoint: '', onHalfUpload: null, close: async () => undefined };
  // After a cut, the machine is gone: nothing more of it reaches the server (an SDK retry included).
  let lost = false;
  const server = http.createServer((req, res) => {
    if (lost) {
      req.socket.destroy();
      return;
    }
    // Store and forward: the server sees a request only once its body is whole, as S3 stores nothing of
    // an upload whose body was cut short (s3rver would keep the part it got).
    const length = Number(req.headers['content-length'] ?? 0);
    const chunks: Buffer[] = [];
    let received = 0;
    let told = false;
    const chunkBytes = Math.max(1, Math.floor(bytesPerSecond / 20));
    const pump = async () => {
      for await (const chunk of req) {
        const data = chunk as Buffer;
        for (let at = 0; at < data.length; at += chunkBytes) {
          const piece = data.subarray(at, at + chunkBytes);
          chunks.push(piece);
          received += piece.length;
          if (!told && req.method === 'PUT' && length > 0 && received * 2 >= length) {
            told = true;
            if (proxy.onHalfUpload?.(req.url ?? '') === true) {
              lost = true;
              req.destroy();
              return;
            }
          }
          await new Promise((resolve) => setTimeout(resolve, (piece.length / bytesPerSecond) * 1000));
        }
      }
      const upstream = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    };
    pump().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  proxy.endpoint = `http://127.0.0.1:${address.port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
