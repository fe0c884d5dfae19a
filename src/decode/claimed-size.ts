/**
 * The size an image's own header claims, read from the bytes without any decoder. Used when sharp cannot
 * read a header at all: a decompression bomb is often cut off right after the fields that state its size
 * (Pillow's `decompression_bomb.gif` is 44 bytes), and it must be reported as too large, not as truncated.
 *
 * Read per format (each from its specification): GIF's logical screen and every image descriptor found
 * (the canvas covers each frame's left+width and top+height, as GIF decoders size it); PNG's IHDR; JPEG's
 * first start-of-frame marker; WebP's VP8X canvas, VP8 key frame or VP8L header. Null when the bytes do not
 * hold the fields.
 */
export interface ClaimedSize {
  width: number;
  height: number;
}

export function claimedSize(bytes: Buffer, format: string | null): ClaimedSize | null {
  switch (format) {
    case 'gif':
      return gifSize(bytes);
    case 'png':
      return bytes.length >= 24 && bytes.toString('latin1', 12, 16) === 'IHDR' ? { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) } : null;
    case 'jpeg':
      return jpegSize(bytes);
    case 'webp':
      return webpSize(bytes);
    default:
      return null;
  }
}

function gifSize(bytes: Buffer): ClaimedSize | null {
  if (bytes.length < 13) return null;
  let width = bytes.readUInt16LE(6);
  let height = bytes.readUInt16LE(8);
  const colourTable = (flags: number) => (flags & 0x80 ? 3 * 2 ** ((flags & 0x07) + 1) : 0);
  /** Skip data sub-blocks from `at`; the offset after the terminator, or null when the bytes end first. */
  const skipBlocks = (at: number): number | null => {
    let i = at;
    while (i < bytes.length) {
      const n = bytes[i]!;
      i += 1 + n;
      if (n === 0) return i;
    }
    return null;
  };
  let at: number | null = 13 + colourTable(bytes[10]!);
  while (at !== null && at < bytes.length) {
    const block = bytes[at]!;
    if (block === 0x21) {
      at = skipBlocks(at + 2);
    } else if (block === 0x2c) {
      if (at + 10 > bytes.length) break;
      width = Math.max(width, bytes.readUInt16LE(at + 1) + bytes.readUInt16LE(at + 5));
      height = Math.max(height, bytes.readUInt16LE(at + 3) + bytes.readUInt16LE(at + 7));
      at = skipBlocks(at + 10 + colourTable(bytes[at + 9]!) + 1);
    } else {
      break; // trailer (0x3b) or damage
    }
  }
  return { width, height };
}

/** SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size. */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

function jpegSize(bytes: Buffer): ClaimedSize | null {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2;
      continue;
    }
    if (isStartOfFrame(marker)) {
      return at + 9 <= bytes.length ? { height: bytes.readUInt16BE(at + 5), width: bytes.readUInt16BE(at + 7) } : null;
    }
    if (marker === 0xda || marker === 0xd9) return null; // scan data before any frame header: none to read
    at += 2 + bytes.readUInt16BE(at + 2);
  }
  return null;
}

function webpSize(bytes: Buffer): ClaimedSize | null {
  if (bytes.length < 30) return null;
  const chunk = bytes.toString('latin1', 12, 16);
  if (chunk === 'VP8X') return { width: bytes.readUIntLE(24, 3) + 1, height: bytes.readUIntLE(27, 3) + 1 };
  if (chunk === 'VP8 ') return { width: bytes.readUInt16LE(26) & 0x3fff, height: bytes.readUInt16LE(28) & 0x3fff };
  if (chunk === 'VP8L') {
    const bits = bytes.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  return null;
}
