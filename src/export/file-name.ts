/**
 * File names made from sample keys (LLaVA/Qwen `images/KEY.ext`, WebDataset members `KEY.ext`, which become
 * files when a shard is unpacked). A key is as long as its input made it (a 300-character WebDataset member
 * path), but a file name has at most 255 bytes on common file systems (ext4, XFS, btrfs, APFS); a longer
 * one cannot be written (ENAMETOOLONG), and a resume met the same key and failed the same way.
 *
 * A key of at most `MAX_STEM_BYTES` bytes in UTF-8 is the name as it is. A longer one is cut at a
 * character boundary and followed by `-` and 16 hex digits of its sha256: deterministic (the same key,
 * the same name, on every run and machine), distinct for distinct keys, and short enough for any
 * extension (`.input_ids.npy`) plus a `.tmp` suffix to fit. The sample's full key stays in its records
 * (`KEY.json` `key`, the run database).
 */
import { createHash } from 'node:crypto';

/** Longest stem in bytes: 255 less room for the longest extension and a temporary suffix. */
export const MAX_STEM_BYTES = 200;
const HASH_HEX = 16;

export function fileStem(key: string): string {
  if (Buffer.byteLength(key, 'utf8') <= MAX_STEM_BYTES) return key;
  const hash = createHash('sha256').update(key, 'utf8').digest('hex').slice(0, HASH_HEX);
  const budget = MAX_STEM_BYTES - HASH_HEX - 1;
  let cut = '';
  let bytes = 0;
  for (const char of key) {
    const size = Buffer.byteLength(char, 'utf8');
    if (bytes + size > budget) break;
    cut += char;
    bytes += size;
  }
  return `${cut}-${hash}`;
}
