import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  SHARD_MTIME,
  WebDatasetWriter,
  shardFileName,
  type ShardInfo,
  type WebDatasetSample,
} from '../../src/export/webdataset-writer.js';
import {
  cleanup,
  extractWithNodeTar,
  gnuNames,
  keyRuns,
  listWithGnuTar,
  listWithNodeTar,
  makeImage,
  sha256File,
  tempDir,
  tmpOf,
} from './fixtures.js';

afterEach(cleanup);

/** A sample whose members are given out of name order on purpose. */
async function sample(key: string, seed: number): Promise<WebDatasetSample> {
  return {
    key,
    members: [
      { ext: 'txt', data: Buffer.from(`caption ${seed}`) },
      { ext: 'png', data: await makeImage(seed) },
      { ext: 'json', data: Buffer.from(JSON.stringify({ key, seed })) },
    ],
  };
}

/** A sample of one member of exactly `size` bytes. */
function blob(key: string, size: number): WebDatasetSample {
  return { key, members: [{ ext: 'bin', data: Buffer.alloc(size, key.charCodeAt(key.length - 1)) }] };
}

async function writeAll(dir: string, samples: readonly WebDatasetSample[], options: { maxCount?: number; maxSize?: number } = {}) {
  const writer = new WebDatasetWriter({ dir, prefix: 'wds', maxCount: options.maxCount ?? 1000, maxSize: options.maxSize ?? 1e9 });
  for (const s of samples) await writer.write(s);
  return writer.close();
}

describe('WebDatasetWriter', () => {
  it('writes members consecutively, sorted per sample, with fixed metadata both tar readers accept', async () => {
    const dir = tempDir();
    const samples = [await sample('b_2', 2), await sample('a-1', 1), await sample('c3', 3)];
    const shards = await writeAll(dir, samples);
    expect(shards).toHaveLength(1);
    const file = join(dir, 'wds-000000.tar');

    const members = listWithNodeTar(file);
    // Sample order is kept (write order); members within a sample are sorted by name.
    expect(members.map((m) => m.path)).toEqual([
      'b_2.json', 'b_2.png', 'b_2.txt',
      'a-1.json', 'a-1.png', 'a-1.txt',
      'c3.json', 'c3.png', 'c3.txt',
    ]);
    for (const m of members) {
      expect(m.mtime?.toISOString()).toBe('2000-01-01T00:00:00.000Z');
      expect(m.mode).toBe(0o644);
      expect(m.uid).toBe(0);
      expect(m.gid).toBe(0);
      expect(m.uname ?? '').toBe('');
      expect(m.gname ?? '').toBe('');
    }
    expect(SHARD_MTIME.getTime()).toBe(Date.UTC(2000, 0, 1));

    // GNU tar, an independent implementation, agrees on names, mode, owner and time.
    expect(gnuNames(file)).toEqual(members.map((m) => m.path));
    for (const line of listWithGnuTar(file)) expect(line).toMatch(/^-rw-r--r-- 0\/0\s+\d+ 2000-01-01 00:00 /);

    // Extracted bytes equal what was written.
    const out = extractWithNodeTar(file);
    for (const s of samples) {
      for (const m of s.members) {
        expect(Buffer.compare(readFileSync(join(out, `${s.key}.${m.ext}`)), Buffer.from(m.data))).toBe(0);
      }
    }
  });

  it('gives byte-identical shards for the same samples', async () => {
    const samples = [];
    for (let i = 0; i < 7; i++) samples.push(await sample(`k${i}`, i));
    const first = await writeAll(tempDir(), samples, { maxCount: 3 });
    await new Promise((r) => setTimeout(r, 1100)); // a different wall-clock second must not matter
    const second = await writeAll(tempDir(), samples, { maxCount: 3 });
    expect(first.map((s) => s.sha256)).toEqual(second.map((s) => s.sha256));
    expect(first.map((s) => sha256File(s.path))).toEqual(second.map((s) => sha256File(s.path)));
    // The reported hash and size are those of the file on disk.
    for (const s of first) {
      expect(sha256File(s.path)).toBe(s.sha256);
      expect(statSync(s.path).size).toBe(s.bytes);
    }
  });

  it('rolls to a new shard at maxCount samples', async () => {
    const dir = tempDir();
    const samples = [];
    for (let i = 0; i < 10; i++) samples.push(await sample(`k${i}`, i));
    const shards = await writeAll(dir, samples, { maxCount: 3 });
    expect(shards.map((s) => s.count)).toEqual([3, 3, 3, 1]);
    expect(shards.map((s) => s.name)).toEqual(['wds-000000.tar', 'wds-000001.tar', 'wds-000002.tar', 'wds-000003.tar']);
    expect(readdirSync(dir).sort()).toEqual(shards.map((s) => s.name));
    const keys = shards.flatMap((s) => keyRuns(gnuNames(s.path)));
    expect(keys).toEqual(samples.map((s) => s.key));
  });

  it('rolls at maxSize counting headers, padding and the end-of-archive blocks', async () => {
    // One 1000-byte member takes 512 (header) + 1024 (padded data); an archive ends with 1024 zero bytes.
    const perSample = 512 + 1024;
    const samples = Array.from({ length: 7 }, (_, i) => blob(`k${i}`, 1000));

    const exact = await writeAll(tempDir(), samples, { maxSize: 1024 + 3 * perSample });
    expect(exact.map((s) => s.count)).toEqual([3, 3, 1]);
    expect(exact.map((s) => s.bytes)).toEqual([1024 + 3 * perSample, 1024 + 3 * perSample, 1024 + perSample]);

    const oneLess = await writeAll(tempDir(), samples, { maxSize: 1024 + 3 * perSample - 1 });
    expect(oneLess.map((s) => s.count)).toEqual([2, 2, 2, 1]);
    for (const s of [...exact, ...oneLess]) {
      expect(statSync(s.path).size).toBe(s.bytes);
      expect(s.bytes).toBeLessThanOrEqual(1024 + 3 * perSample);
    }
  });

  it('gives a sample larger than maxSize a shard of its own', async () => {
    const shards = await writeAll(tempDir(), [blob('small1', 100), blob('big', 20_000), blob('small2', 100), blob('small3', 100)], {
      maxSize: 4000,
    });
    expect(shards.map((s) => keyRuns(gnuNames(s.path)))).toEqual([['small1'], ['big'], ['small2', 'small3']]);
    expect(shards[1]!.bytes).toBeGreaterThan(4000);
  });

  it('sizes members with names over 100 bytes exactly (pax headers)', async () => {
    const longKey = 'k'.repeat(140);
    const dir = tempDir();
    // close() checks that the bytes written equal the planned size; a wrong prediction throws.
    const shards = await writeAll(dir, [blob(longKey, 10), blob('short', 10)], { maxCount: 1 });
    expect(shards).toHaveLength(2);
    expect(listWithNodeTar(shards[0]!.path).map((m) => m.path)).toEqual([`${longKey}.bin`]);
    expect(gnuNames(shards[0]!.path)).toEqual([`${longKey}.bin`]);
  });

  it('writes Unicode keys as UTF-8 names that node-tar and GNU tar read back; over 100 bytes (not characters) a pax header', async () => {
    // 40 CJK characters are 120 bytes of UTF-8: the ustar name field holds 100 bytes, so this one needs pax.
    const keys = ['ünïcødé', '猫'.repeat(40), 'हिन्दी'];
    const dir = tempDir();
    // close() checks that the bytes written equal the planned size.
    const shards = await writeAll(dir, keys.map((k) => blob(k, 10)));
    expect(listWithNodeTar(shards[0]!.path).map((m) => m.path)).toEqual(keys.map((k) => `${k}.bin`));
    // GNU tar under LC_ALL=C prints bytes outside ASCII as octal escapes: the UTF-8 bytes of the name.
    const utf8 = (escaped: string) => Buffer.from(escaped.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))), 'latin1').toString('utf8');
    expect(gnuNames(shards[0]!.path).map(utf8)).toEqual(keys.map((k) => `${k}.bin`));
    expect(statSync(shards[0]!.path).size).toBe(shards[0]!.bytes);
  });

  it('rejects invalid keys and extensions, naming them', async () => {
    const writer = new WebDatasetWriter({ dir: tempDir(), prefix: 'wds', maxCount: 10, maxSize: 1e6 });
    await expect(writer.write(blob('has.dot', 1))).rejects.toThrow(/"has\.dot"/);
    await expect(writer.write(blob('a/b', 1))).rejects.toThrow(/"a\/b"/);
    await expect(writer.write(blob('', 1))).rejects.toThrow(/""/);
    // Not NFC (an e and a combining accent): the key a source makes is always NFC.
    await expect(writer.write(blob('e\u0301', 1))).rejects.toThrow(/keys hold only letters, digits/);
    await expect(writer.write({ key: 'ok', members: [{ ext: 'a/b', data: Buffer.alloc(1) }] })).rejects.toThrow(/extension "a\/b"/);
    await expect(
      writer.write({ key: 'ok', members: [{ ext: 'txt', data: Buffer.alloc(1) }, { ext: 'txt', data: Buffer.alloc(1) }] }),
    ).rejects.toThrow(/twice/);
    // Rejected samples leave the writer usable and write nothing.
    expect(await writer.close()).toEqual([]);
  });

  it('calls onShardComplete with a complete, fsynced .tmp before renaming it', async () => {
    const dir = tempDir();
    const seen: { info: ShardInfo; keys: readonly string[]; tmpHash: string; finalExists: boolean }[] = [];
    const writer = new WebDatasetWriter({
      dir,
      prefix: 'p',
      startIndex: 5,
      maxCount: 2,
      maxSize: 1e6,
      onShardComplete: async (info, keys) => {
        seen.push({ info, keys, tmpHash: sha256File(info.tmpPath), finalExists: existsSync(info.path) });
      },
    });
    for (const key of ['a', 'b', 'c']) await writer.write(blob(key, 10));
    await writer.close();
    expect(seen.map((s) => s.keys)).toEqual([['a', 'b'], ['c']]);
    expect(seen.map((s) => s.info.name)).toEqual([shardFileName('p', 5), shardFileName('p', 6)]);
    for (const s of seen) {
      expect(s.finalExists).toBe(false);
      expect(s.tmpHash).toBe(s.info.sha256);
      expect(s.info.tmpPath).toMatch(tmpOf(s.info.path));
    }
    expect(readdirSync(dir).sort()).toEqual(['p-000005.tar', 'p-000006.tar']);
  });

  it('leaves the .tmp unrenamed when onShardComplete throws', async () => {
    const dir = tempDir();
    const writer = new WebDatasetWriter({
      dir,
      prefix: 'wds',
      maxCount: 10,
      maxSize: 1e6,
      onShardComplete: () => {
        throw new Error('store is gone');
      },
    });
    await writer.write(blob('a', 10));
    await expect(writer.close()).rejects.toThrow('store is gone');
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(tmpOf('wds-000000.tar'));
    // The leftover is a complete archive.
    expect(listWithNodeTar(join(dir, left[0]!)).map((m) => m.path)).toEqual(['a.bin']);
    await expect(writer.write(blob('b', 1))).rejects.toThrow(/failed earlier/);
  });

  it('never renames over a file that appeared under the final name, and leaves its own .tmp', async () => {
    const dir = tempDir();
    const writer = new WebDatasetWriter({ dir, prefix: 'wds', maxCount: 10, maxSize: 1e6 });
    await writer.write(blob('a', 10));
    // Another process put a shard of this name there meanwhile.
    writeFileSync(join(dir, 'wds-000000.tar'), 'another writer\'s shard');
    await expect(writer.close()).rejects.toThrow(/wds-000000\.tar exists .*it was not replaced/);
    expect(readFileSync(join(dir, 'wds-000000.tar'), 'utf8')).toBe('another writer\'s shard');
    const left = readdirSync(dir).filter((f) => f.endsWith('.tmp'));
    expect(left).toHaveLength(1);
    expect(listWithNodeTar(join(dir, left[0]!)).map((m) => m.path)).toEqual(['a.bin']);
  });

  it('renames a shard to the file index onShardComplete picks', async () => {
    const dir = tempDir();
    const writer = new WebDatasetWriter({ dir, prefix: 'wds', maxCount: 1, maxSize: 1e6, onShardComplete: (info) => info.index + 5 });
    await writer.write(blob('a', 10));
    await writer.write(blob('b', 10));
    const shards = await writer.close();
    expect(shards.map((s) => [s.index, s.name])).toEqual([
      [5, 'wds-000005.tar'],
      [11, 'wds-000011.tar'],
    ]);
    expect(readdirSync(dir).sort()).toEqual(['wds-000005.tar', 'wds-000011.tar']);
  });

  it('abort leaves only a partial .tmp, never a final shard', async () => {
    const dir = tempDir();
    const writer = new WebDatasetWriter({ dir, prefix: 'wds', maxCount: 10, maxSize: 1e6 });
    await writer.write(blob('a', 10));
    await writer.abort();
    const left = readdirSync(dir);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(tmpOf('wds-000000.tar'));
  });

  it('writes no file when given no samples', async () => {
    const dir = join(tempDir(), 'never-made');
    expect(await writeAll(dir, [])).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('streams large samples with bounded buffering and correct content', async () => {
    const dir = tempDir();
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    const shards = await writeAll(dir, [{ key: 'big', members: [{ ext: 'bin', data: big }] }, blob('after', 3)]);
    const out = extractWithNodeTar(shards[0]!.path);
    expect(Buffer.compare(readFileSync(join(out, 'big.bin')), big)).toBe(0);
    expect(readFileSync(join(out, 'after.bin')).length).toBe(3);
  });
});
