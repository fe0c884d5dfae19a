/**
 * A TCP proxy on 127.0.0.1 (port 0) in front of a local server, for tests of dropped connections and of
 * how many bytes a reader fetches: it counts the bytes the server sends, and when told to, cuts
 * connections after a number of bytes (the client sees the socket close mid-answer, as on a flaky network).
 */
import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface CuttingProxy {
  /** `http://127.0.0.1:PORT`, to use as the endpoint instead of the server's. */
  endpoint: string;
  /** Bytes the server sent through the proxy so far. */
  bytesDown: number;
  /** Requests seen (lines starting with an HTTP method at the start of a client chunk). */
  requests: number;
  /** Connections cut so far. */
  cuts: number;
  /** Cut each of the next `times` connections once it has carried `bytes` bytes from the server. */
  cutAfter(bytes: number, times: number): void;
  close(): Promise<void>;
}

export async function startCuttingProxy(target: string): Promise<CuttingProxy> {
  const { hostname, port } = new URL(target);
  let cutBytes = Infinity;
  let cutsLeft = 0;
  // Bytes count from the last `cutAfter` on, also on connections kept alive from before.
  let epoch = 0;
  const sockets = new Set<Socket>();
  const proxy: CuttingProxy = {
    endpoint: '',
    bytesDown: 0,
    requests: 0,
    cuts: 0,
    cutAfter(bytes, times) {
      cutBytes = bytes;
      cutsLeft = times;
      epoch++;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    let carried = 0;
    let counted = epoch;
    let cut = false;
    client.on('data', (chunk: Buffer) => {
      if (/^(GET|HEAD|PUT|POST|DELETE) /.test(chunk.subarray(0, 8).toString('latin1'))) proxy.requests++;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (cut) return;
      if (counted !== epoch) {
        counted = epoch;
        carried = 0;
      }
      if (cutsLeft > 0 && carried + chunk.length > cutBytes) {
        const part = chunk.subarray(0, Math.max(0, cutBytes - carried));
        proxy.bytesDown += part.length;
        cut = true;
        cutsLeft--;
        proxy.cuts++;
        client.end(part, () => client.destroy());
        upstream.destroy();
        return;
      }
      carried += chunk.length;
      proxy.bytesDown += chunk.length;
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
