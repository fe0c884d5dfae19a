/**
 * GPT-2's byte-to-character table, used by byte-level BPE vocabularies (GPT-2, Qwen2, Llama 3): each of the
 * 256 byte values is written as one printable character, so `Ġ` is a space (0x20) and `Ċ` a newline (0x0A).
 * Printable Latin-1 bytes stand for themselves; the other 68 bytes are mapped, in order, to U+0100 and up.
 */

let table: Map<string, number> | null = null;

/** Character → byte value. */
export function byteLevelDecoder(): ReadonlyMap<string, number> {
  if (table) return table;
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const isPrintable = new Set(printable);
  const map = new Map<string, number>();
  for (const b of printable) map.set(String.fromCodePoint(b), b);
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (isPrintable.has(b)) continue;
    map.set(String.fromCodePoint(256 + next), b);
    next++;
  }
  table = map;
  return map;
}
