import { createHash } from 'node:crypto';
import { open, rename } from 'node:fs/promises';

/** Bytes gathered before one write to disk. */
const WRITE_CHUNK = 1 << 20;

export interface JsonArrayFileInfo {
  path: string;
  items: number;
  bytes: number;
  sha256: string;
}

/**
 * Write a JSON array whose items arrive as JSON texts, streaming (never the whole array in memory) and
 * atomically: `PATH.tmp` is written, fsynced and renamed over `PATH`. The layout is one item per line:
 * `[\n` item `,\n` item ... `\n]\n` (an empty array is `[]\n`).
 */
export async function writeJsonArrayFile(path: string, items: AsyncIterable<string> | Iterable<string>): Promise<JsonArrayFileInfo> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', 0o644);
  const hash = createHash('sha256');
  let bytes = 0;
  let count = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const push = async (text: string) => {
    const chunk = Buffer.from(text, 'utf8');
    hash.update(chunk);
    bytes += chunk.length;
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= WRITE_CHUNK) await flush();
  };
  const flush = async () => {
    if (pending.length === 0) return;
    const chunks = pending;
    pending = [];
    pendingBytes = 0;
    await handle.writev(chunks);
  };
  try {
    for await (const item of items) {
      await push(count === 0 ? `[\n${item}` : `,\n${item}`);
      count++;
    }
    await push(count === 0 ? '[]\n' : '\n]\n');
    await flush();
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  return { path, items: count, bytes, sha256: hash.digest('hex') };
}
