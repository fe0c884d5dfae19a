/**
 * Bounded local reads (issue 12, "Unbounded reads"): a row naming `/dev/zero` grew the process to 24 GB and
 * a row naming a FIFO hung forever. Only regular files are read, at most `maxBytes`, size checked first.
 * Real files throughout: a FIFO made with `mkfifo`, `/dev/zero`, symbolic links.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInside, openRegularStream, readLocalFile } from '../../src/images/local-file.js';
import { makeTempDir } from '../fixtures/make-webdataset.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await makeTempDir('vlcurate-local-file-'));
  await writeFile(path.join(dir, 'small.bin'), Buffer.alloc(1000, 7));
  await writeFile(path.join(dir, 'exact.bin'), Buffer.alloc(4096, 1));
  await mkdir(path.join(dir, 'folder'));
  execFileSync('mkfifo', [path.join(dir, 'pipe.jpg')]);
  await symlink('/dev/zero', path.join(dir, 'zero-link.jpg'));
  await symlink(path.join(dir, 'pipe.jpg'), path.join(dir, 'pipe-link.jpg'));
});

afterAll(async () => {
  await cleanup();
});

describe('readLocalFile', () => {
  it('reads a regular file whole, up to and including maxBytes', async () => {
    const small = await readLocalFile(path.join(dir, 'small.bin'), { maxBytes: 1000 });
    expect(small.ok && small.bytes.equals(Buffer.alloc(1000, 7))).toBe(true);
    const exact = await readLocalFile(path.join(dir, 'exact.bin'), { maxBytes: 4096 });
    expect(exact.ok && exact.bytes.length).toBe(4096);
  });

  it('refuses a file larger than maxBytes from its size, before reading', async () => {
    const result = await readLocalFile(path.join(dir, 'small.bin'), { maxBytes: 999, what: 'image file' });
    expect(result).toEqual({ ok: false, problem: 'too_large', message: expect.stringMatching(/image file .*small\.bin is 1,000 bytes, more than decode\.maxBytes 999/) });
  });

  it('refuses /dev/zero, directly and through a symbolic link, without reading a byte', async () => {
    for (const file of ['/dev/zero', path.join(dir, 'zero-link.jpg')]) {
      const before = process.memoryUsage().rss;
      const result = await readLocalFile(file, { maxBytes: 64 * 1024 * 1024 });
      expect(result).toEqual({ ok: false, problem: 'not_a_file', message: expect.stringContaining('is not a regular file (a character device)') });
      // Nothing was buffered: a read of /dev/zero up to the limit alone would add 64 MiB.
      expect(process.memoryUsage().rss - before).toBeLessThan(32 * 1024 * 1024);
    }
  });

  it('refuses a FIFO at once instead of waiting for a writer (directly and through a link)', async () => {
    for (const file of [path.join(dir, 'pipe.jpg'), path.join(dir, 'pipe-link.jpg')]) {
      const result = await readLocalFile(file, { maxBytes: 1024 });
      expect(result).toEqual({ ok: false, problem: 'not_a_file', message: expect.stringContaining('is not a regular file (a FIFO)') });
    }
  });

  it('tells a folder and a missing file apart', async () => {
    expect(await readLocalFile(path.join(dir, 'folder'), { maxBytes: 10 })).toMatchObject({ ok: false, problem: 'folder' });
    expect(await readLocalFile(path.join(dir, 'nope.jpg'), { maxBytes: 10 })).toMatchObject({ ok: false, problem: 'missing' });
    expect(await readLocalFile(`${dir}/a\0b`, { maxBytes: 10 })).toMatchObject({ ok: false, problem: 'missing' });
  });

  it('stops at maxBytes + 1 on a file that reports no size (/proc)', async () => {
    // /proc files are "regular" with size 0; the read must still be bounded.
    const result = await readLocalFile('/proc/self/maps', { maxBytes: 16 });
    expect(result).toMatchObject({ ok: false, problem: 'too_large', message: expect.stringContaining('the read was stopped') });
  });

  it('opens a stream only on a regular file', async () => {
    const fifo = await openRegularStream(path.join(dir, 'pipe.jpg'), 'shard');
    expect(fifo).toMatchObject({ ok: false, problem: 'not_a_file' });
    const file = await openRegularStream(path.join(dir, 'small.bin'), 'shard');
    expect(file.ok).toBe(true);
    if (file.ok) {
      const chunks: Buffer[] = [];
      for await (const chunk of file.stream) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).length).toBe(1000);
      expect(file.gzip).toBe(false);
    }
  });
});

describe('isInside', () => {
  it('is true for the folder and what is below it, false for siblings sharing a prefix and parents', () => {
    expect(isInside('/data/imgs', '/data/imgs')).toBe(true);
    expect(isInside('/data/imgs/a/b.jpg', '/data/imgs')).toBe(true);
    expect(isInside('/data/imgs/..x.jpg', '/data/imgs')).toBe(true);
    expect(isInside('/data/imgs2/b.jpg', '/data/imgs')).toBe(false);
    expect(isInside('/data/b.jpg', '/data/imgs')).toBe(false);
    expect(isInside('/etc/passwd', '/data/imgs')).toBe(false);
  });
});
