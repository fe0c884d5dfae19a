#!/usr/bin/env node
/**
 * The malformed-input corpus: a few hundred broken inputs, each with the exact outcome vlcurate must give
 * it, written as ready-to-run builds (a recipe per build, many cases per build).
 *
 *     node tools/make-malformed-corpus.mjs OUT [--url-origin http://127.0.0.1:PORT] [--llm-base-url http://127.0.0.1:PORT/v1]
 *
 * writes every case under OUT and prints the cases per category. The URL and LLM categories need servers:
 * without `--url-origin` / `--llm-base-url` they are left out. tests/e2e/malformed-corpus.test.ts calls
 * `generateCorpus()` into a temp folder with its own local servers (tests/http-server/image-server.ts,
 * tests/llm-server/server.ts), runs every build through the CLI and checks each case.
 *
 * A build is `{category, name, recipe, exit, stderr?, cases}`: `exit` is the exit code the build must end
 * with, `stderr` (for configuration errors) a pattern its message must match. A case names the samples it
 * makes, `records: {KEY: expected}`, where expected is `ok`, an error code (`image_truncated`) or
 * `dropped:REASON`; optional checks: `captionIssue` (the first caption's issue), `droppedAnnotations`
 * (codes in `meta.droppedAnnotations`), `instructions` (`{TASK: "STATUS:CODE"}` or `{TASK: "ok"}`). Every
 * sample a build records must belong to a case.
 *
 * Plain Node plus the project's own dependencies (sharp for real images, hyparquet-writer for Parquet);
 * every byte is derived from fixed seeds, so two runs write the same corpus.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, gzipSync } from 'node:zlib';
import { parquetWriteFile } from 'hyparquet-writer';
import sharp from 'sharp';

export const CATEGORIES = ['images', 'tars', 'manifests', 'coco', 'llava', 'recipes', 'urls', 'llm'];

/**
 * Write the corpus under `root`. `urlOrigin` (an image server with the routes of
 * tests/http-server/image-server.ts) and `llmBaseURL` (tests/llm-server/server.ts, scripted with
 * `llmBehaviour`) enable the URL and LLM categories; `refusedBaseURL` (a port nothing listens on) adds a
 * dead LLM server.
 * @param {string} root
 * @param {{ urlOrigin?: string | null, llmBaseURL?: string | null, refusedBaseURL?: string | null }} [options]
 */
export async function generateCorpus(root, options = {}) {
  const base = await baseImages();
  const builds = [
    ...(await imageBuilds(join(root, 'images'), base)),
    ...tarBuilds(join(root, 'tars'), base),
    ...manifestBuilds(join(root, 'manifests'), base),
    ...cocoBuilds(join(root, 'coco'), base),
    ...llavaBuilds(join(root, 'llava'), base),
    ...recipeBuilds(join(root, 'recipes'), base),
  ];
  if (options.urlOrigin) builds.push(...urlBuilds(join(root, 'urls'), options.urlOrigin));
  if (options.llmBaseURL) builds.push(...llmBuilds(join(root, 'llm'), base, options.llmBaseURL, options.refusedBaseURL ?? null));
  return { root, builds };
}

/** Cases per category. */
export function countCases(builds) {
  const counts = Object.fromEntries(CATEGORIES.map((c) => [c, 0]));
  for (const build of builds) counts[build.category] += build.cases.length;
  return counts;
}

// ---------------------------------------------------------------------------------------------------------
// Bytes

function write(file, data) {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data);
}

function writeJson(file, value) {
  write(file, JSON.stringify(value, null, 2));
}

/** Deterministic bytes (mulberry32). */
function pseudoRandomBytes(n, seed) {
  let a = seed >>> 0;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (t ^ (t >>> 14)) & 0xff;
  }
  return out;
}

/** A noisy RGB picture (real entropy, so encoders write real scan data), as raw pixels. */
function noisyPixels(width, height, seed) {
  const pixels = pseudoRandomBytes(width * height * 3, seed);
  // Smooth it a little so it looks like a picture and compresses like one.
  for (let i = 3; i < pixels.length; i++) pixels[i] = (pixels[i] + pixels[i - 3] * 3) >> 2;
  return { data: pixels, raw: { width, height, channels: 3 } };
}

async function encode(width, height, seed, format, options = {}) {
  const { data, raw } = noisyPixels(width, height, seed);
  return sharp(data, { raw }).toFormat(format, options).toBuffer();
}

/** The real images the cases are made from. */
async function baseImages() {
  return {
    jpeg: await encode(64, 48, 1, 'jpeg', { quality: 85 }),
    progressive: await encode(64, 48, 2, 'jpeg', { progressive: true }),
    png: await encode(48, 40, 3, 'png'),
    gif: await encode(40, 30, 4, 'gif'),
    webp: await encode(48, 32, 5, 'webp', { quality: 80 }),
    // LZW: the directory comes after the pixel data, as most TIFF writers put it.
    tiff: await encode(32, 24, 6, 'tiff', { compression: 'lzw' }),
    tiny: await encode(1, 1, 7, 'png'),
    rgba: await sharp({ create: { width: 20, height: 20, channels: 4, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } }).png().toBuffer(),
    gray16: await sharp(noisyPixels(24, 24, 8).data, { raw: noisyPixels(24, 24, 8).raw }).grayscale().toColourspace('grey16').png().toBuffer(),
    cmyk: await encode(32, 32, 9, 'jpeg').then((b) => sharp(b).toColourspace('cmyk').jpeg().toBuffer()),
    rotated: await encode(40, 20, 10, 'jpeg').then((b) => sharp(b).withMetadata({ orientation: 6 }).jpeg().toBuffer()),
  };
}

function pngChunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG whose IHDR claims `width` x `height` (8-bit RGB), with `idat` as its only data. */
function pngClaiming(width, height, idat = Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', Buffer.alloc(0))]);
}

/** The PNG's chunks as [offset, type, length]. */
function pngChunks(png) {
  const out = [];
  for (let at = 8; at + 8 <= png.length; ) {
    const length = png.readUInt32BE(at);
    out.push({ at, type: png.toString('latin1', at + 4, at + 8), length });
    at += 12 + length;
  }
  return out;
}

/** A JPEG with the size fields of its first start-of-frame marker replaced. */
function jpegClaiming(jpeg, width, height) {
  const out = Buffer.from(jpeg);
  for (let i = 2; i + 9 < out.length; ) {
    if (out[i] !== 0xff) break;
    const marker = out[i + 1];
    const length = out.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xc3) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
    i += 2 + length;
  }
  throw new Error('no SOF marker');
}

/** Offset of the first JPEG marker `code` (e.g. 0xc4 DHT, 0xda SOS). */
function jpegMarker(jpeg, code) {
  for (let i = 2; i + 4 < jpeg.length; ) {
    if (jpeg[i] !== 0xff) return -1;
    if (jpeg[i + 1] === code) return i;
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  return -1;
}

/** A GIF (header, logical screen, one 1x1 frame) whose logical screen is `width` x `height`. */
function gifClaiming(width, height) {
  const screen = Buffer.alloc(7);
  screen.writeUInt16LE(width, 0);
  screen.writeUInt16LE(height, 2);
  screen[4] = 0x80; // global colour table of 2 entries
  return Buffer.concat([
    Buffer.from('GIF89a', 'latin1'),
    screen,
    Buffer.from([0, 0, 0, 255, 255, 255]),
    Buffer.from([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]), // image descriptor: 1x1 at 0,0
    Buffer.from([0x02, 0x02, 0x44, 0x01, 0x00]), // LZW min code size 2, one data block, terminator
    Buffer.from([0x3b]),
  ]);
}

/** Pillow's decompression_bomb.gif, rebuilt: a 44-byte GIF whose frame claims 0xffff x 0xffff, cut after the descriptor. */
function bombGif() {
  const screen = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x80, 0, 0]);
  return Buffer.concat([Buffer.from('GIF89a', 'latin1'), screen, Buffer.from([0, 0, 0, 255, 255, 255]), Buffer.from([0x2c, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x02, 0x02, 0x44])]).subarray(0, 44);
}

/** A WebP VP8X header claiming a canvas of `width` x `height`, and nothing else. */
function webpClaiming(width, height) {
  const vp8x = Buffer.alloc(10);
  vp8x.writeUIntLE(width - 1, 4, 3);
  vp8x.writeUIntLE(height - 1, 7, 3);
  const chunk = Buffer.concat([Buffer.from('VP8X', 'latin1'), Buffer.from([10, 0, 0, 0]), vp8x]);
  const size = Buffer.alloc(4);
  size.writeUInt32LE(4 + chunk.length);
  return Buffer.concat([Buffer.from('RIFF', 'latin1'), size, Buffer.from('WEBP', 'latin1'), chunk]);
}

/** A minimal BMP header and pixels (a format sharp does not read). */
function bmp() {
  const pixels = Buffer.alloc(2 * 2 * 4, 0x7f);
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + pixels.length, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  return Buffer.concat([header, pixels]);
}

const cut = (bytes, fraction) => bytes.subarray(0, Math.floor(bytes.length * fraction));

function flipByte(bytes, at) {
  const out = Buffer.from(bytes);
  out[at] ^= 0xff;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Tar

/** One ustar header block. `sizeField` (12 bytes, e.g. base-256) and `checksum` override the computed ones. */
function tarHeader({ name, size = 0, type = '0', prefix = '', linkname = '', sizeField = null, checksum = null }) {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  if (sizeField) sizeField.copy(header, 124);
  else header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('07346545000\0', 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write(type, 156, 'latin1');
  header.write(linkname, 157, 100, 'utf8');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  header.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${(checksum ?? sum).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

/** A tar archive of `entries` (`{name, data}` or `{header}` for a hand-made header), ended properly unless `end: false`. */
function tar(entries, { end = true } = {}) {
  const parts = [];
  for (const entry of entries) {
    if (entry.raw) {
      parts.push(entry.raw);
      continue;
    }
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data);
    parts.push(entry.header ?? tarHeader({ name: entry.name, size: data.length, type: entry.type ?? '0', linkname: entry.linkname ?? '' }));
    parts.push(data);
    if (data.length % 512) parts.push(Buffer.alloc(512 - (data.length % 512)));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------------------
// Builds

/** A build of many cases; `records` of each case defaults to `{[name]: expect}`. */
function build(category, name, recipe, exit, cases, extra = {}) {
  return { category, name, recipe, exit, cases, ...extra };
}

/** A build that must stop at its configuration: exit 2, one line matching `stderr`, no samples. */
function configBuild(category, name, recipe, stderr) {
  return build(category, name, recipe, 2, [{ name, records: {} }], { stderr });
}

function recipeFile(dir, file, value) {
  const path = join(dir, file);
  write(path, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return path;
}

// ---------------------------------------------------------------------------------------------------------
// Images: one JSON Lines manifest, a row per case, key = case name.

async function imageBuilds(dir, base) {
  const files = join(dir, 'files');
  mkdirSync(files, { recursive: true });
  const rows = [];
  const cases = [];
  /** `content`: bytes written to files/FILE, or null when the case makes FILE itself (or names a path). */
  const add = (name, file, content, expect) => {
    if (content !== null) write(join(files, file), content);
    rows.push({ key: name, image: file, caption: `case ${name}` });
    cases.push({ name, records: { [name]: expect } });
  };

  add('ok_jpeg', 'ok.jpg', base.jpeg, 'ok');
  add('ok_progressive_jpeg', 'progressive.jpg', base.progressive, 'ok');
  add('ok_png', 'ok.png', base.png, 'ok');
  add('ok_gif', 'ok.gif', base.gif, 'ok');
  add('ok_webp', 'ok.webp', base.webp, 'ok');
  add('ok_tiff', 'ok.tiff', base.tiff, 'ok');
  add('ok_1x1_png', 'tiny.png', base.tiny, 'ok');
  add('ok_rgba_png', 'rgba.png', base.rgba, 'ok');
  add('ok_grey16_png', 'grey16.png', base.gray16, 'ok');
  add('ok_cmyk_jpeg', 'cmyk.jpg', base.cmyk, 'ok');
  add('ok_exif_rotated_jpeg', 'rotated.jpg', base.rotated, 'ok');
  // The extension does not decide: the bytes do.
  add('ok_png_named_jpg', 'png-named.jpg', base.png, 'ok');
  add('ok_jpeg_named_png', 'jpeg-named.png', base.jpeg, 'ok');
  add('ok_webp_named_gif', 'webp-named.gif', base.webp, 'ok');
  add('ok_no_extension', 'no-extension', base.jpeg, 'ok');
  add('ok_uppercase_extension', 'UPPER.JPG', base.jpeg, 'ok');

  for (const fraction of [0.05, 0.25, 0.5, 0.75, 0.95]) add(`truncated_jpeg_${fraction * 100}`, `cut-${fraction}.jpg`, cut(base.jpeg, fraction), 'image_truncated');
  add('truncated_jpeg_no_eoi', 'no-eoi.jpg', base.jpeg.subarray(0, base.jpeg.length - 2), 'image_truncated');
  add('truncated_progressive_jpeg', 'cut-progressive.jpg', cut(base.progressive, 0.6), 'image_truncated');
  add('truncated_jpeg_header_only', 'header-only.jpg', base.jpeg.subarray(0, 20), 'image_truncated');
  for (const fraction of [0.25, 0.5, 0.75]) add(`truncated_png_${fraction * 100}`, `cut-${fraction}.png`, cut(base.png, fraction), 'image_truncated');
  add('truncated_png_no_iend', 'no-iend.png', base.png.subarray(0, base.png.length - 12), 'image_truncated');
  add('truncated_png_signature_only', 'signature.png', PNG_SIGNATURE, 'image_truncated');
  add('truncated_png_ihdr_only', 'ihdr-only.png', base.png.subarray(0, 33), 'image_truncated');
  add('truncated_gif_50', 'cut.gif', cut(base.gif, 0.5), 'image_truncated');
  add('truncated_webp_50', 'cut.webp', cut(base.webp, 0.5), 'image_truncated');
  add('truncated_tiff_50', 'cut.tiff', cut(base.tiff, 0.5), 'image_truncated');

  const idat = pngChunks(base.png).find((c) => c.type === 'IDAT');
  add('corrupt_png_idat_crc', 'idat-crc.png', flipByte(base.png, idat.at + 8 + Math.floor(idat.length / 2)), 'image_corrupt');
  add('corrupt_png_ihdr_crc', 'ihdr-crc.png', flipByte(base.png, 8 + 8 + 9), 'image_corrupt');
  add('corrupt_png_zero_size', 'zero-size.png', pngClaiming(0, 0), 'image_corrupt');
  const dht = jpegMarker(base.jpeg, 0xc4);
  const garbledTable = Buffer.from(base.jpeg);
  pseudoRandomBytes(24, 11).copy(garbledTable, dht + 5);
  add('corrupt_jpeg_huffman_table', 'dht.jpg', garbledTable, 'image_corrupt');

  add('empty_file', 'empty.jpg', Buffer.alloc(0), 'image_empty');
  add('text_named_jpg', 'text.jpg', 'this is a caption file, not an image\n', 'image_unsupported');
  add('html_named_png', 'page.png', '<!doctype html><html><body><img src="x.png"></body></html>\n', 'image_unsupported');
  add('svg_image', 'vector.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', 'image_unsupported');
  add('svg_named_jpg', 'vector.jpg', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>', 'image_unsupported');
  add('pdf_named_jpg', 'document.jpg', '%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n', 'image_unsupported');
  add('random_bytes_named_webp', 'noise.webp', pseudoRandomBytes(4096, 12), 'image_unsupported');
  add('zip_named_png', 'archive.png', Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), pseudoRandomBytes(200, 13)]), 'image_unsupported');
  add('bmp_image', 'bitmap.bmp', bmp(), 'image_unsupported');

  // Headers that claim more pixels than decode.maxPixels: refused before any pixel is decoded.
  add('huge_png_header', 'huge.png', pngClaiming(100_000, 100_000), 'image_too_large');
  add('huge_png_header_cut', 'huge-cut.png', pngClaiming(100_000, 100_000).subarray(0, 33), 'image_too_large');
  add('huge_jpeg_sof', 'huge.jpg', jpegClaiming(base.jpeg, 60_000, 60_000), 'image_too_large');
  // A huge logical screen around a 1x1 frame: decoders size the picture by its frames, so it is 1x1.
  add('ok_gif_huge_screen_small_frame', 'huge-screen.gif', gifClaiming(65_535, 65_535), 'ok');
  add('bomb_gif_44_bytes', 'bomb.gif', bombGif(), 'image_too_large');
  add('huge_webp_vp8x', 'huge.webp', webpClaiming(16_384, 16_384), 'image_too_large');
  // More bytes than decode.maxBytes (4 MiB in this recipe): refused from the file size, unread.
  add('over_max_bytes', 'big.jpg', Buffer.concat([base.jpeg, Buffer.alloc(5 * 1024 * 1024)]), 'image_too_large');

  // Paths that are no image file.
  add('missing_file', 'not-there.jpg', null, 'image_missing');
  mkdirSync(join(files, 'folder.jpg'), { recursive: true });
  add('folder_named_jpg', 'folder.jpg', null, 'image_missing');
  symlinkSync('/dev/zero', join(files, 'zero-link.jpg'));
  symlinkSync('ok.jpg', join(files, 'good-link.jpg'));
  add('ok_symlink_to_image', 'good-link.jpg', null, 'ok');
  symlinkSync('nowhere.jpg', join(files, 'dangling.jpg'));
  add('dangling_symlink', 'dangling.jpg', null, 'image_missing');
  if (makeFifo(join(files, 'fifo.jpg'))) add('fifo_named_jpg', 'fifo.jpg', null, 'image_unreadable');
  // Confined to the images folder (the default): what lies outside it is refused before it is opened.
  add('symlink_to_dev_zero', 'zero-link.jpg', null, 'image_path_invalid');
  add('dev_zero_absolute', '/dev/zero', null, 'image_path_invalid');
  add('dev_zero_file_url', 'file:///dev/zero', null, 'image_path_invalid');
  add('etc_passwd_absolute', '/etc/passwd', null, 'image_path_invalid');
  add('path_traversal', '../../../../etc/passwd', null, 'image_path_invalid');
  add('nul_in_path', 'ok.jpg\u0000.png', null, 'image_missing');
  add('ftp_url', 'ftp://127.0.0.1/a.jpg', null, 'url_invalid');
  add('data_url', `data:image/png;base64,${base.tiny.toString('base64')}`, null, 'url_invalid');
  add('http_url_without_host', 'http://', null, 'url_invalid');

  write(join(dir, 'images.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);

  // With allowAbsolutePaths the same paths are opened, and only regular files are read.
  const open = [];
  const addOpen = (name, image, expect) => {
    open.push({ key: name, image, caption: `case ${name}` });
    cases.push({ name, records: { [name]: expect } });
  };
  addOpen('unconfined_symlink_to_dev_zero', 'zero-link.jpg', 'image_unreadable');
  addOpen('unconfined_dev_zero', '/dev/zero', 'image_unreadable');
  addOpen('unconfined_dev_zero_file_url', 'file:///dev/zero', 'image_unreadable');
  addOpen('unconfined_dev_urandom', '/dev/urandom', 'image_unreadable');
  addOpen('unconfined_proc_file', '/proc/self/status', 'image_unsupported');
  addOpen('unconfined_folder', '/tmp', 'image_missing');
  addOpen('unconfined_absolute_image', join(files, 'ok.jpg'), 'ok');
  write(join(dir, 'unconfined.jsonl'), `${open.map((r) => JSON.stringify(r)).join('\n')}\n`);

  const recipe = recipeFile(dir, 'recipe.json', {
    run: { db: 'out/run.db' },
    decode: { maxBytes: 4 * 1024 * 1024 },
    sources: [
      { type: 'jsonl', name: 'images', path: 'images.jsonl', image: 'image', caption: 'caption', key: 'key', imagesDir: 'files' },
      { type: 'jsonl', name: 'unconfined', path: 'unconfined.jsonl', image: 'image', caption: 'caption', key: 'key', imagesDir: 'files', allowAbsolutePaths: true },
    ],
    export: [{ type: 'webdataset', out: 'out/wds' }],
  });
  return [build('images', 'images', recipe, 1, cases), longKeyBuild(join(dir, 'long-keys'), base)];
}

/**
 * Keys too long for a file name (255 bytes on most file systems) in both kinds of export: the shards'
 * member names and the JSON exports' image files. Everything must export: exit 0.
 */
function longKeyBuild(dir, base) {
  write(join(dir, 'a.jpg'), base.jpeg);
  const keys = {
    ascii_300: 'k'.repeat(300),
    cjk_120_chars_360_bytes: '猫'.repeat(120),
    dots_and_spaces_250: 'a. b'.repeat(62),
    just_under_200_bytes: 'x'.repeat(199),
  };
  const rows = Object.values(keys).map((id) => JSON.stringify({ id, image: 'a.jpg', caption: 'a red ball' }));
  write(join(dir, 'm.jsonl'), `${rows.join('\n')}\n`);
  const cleaned = (id) => id.replace(/[^\p{L}\p{M}\p{N}_-]/gu, '_');
  const cases = Object.entries(keys).map(([name, id]) => ({ name: `long_key_${name}`, records: { [cleaned(id)]: 'ok' } }));
  const recipe = recipeFile(dir, 'recipe.json', {
    run: { db: 'out/run.db' },
    sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'id' }],
    export: [
      { type: 'webdataset', out: 'out/wds' },
      { type: 'llava', out: 'out/llava' },
      { type: 'qwen2vl', out: 'out/qwen' },
    ],
  });
  return build('images', 'long_keys', recipe, 0, cases);
}

function makeFifo(path) {
  try {
    execFileSync('mkfifo', [path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tars: a WebDataset source per case (keyPrefix = case name + "_"), so one broken shard touches only its case.

function tarBuilds(dir, base) {
  const sources = [];
  const cases = [];
  /** `file`: the shard's bytes, or null when the case makes (or leaves out) the path itself. */
  const add = (name, file, records, extra = {}) => {
    const shard = `${name}.tar${extra.gz ? '.gz' : ''}`;
    if (file !== null) write(join(dir, shard), file);
    sources.push({ type: 'webdataset', name, paths: shard, keyPrefix: `${name}_` });
    const prefixed = {};
    for (const [key, expect] of Object.entries(records)) {
      prefixed[key === SHARD ? `${name}_${name}_tar${extra.gz ? '_gz' : ''}__shard` : `${name}_${key}`] = expect;
    }
    cases.push({ name, records: prefixed, ...(extra.captionIssue ? { captionIssue: extra.captionIssue } : {}) });
  };
  const SHARD = '<shard>';
  const sample = (key, image = base.jpeg, ext = 'jpg') => [
    { name: `${key}.${ext}`, data: image },
    { name: `${key}.txt`, data: `caption of ${key}` },
  ];
  const good = tar([...sample('s0'), ...sample('s1', base.png, 'png')]);
  /** Where the header of member `name` starts in `archive`. */
  const headerAt = (archive, name) => {
    for (let at = 0; at + 512 <= archive.length; ) {
      const member = archive.toString('utf8', at, at + 100).replace(/\0.*$/s, '');
      if (member === name) return at;
      const size = parseInt(archive.toString('latin1', at + 124, at + 136), 8) || 0;
      at += 512 + Math.ceil(size / 512) * 512;
    }
    throw new Error(`no member ${name}`);
  };

  add('ok_two_samples', good, { s0: 'ok', s1: 'ok' });
  add('ok_gzip', gzipSync(good), { s0: 'ok', s1: 'ok' }, { gz: true });
  const big = tar([...sample('s0'), ...sample('s1', Buffer.concat([base.jpeg, base.jpeg.subarray(2)]))]);
  // Cut inside s1.jpg's data: s0 is whole, s1 is the sample cut off.
  add('truncated_mid_member', big.subarray(0, headerAt(big, 's1.jpg') + 512 + 700), { s0: 'ok', s1: 'tar_truncated' });
  // Cut inside s1.jpg's header: s0's members are whole, but the reader cannot know s0 had no more of them.
  add('truncated_in_header', big.subarray(0, headerAt(big, 's1.jpg') + 100), { s0: 'tar_truncated' });
  // Compressed, the cut lands inside s0.jpg.
  add('truncated_gzip', gzipSync(big).subarray(0, Math.floor(gzipSync(big).length * 0.6)), { s0: 'tar_truncated' }, { gz: true });
  // Whole members but no end-of-archive blocks (many writers' output when killed after a member).
  add('no_end_blocks', tar([...sample('s0'), ...sample('s1')], { end: false }), { s0: 'ok', s1: 'ok' });
  add('zero_blocks_only', Buffer.alloc(1024), {});
  add('empty_file', Buffer.alloc(0), {});

  const badFirst = Buffer.from(good);
  badFirst.write('0000001\0 ', 148, 'latin1');
  // Not a tar from its first header on: the shard cannot be read at all.
  add('bad_checksum_first_header', badFirst, { [SHARD]: 'shard_unreadable' });
  const badSecond = Buffer.from(good);
  badSecond.write('0000001\0 ', headerAt(good, 's1.png') + 148, 'latin1');
  add('bad_checksum_second_sample', badSecond, { s0: 'tar_corrupt' });
  add('not_a_tar', 'this is a text file that someone named shard.tar\n'.repeat(20), { [SHARD]: 'shard_unreadable' });
  add('gzip_of_garbage', gzipSync(pseudoRandomBytes(3000, 21)), { [SHARD]: 'shard_unreadable' }, { gz: true });
  add('garbage_after_gzip_magic', Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), pseudoRandomBytes(500, 22)]), { [SHARD]: 'shard_unreadable' }, { gz: true });
  // Damage after the first good member: the sample being read when it is found is the one recorded.
  const badMiddle = Buffer.from(good);
  pseudoRandomBytes(512, 23).copy(badMiddle, headerAt(good, 's1.png'));
  add('garbage_header_mid_archive', badMiddle, { s0: 'tar_corrupt' });
  add('missing_shard', null, { [SHARD]: 'shard_missing' });
  mkdirSync(join(dir, 'folder_named_tar.tar'), { recursive: true });
  add('folder_named_tar', null, { [SHARD]: 'shard_unreadable' });
  if (makeFifo(join(dir, 'fifo_named_tar.tar'))) add('fifo_named_tar', null, { [SHARD]: 'shard_unreadable' });
  symlinkSync('/dev/zero', join(dir, 'dev_zero_link.tar'));
  add('dev_zero_link', null, { [SHARD]: 'shard_unreadable' });

  add('member_without_image', tar([{ name: 's0.txt', data: 'a caption' }, { name: 's0.json', data: '{"url": "x"}' }, ...sample('s1')]), { s0: 'image_missing', s1: 'ok' });
  add('image_member_empty', tar([{ name: 's0.jpg', data: Buffer.alloc(0) }, { name: 's0.txt', data: 'x' }, ...sample('s1')]), { s0: 'image_empty', s1: 'ok' });
  add('image_member_truncated', tar([...sample('s0', cut(base.jpeg, 0.5)), ...sample('s1')]), { s0: 'image_truncated', s1: 'ok' });
  add('image_member_is_text', tar([...sample('s0', Buffer.from('not an image')), ...sample('s1')]), { s0: 'image_unsupported', s1: 'ok' });
  add('json_member_invalid', tar([...sample('s0'), { name: 's0.json', data: '{"caption": "unterminated' }, ...sample('s1')]), { s0: 'json_invalid', s1: 'ok' });
  add('json_member_array', tar([...sample('s0'), { name: 's0.json', data: '[1, 2]' }]), { s0: 'json_invalid' });
  add('caption_invalid_utf8', tar([{ name: 's0.jpg', data: base.jpeg }, { name: 's0.txt', data: Buffer.from([0x61, 0x20, 0xff, 0xfe, 0x62]) }]), { s0: 'ok' }, { captionIssue: 'invalid_utf8' });
  add('caption_too_long', tar([{ name: 's0.jpg', data: base.jpeg }, { name: 's0.txt', data: 'long '.repeat(10_000) }]), { s0: 'ok' }, { captionIssue: 'too_long' });
  add('caption_control_chars', tar([{ name: 's0.jpg', data: base.jpeg }, { name: 's0.txt', data: 'a red\u0007 ball\u202e here\u001b[2J' }]), { s0: 'ok' }, { captionIssue: 'control_chars_removed' });

  // A header whose size field claims 8 GiB (octal) or 1 TiB (base-256), with the archive ending after
  // a block: nothing is buffered, and the shard is reported cut off.
  const octal = tarHeader({ name: 's1.jpg', sizeField: Buffer.from('77777777777\0', 'latin1') });
  add('huge_size_octal', Buffer.concat([tar(sample('s0'), { end: false }), octal, base.jpeg.subarray(0, 512)]), { s0: 'ok', s1: 'tar_truncated' });
  const base256 = Buffer.alloc(12);
  base256[0] = 0x80;
  base256.writeUIntBE(2 ** 40, 6, 6);
  add('huge_size_base256', Buffer.concat([tar(sample('s0'), { end: false }), tarHeader({ name: 's1.jpg', sizeField: base256 }), base.jpeg.subarray(0, 512)]), { s0: 'ok', s1: 'tar_truncated' });
  // Real members over decode.maxBytes (1 MiB in this recipe): read past from their headers, never held.
  const overLimit = Buffer.concat([base.jpeg, Buffer.alloc(1024 * 1024 + 10)]);
  add(
    'members_over_max_bytes',
    tar([{ name: 'big.jpg', data: overLimit }, { name: 'big.txt', data: 'x' }, { name: 'long.jpg', data: base.jpeg }, { name: 'long.txt', data: overLimit }, ...sample('after')]),
    { big: 'image_too_large', long: 'member_too_large', after: 'ok' },
  );

  // Names: what a tar may call its members. Nothing is extracted; a name only becomes a key.
  add(
    'path_traversal_names',
    tar([{ name: '../../etc/passwd.jpg', data: base.jpeg }, { name: '/abs/x.jpg', data: base.png }, { name: './ok.jpg', data: base.jpeg }]),
    { ______etc_passwd: 'ok', _abs_x: 'ok', ok: 'ok' },
  );
  add('symlink_member', tar([{ name: 's0.jpg', type: '2', linkname: '/etc/passwd' }, { name: 's0.txt', data: 'x' }]), { s0: 'image_missing' });
  add('hardlink_member', tar([...sample('s0'), { name: 's1.jpg', type: '1', linkname: 's0.jpg' }, { name: 's1.txt', data: 'x' }]), { s0: 'ok', s1: 'image_missing' });
  add(
    'directories_and_pax_headers',
    tar([{ name: 'dir/', type: '5' }, { name: 'pax_global_header', type: 'g', data: '20 comment=hello\n' }, { name: 'dir/s0.jpg', data: base.jpeg }]),
    { dir_s0: 'ok' },
  );
  add('unicode_member_name', tar([{ name: 'ünïcødé.jpg', data: base.jpeg }]), { ünïcødé: 'ok' });
  add('control_chars_in_name', tar([{ name: 'a\u001b[31mred.jpg', data: base.jpeg }]), { a__31mred: 'ok' });
  add('hidden_and_extensionless_members', tar([{ name: '.hidden.jpg', data: base.jpeg }, { name: 'README', data: 'x' }, ...sample('s0')]), { s0: 'ok' });
  add('first_dot_splits_the_key', tar([{ name: 's0.tar.gz.jpg', data: base.jpeg }, { name: 's0.tar.gz.txt', data: 'x' }]), { s0: 'image_missing' });
  add('uppercase_extension', tar([{ name: 'S0.JPG', data: base.jpeg }]), { S0: 'ok' });
  add('two_images_one_sample', tar([{ name: 's0.jpg', data: base.jpeg }, { name: 's0.png', data: base.png }, { name: 's0.webp', data: base.webp }]), { s0: 'ok' });
  add('key_again_apart', tar([...sample('s0'), ...sample('s1'), { name: 's0.json', data: '{}' }]), { s0: 'ok', s1: 'ok', s0__dup2: 'key_duplicate' });
  add('keys_that_clean_to_one', tar([{ name: 'a b.jpg', data: base.jpeg }, { name: 'a_b.jpg', data: base.jpeg }]), { a_b: 'ok', a_b__dup2: 'key_collision' });

  const recipe = recipeFile(dir, 'recipe.json', { run: { db: 'out/run.db' }, decode: { maxBytes: 1024 * 1024 }, sources });
  return [build('tars', 'tars', recipe, 1, cases)];
}

// ---------------------------------------------------------------------------------------------------------
// Manifests: JSON Lines, CSV, TSV and Parquet files, a source each (keys `<file>_<row:09d>`), in one build;
// files that cannot be read as manifests at all are builds of their own that must stop with exit 2.

function manifestBuilds(dir, base) {
  write(join(dir, 'files', 'a.jpg'), base.jpeg);
  const sources = [];
  const cases = [];
  const rowKey = (prefix, row) => `${prefix}_${String(row).padStart(9, '0')}`;
  /**
   * One manifest file. `rows`: `[text, expected, extra?]` per data row, in order (`expected: null` for a
   * line that is no row: blank). `content` writes the file from the row texts.
   */
  const file = (name, type, rows, { header = '', content = null, options = {} } = {}) => {
    const prefix = name.replace(/[^A-Za-z0-9_]/g, '_');
    let text = header;
    let index = 0;
    for (const [line, expect, { key = null, ...extra } = {}] of rows) {
      text = Buffer.concat([Buffer.from(text), Buffer.isBuffer(line) ? line : Buffer.from(line), Buffer.from('\n')]);
      if (expect === null) continue;
      const row = index++;
      cases.push({ name: `${prefix}_row_${row}`, records: { [key ?? rowKey(prefix, row)]: expect }, ...extra });
    }
    write(join(dir, name), content === null ? text : content(text));
    sources.push({ type, name: prefix, path: name, image: 'image', caption: 'caption', keyPrefix: `${prefix}_`, imagesDir: 'files', order: 'input', ...options });
  };
  const j = (value) => JSON.stringify(value);
  const CONTROL = { captionIssue: 'control_chars_removed' };
  const INVALID_UTF8 = { captionIssue: 'invalid_utf8' };

  file('rows.jsonl', 'jsonl', [
    [j({ image: 'a.jpg', caption: 'a caption' }), 'ok'],
    ['{"image": "a.jpg", "caption": "not closed', 'row_invalid'],
    ['[1, 2]', 'row_invalid'],
    ['42', 'row_invalid'],
    ['null', 'row_invalid'],
    [j({ image: 5, caption: 'x' }), 'row_invalid'],
    [j({ image: '', caption: 'x' }), 'row_invalid'],
    [j({ image: ['a.jpg'], caption: 'x' }), 'row_invalid'],
    [j({ caption: 'no image column' }), 'row_invalid'],
    [j({ image: 'a.jpg', caption: { text: 'x' } }), 'row_invalid'],
    // A number is taken as its text (a caption "2024" is a caption).
    [j({ image: 'a.jpg', caption: 12345 }), 'ok'],
    [j({ image: 'a.jpg', caption: ['one', 'two'] }), 'ok'],
    [j({ image: 'a.jpg', caption: ['one', 2] }), 'ok'],
    [j({ image: 'a.jpg', caption: null }), 'ok'],
    [j({ image: 'a.jpg' }), 'ok'],
    [j({ image: 'a.jpg', caption: '' }), 'ok'],
    // Longer than decode.maxCaptionChars (16,384): kept on record, cut, marked, never published.
    [j({ image: 'a.jpg', caption: 'word '.repeat(5000) }), 'ok', { captionIssue: 'too_long' }],
    ['', null],
    ['   ', null],
    [j({ image: 'a.jpg', caption: 'bell\u0007 and \u001b[31m colour \u202e' }), 'ok', CONTROL],
    [Buffer.concat([Buffer.from('{"image": "a.jpg", "caption": "bytes '), Buffer.from([0xff, 0xfe]), Buffer.from(' here"}')]), 'ok', INVALID_UTF8],
    [j({ image: 'a.jpg', caption: 'lone \ud800 surrogate' }), 'ok', { captionIssue: 'invalid_unicode' }],
    // A raw control character inside a JSON string is not JSON.
    ['{"image": "a.jpg", "caption": "raw \u0001 control"}', 'row_invalid'],
    ['\u001b]2;PWNED\u0007{"image": "a.jpg"}', 'row_invalid'],
    [`${j({ image: 'a.jpg' })} ${j({ image: 'a.jpg' })}`, 'row_invalid'],
    ['{"image": "a.jpg", "image": "missing.jpg"}', 'image_missing'],
    [j({ image: 'missing.jpg' }), 'image_missing'],
    [j({ image: '../../../../etc/passwd' }), 'image_path_invalid'],
    [j({ image: 'a.jpg', boxes: 'not json' }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: { label: 'x' } }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 'x', box: [5, 5, 1, 1] }] }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 'x', box: [1, 2, 3] }] }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 7, box: [1, 2, 3, 4] }] }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 'x', box: ['1', 2, 3, 4] }] }), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 'x', box: [1, 2, 1e309, 4] }] }).replace('null', '1e309'), 'row_invalid'],
    [j({ image: 'a.jpg', boxes: [{ label: 'ball', box: [1, 2, 30, 20] }] }), 'ok'],
    [j({ image: 'a.jpg', boxes: [] }), 'ok'],
    ['{"image": "a.jpg", "caption": "cut off at the end of the file', 'row_invalid'],
  ], { options: { boxes: 'boxes' } });
  file('bom.jsonl', 'jsonl', [[j({ image: 'a.jpg', caption: 'after a byte order mark' }), 'ok']], { content: (t) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), t]) });
  file('crlf.jsonl', 'jsonl', [[j({ image: 'a.jpg', caption: 'windows line ends' }), 'ok'], [j({ image: 'a.jpg', caption: 'second' }), 'ok']], { content: (t) => Buffer.from(t.toString().replace(/\n/g, '\r\n')) });
  file('gzip.jsonl.gz', 'jsonl', [[j({ image: 'a.jpg', caption: 'compressed' }), 'ok'], [j({ image: 'a.jpg', caption: 'second' }), 'ok']], { content: (t) => gzipSync(t) });
  const many = Array.from({ length: 400 }, (_, i) => [j({ image: 'a.jpg', caption: `row ${i} `.repeat(20) }), 'ok']);
  const gzipCut = gzipSync(Buffer.from(`${many.map((r) => r[0]).join('\n')}\n`));
  write(join(dir, 'gzip-cut.jsonl.gz'), gzipCut.subarray(0, Math.floor(gzipCut.length / 2)));
  sources.push({ type: 'jsonl', name: 'gzip_cut', path: 'gzip-cut.jsonl.gz', image: 'image', caption: 'caption', keyPrefix: 'gzip_cut_', imagesDir: 'files', order: 'input' });
  // A gzip stream cut in half: the rows before the cut are read; one record says where reading stopped.
  cases.push({ name: 'gzip_cut', records: { gzip_cut__unreadable_0: 'manifest_unreadable' }, others: { prefix: 'gzip_cut_', expect: 'ok', atLeast: 1 } });
  // Keys from an `id` column (the keyPrefix, `keys_jsonl_`, prepended); a row without one keeps its row key.
  file('keys.jsonl', 'jsonl', [
    [j({ id: 'k1', image: 'a.jpg' }), 'ok', { key: 'keys_jsonl_k1' }],
    [j({ id: 'k1', image: 'a.jpg' }), 'key_duplicate', { key: 'keys_jsonl_k1__dup2' }],
    [j({ id: '', image: 'a.jpg' }), 'row_invalid'],
    [j({ id: 'a b', image: 'a.jpg' }), 'ok', { key: 'keys_jsonl_a_b' }],
    [j({ id: 'a_b', image: 'a.jpg' }), 'key_collision', { key: 'keys_jsonl_a_b__dup2' }],
    [j({ id: 'ünïcødé', image: 'a.jpg' }), 'ok', { key: 'keys_jsonl_ünïcødé' }],
  ], { options: { key: 'id' } });

  const csvRow = (...fields) => fields.join(',');
  file('rows.csv', 'csv', [
    [csvRow('a.jpg', 'a caption'), 'ok'],
    [csvRow('a.jpg', '"quoted, with a comma"'), 'ok'],
    [csvRow('a.jpg', '"two\nlines"'), 'ok'],
    [csvRow('a.jpg', '"say ""hi"""'), 'ok'],
    [csvRow('a.jpg', 'too', 'many', 'fields'), 'row_invalid'],
    ['a.jpg', 'row_invalid'],
    [csvRow('', 'empty image cell'), 'row_invalid'],
    [csvRow('missing.jpg', 'x'), 'image_missing'],
    [csvRow('a.jpg', 'bell\u0007 inside'), 'ok', CONTROL],
    [Buffer.concat([Buffer.from('a.jpg,bytes '), Buffer.from([0xff, 0xfe])]), 'ok', INVALID_UTF8],
    // A quote inside an unquoted field is taken as text, as most CSV readers do.
    [csvRow('a.jpg', 'x"y'), 'ok'],
    [csvRow('a.jpg', '"unterminated quote to the end of the file'), 'row_invalid'],
  ], { header: 'image,caption\n' });
  file('bom.csv', 'csv', [[csvRow('a.jpg', 'after a byte order mark'), 'ok']], { header: 'image,caption\n', content: (t) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), t]) });
  file('header-only.csv', 'csv', [], { header: 'image,caption\n' });
  file('rows.tsv', 'tsv', [
    ['a.jpg\ta caption', 'ok'],
    ['a.jpg\textra\tfield', 'row_invalid'],
    ['\tno image', 'row_invalid'],
    ['a.jpg\t"quoted"', 'ok'],
    ['a.jpg\tcomma, inside', 'ok'],
  ], { header: 'image\tcaption\n' });

  const parquet = (name, columnData, schema, expects) => {
    parquetWriteFile({ filename: join(dir, name), columnData, schema });
    const prefix = name.replace(/[^A-Za-z0-9_]/g, '_');
    expects.forEach((expect, row) => cases.push({ name: `${prefix}_row_${row}`, records: { [rowKey(prefix, row)]: expect } }));
    sources.push({ type: 'parquet', name: prefix, path: name, image: 'image', caption: 'caption', keyPrefix: `${prefix}_`, imagesDir: 'files', order: 'input' });
  };
  parquet(
    'rows.parquet',
    [
      { name: 'image', data: ['a.jpg', null, '', 'missing.jpg', 'a.jpg'] },
      { name: 'caption', data: ['a caption', 'x', 'x', 'x', null] },
    ],
    [
      { name: 'root', num_children: 2 },
      { name: 'image', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'caption', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    ['ok', 'row_invalid', 'row_invalid', 'image_missing', 'ok'],
  );
  parquet(
    'types.parquet',
    [
      { name: 'image', data: [7, 8] },
      { name: 'caption', data: [1.5, 2.5] },
    ],
    [
      { name: 'root', num_children: 2 },
      { name: 'image', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'caption', type: 'DOUBLE', repetition_type: 'REQUIRED' },
    ],
    ['row_invalid', 'row_invalid'],
  );
  parquet(
    'embedded.parquet',
    [
      { name: 'image', data: [base.png, cut(base.jpeg, 0.5), new Uint8Array(0), Buffer.from('text, not an image')] },
      { name: 'caption', data: ['bytes', 'cut', 'empty', 'text'] },
    ],
    [
      { name: 'root', num_children: 2 },
      { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'REQUIRED' },
      { name: 'caption', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
    ],
    // Bytes that read as text are taken for a path (a path column written without the UTF8 annotation).
    ['ok', 'image_truncated', 'row_invalid', 'image_missing'],
  );

  const builds = [build('manifests', 'manifests', recipeFile(dir, 'recipe.json', { run: { db: 'out/run.db' }, sources }), 1, cases)];

  // Files that are no manifest of the kind configured: the build stops before it starts, exit 2.
  const broken = (name, source, content, stderr) => {
    const folder = join(dir, 'config', name);
    if (content !== null) write(join(folder, source.path), content);
    const recipe = recipeFile(folder, 'recipe.json', { run: { db: 'out/run.db' }, sources: [{ image: 'image', ...source }] });
    builds.push(configBuild('manifests', name, recipe, stderr));
  };
  broken('csv_missing_column', { type: 'csv', path: 'm.csv', caption: 'caption' }, 'url,text\na.jpg,x\n', /sources\[0\]: csv image: column "image" is not among the columns of ".*m\.csv" \("url", "text"\)/);
  broken('csv_broken_header', { type: 'csv', path: 'm.csv' }, '"image,caption\n', /sources\[0\]: csv path: the header row of ".*m\.csv" is malformed/);
  broken('jsonl_missing_file', { type: 'jsonl', path: 'nope.jsonl' }, null, /sources\[0\]: jsonl path: file ".*nope\.jsonl" does not exist/);
  broken('jsonl_is_a_folder', { type: 'jsonl', path: 'folder.jsonl' }, null, /sources\[0\]: jsonl path: expected a file, got ".*folder\.jsonl", which is not a regular file/);
  mkdirSync(join(dir, 'config', 'jsonl_is_a_folder', 'folder.jsonl'), { recursive: true });
  broken('parquet_not_parquet', { type: 'parquet', path: 'm.parquet' }, 'image,caption\na.jpg,x\n', /sources\[0\]: parquet path: .*m\.parquet/);
  const good = join(dir, 'rows.parquet');
  broken('parquet_truncated', { type: 'parquet', path: 'm.parquet' }, null, /sources\[0\]: parquet path: .*m\.parquet/);
  parquetWriteFile({ filename: join(dir, 'config', 'parquet_truncated', 'whole.parquet'), columnData: [{ name: 'image', data: ['a.jpg'] }], schema: [{ name: 'root', num_children: 1 }, { name: 'image', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' }] });
  truncateInto(join(dir, 'config', 'parquet_truncated', 'whole.parquet'), join(dir, 'config', 'parquet_truncated', 'm.parquet'), 0.5);
  broken('parquet_missing_column', { type: 'parquet', path: 'm.parquet', caption: 'text' }, null, /sources\[0\]: parquet caption: column "text"/);
  copyInto(good, join(dir, 'config', 'parquet_missing_column', 'm.parquet'));
  return builds;
}

function truncateInto(from, to, fraction) {
  const bytes = readFileSync(from);
  write(to, bytes.subarray(0, Math.floor(bytes.length * fraction)));
}

function copyInto(from, to) {
  write(to, readFileSync(from));
}

// ---------------------------------------------------------------------------------------------------------
// COCO: one captions + instances pair with a broken entry per case; files that are not COCO stop the build.

function cocoBuilds(dir, base) {
  const images = join(dir, 'images');
  for (const name of ['ok', 'bad_box', 'unknown_category', 'box_outside', 'bad_caption', 'string_box', 'sub/dir/nested', 'ünïcødé', 'string_id', 'dup_first']) {
    write(join(images, `${name}.jpg`), base.jpeg);
  }
  write(join(images, 'truncated.jpg'), cut(base.jpeg, 0.5));
  const size = { width: 64, height: 48 };
  const imageList = [
    { id: 1, file_name: 'ok.jpg', ...size },
    { id: 2, file_name: 'bad_box.jpg', ...size },
    { id: 3, file_name: 'unknown_category.jpg', ...size },
    { id: 4, file_name: 'box_outside.jpg', ...size },
    { id: 5, file_name: 'missing.jpg', ...size },
    { id: 6, file_name: 'truncated.jpg', ...size },
    { id: 7, ...size },
    { id: 8, file_name: 'w_string.jpg', width: '64', height: 48 },
    { id: 1, file_name: 'dup_first.jpg', ...size },
    { id: 10, file_name: '../../../etc/passwd', ...size },
    { id: 11, file_name: 'sub/dir/nested.jpg', ...size },
    42,
    { id: 12, file_name: 'bad_caption.jpg', ...size },
    { id: 13, file_name: 'string_box.jpg', ...size },
    { id: 14, file_name: 'ünïcødé.jpg', ...size },
    { id: 'abc', file_name: 'string_id.jpg', ...size },
  ];
  const captions = [
    { id: 100, image_id: 1, caption: 'a picture' },
    { id: 101, image_id: 12, caption: 5 },
    { id: 102, image_id: 999, caption: 'for an image nobody lists' },
    { id: 103, caption: 'for no image at all' },
    { id: 104, image_id: 14, caption: 'ünïcødé' },
  ];
  const instances = [
    { id: 200, image_id: 1, category_id: 1, bbox: [2, 2, 20, 10] },
    { id: 201, image_id: 2, category_id: 1, bbox: [0, 0, 0, 10] },
    { id: 202, image_id: 3, category_id: 999, bbox: [1, 1, 5, 5] },
    { id: 203, image_id: 4, category_id: 1, bbox: [100, 100, 10, 10] },
    { id: 204, image_id: 13, category_id: 1, bbox: ['1', '2', '3', '4'] },
    { id: 205, image_id: 11, category_id: 1, bbox: [1, 1, 5, 5], segmentation: 'garbage', iscrowd: 'maybe' },
  ];
  const categories = [{ id: 1, name: 'ball' }];
  writeJson(join(dir, 'captions.json'), { images: imageList, annotations: captions });
  writeJson(join(dir, 'instances.json'), { images: imageList, annotations: instances, categories });
  const one = (name, key, expect, extra = {}) => ({ name, records: { [key]: expect }, ...extra });
  const cases = [
    one('ok_image', 'ok', 'ok'),
    one('box_of_zero_width', 'bad_box', 'ok', { droppedAnnotations: ['annotation_invalid_box'] }),
    one('unknown_category', 'unknown_category', 'ok', { droppedAnnotations: ['annotation_unknown_category'] }),
    one('box_outside_the_image', 'box_outside', 'ok', { droppedAnnotations: ['annotation_invalid_box'] }),
    one('caption_not_a_string', 'bad_caption', 'ok', { droppedAnnotations: ['row_invalid'] }),
    one('box_of_strings', 'string_box', 'ok', { droppedAnnotations: ['annotation_invalid_box'] }),
    one('image_file_missing', 'missing', 'image_missing'),
    one('image_file_truncated', 'truncated', 'image_truncated'),
    one('entry_without_file_name', 'coco_image_7', 'row_invalid'),
    one('width_as_string', 'w_string', 'row_invalid'),
    one('image_id_repeated', 'dup_first', 'key_duplicate'),
    one('file_name_outside_the_folder', '_________etc_passwd', 'image_path_invalid'),
    one('file_name_in_sub_folders', 'sub_dir_nested', 'ok'),
    one('entry_not_an_object', 'coco_captions_images_11', 'row_invalid'),
    one('unicode_file_name', 'ünïcødé', 'ok'),
    one('string_image_id', 'string_id', 'ok'),
    one('annotation_of_unknown_image', 'coco_orphan_999', 'annotation_unknown_image'),
    one('annotation_without_image_id', 'coco_orphan_invalid_image_id', 'row_invalid'),
  ];
  const recipe = recipeFile(dir, 'recipe.json', { run: { db: 'out/run.db' }, sources: [{ type: 'coco', captions: 'captions.json', instances: 'instances.json', images: 'images' }] });
  const builds = [build('coco', 'coco', recipe, 1, cases)];

  const broken = (name, files, source, stderr) => {
    const folder = join(dir, 'config', name);
    mkdirSync(join(folder, 'images'), { recursive: true });
    for (const [file, content] of Object.entries(files)) write(join(folder, file), content);
    builds.push(configBuild('coco', name, recipeFile(folder, 'recipe.json', { run: { db: 'out/run.db' }, sources: [{ type: 'coco', images: 'images', ...source }] }), stderr));
  };
  broken('not_json', { 'c.json': '{"images": [' }, { captions: 'c.json' }, /sources\[0\]: coco captions file ".*c\.json" is not valid JSON/);
  broken('top_level_list', { 'c.json': '[]' }, { captions: 'c.json' }, /sources\[0\]: coco captions file ".*c\.json" is not in COCO format/);
  broken('images_not_a_list', { 'c.json': JSON.stringify({ images: {}, annotations: [] }) }, { captions: 'c.json' }, /sources\[0\]: coco captions file ".*c\.json" is not in COCO format: .*images/);
  broken('categories_not_a_list', { 'i.json': JSON.stringify({ images: [], annotations: [], categories: 'ball' }) }, { instances: 'i.json' }, /sources\[0\]: coco instances file ".*i\.json" is not in COCO format: .*categories/);
  broken('file_missing', {}, { captions: 'nope.json' }, /sources\[0\]: coco captions: file ".*nope\.json" does not exist/);
  broken('images_folder_missing', { 'c.json': JSON.stringify({ images: [], annotations: [] }) }, { captions: 'c.json', images: 'no-such-folder' }, /sources\[0\].*no-such-folder/);
  return builds;
}

// ---------------------------------------------------------------------------------------------------------
// LLaVA: records in a JSON list (and a JSON Lines file), a bad one per case; files holding no records stop the build.

function llavaBuilds(dir, base) {
  write(join(dir, 'images', 'a.jpg'), base.jpeg);
  write(join(dir, 'images', 'cut.jpg'), cut(base.jpeg, 0.4));
  const turns = (q = '<image>\nWhat is in the picture?', a = 'A ball.') => [{ from: 'human', value: q }, { from: 'gpt', value: a }];
  const records = [];
  const cases = [];
  /**
   * `record`: a value, or raw JSON text (for records that are not JSON). `key` defaults to the record's id;
   * `BY_INDEX` for the key of a record whose id is not used (`<source name>_<index:09d>`).
   */
  const BY_INDEX = Symbol('by index');
  const add = (name, record, expect, key = null) => {
    const index = records.length;
    records.push(typeof record === 'string' ? record : JSON.stringify(record));
    const byIndex = key === BY_INDEX || typeof record === 'string' || record.id === undefined;
    cases.push({ name, records: { [byIndex ? `lv_${String(index).padStart(9, '0')}` : (key ?? String(record.id))]: expect } });
  };
  add('ok', { id: 'ok', image: 'a.jpg', conversations: turns() }, 'ok');
  add('numeric_id', { id: 42, image: 'a.jpg', conversations: turns() }, 'ok');
  add('no_id', { image: 'a.jpg', conversations: turns() }, 'ok');
  add('id_again', { id: 'ok', image: 'a.jpg', conversations: turns() }, 'ok', 'ok__dup2');
  add('id_with_space', { id: 'a b', image: 'a.jpg', conversations: turns() }, 'ok', 'a_b');
  add('unicode_id', { id: 'ünïcødé', image: 'a.jpg', conversations: turns() }, 'ok');
  add('brief_caption', { id: 'brief', image: 'a.jpg', conversations: turns('<image>\nDescribe the image briefly.', 'a red ball') }, 'ok');
  add('no_conversation', { id: 'no_turns', image: 'a.jpg', conversations: [] }, 'ok');
  add('image_list_of_one', { id: 'one_image', image: ['a.jpg'], conversations: turns() }, 'ok');
  add('text_only', { id: 'text_only', conversations: turns('Tell me a joke.', 'No.') }, 'dropped:text_only');
  add('image_null', { id: 'image_null', image: null, conversations: turns('Hello?', 'Hi.') }, 'dropped:text_only');
  add('several_images', { id: 'several', image: ['a.jpg', 'a.jpg'], conversations: turns() }, 'row_invalid');
  add('image_a_number', { id: 'image_number', image: 7, conversations: turns() }, 'row_invalid');
  add('image_url', { id: 'url', image: 'http://127.0.0.1:9/a.jpg', conversations: turns() }, 'url_invalid');
  add('image_missing', { id: 'missing', image: 'nope.jpg', conversations: turns() }, 'image_missing');
  add('image_truncated', { id: 'cut', image: 'cut.jpg', conversations: turns() }, 'image_truncated');
  add('image_outside_the_folder', { id: 'traversal', image: '../../../../etc/passwd', conversations: turns() }, 'image_path_invalid');
  add('image_dev_zero', { id: 'dev_zero', image: '/dev/zero', conversations: turns() }, 'image_path_invalid');
  add('conversations_not_a_list', { id: 'conv_object', image: 'a.jpg', conversations: { from: 'human', value: 'x' } }, 'row_invalid');
  add('turn_without_value', { id: 'turn_no_value', image: 'a.jpg', conversations: [{ from: 'human' }] }, 'row_invalid');
  add('turn_value_a_number', { id: 'turn_number', image: 'a.jpg', conversations: [{ from: 'human', value: 3 }] }, 'row_invalid');
  add('record_a_number', '12', 'row_invalid');
  add('record_a_list', '[1, 2]', 'row_invalid');
  add('record_neither_image_nor_conversations', { id: 'neither', caption: 'x' }, 'row_invalid', BY_INDEX);
  add('record_not_json', '{"id": "broken", "image": }', 'row_invalid');
  write(join(dir, 'llava.json'), `[\n${records.join(',\n')}\n]\n`);
  // A second file: JSON Lines, its first line broken (a broken line costs only itself).
  write(join(dir, 'records.jsonl'), `{"id": "x", "ima\n${JSON.stringify({ id: 'jsonl_ok', image: 'a.jpg', conversations: turns() })}\n`);
  cases.push({ name: 'jsonl_broken_first_line', records: { jl_000000000: 'row_invalid' } });
  cases.push({ name: 'jsonl_after_a_broken_line', records: { jl_jsonl_ok: 'ok' } });
  const recipe = recipeFile(dir, 'recipe.json', {
    run: { db: 'out/run.db' },
    sources: [
      { type: 'llava', name: 'lv', path: 'llava.json', images: 'images' },
      { type: 'llava', name: 'jl', path: 'records.jsonl', images: 'images', keyPrefix: 'jl_' },
    ],
  });
  const builds = [build('llava', 'llava', recipe, 1, cases)];

  const broken = (name, text, stderr) => {
    const folder = join(dir, 'config', name);
    if (text !== null) write(join(folder, 'llava.json'), text);
    builds.push(configBuild('llava', name, recipeFile(folder, 'recipe.json', { run: { db: 'out/run.db' }, sources: [{ type: 'llava', path: 'llava.json' }] }), stderr));
  };
  const wrapped = { data: [{ id: 'x', image: 'a.jpg', conversations: turns() }] };
  broken('one_object', JSON.stringify(wrapped), /sources\[0\]: llava path: ".*llava\.json" holds one JSON object \(keys "data"\) and no LLaVA records/);
  broken('one_object_over_lines', JSON.stringify(wrapped, null, 2), /sources\[0\]: llava path: ".*llava\.json" is neither a JSON list nor JSON Lines/);
  broken('a_string', '"hello"', /sources\[0\]: llava path: ".*llava\.json" holds a JSON string and no LLaVA records/);
  broken('file_missing', null, /sources\[0\]: llava path: file ".*llava\.json" does not exist/);
  return builds;
}

// ---------------------------------------------------------------------------------------------------------
// Recipes: each its own build, each a configuration error: exit 2, one line naming the field or the file.

function recipeBuilds(dir, base) {
  write(join(dir, 'photos', 'a.jpg'), base.jpeg);
  const folder = { type: 'folder', path: 'photos' };
  const valid = { run: { db: 'out/run.db' }, sources: [folder] };
  const builds = [];
  /** `recipe`: an object (written as JSON), or the file's text; `file` its name. */
  const add = (name, recipe, stderr, file = `${name}.json`) => {
    const path = join(dir, name, file);
    write(path, typeof recipe === 'string' ? recipe : JSON.stringify(recipe, null, 2));
    symlinkSync(join(dir, 'photos'), join(dir, name, 'photos'));
    builds.push(configBuild('recipes', name, path, stderr));
  };
  const yaml = (name, text, stderr) => add(name, text, stderr, `${name}.yaml`);

  yaml('yaml_syntax', 'sources:\n  - { type: folder, path: photos\n', /recipe ".*yaml_syntax\.yaml": not valid YAML or JSON \(Flow map .* at line 3, column 1/);
  yaml('yaml_tab_indent', 'sources:\n\t- { type: folder, path: photos }\n', /recipe ".*yaml_tab_indent\.yaml": not valid YAML or JSON \(Tabs are not allowed as indentation at line 2/);
  yaml('yaml_duplicate_key', 'sources: [{ type: folder, path: photos }]\nsources: []\n', /recipe ".*yaml_duplicate_key\.yaml": not valid YAML or JSON \(Map keys must be unique at line 2/);
  // A billion laughs: nine levels of aliases, nine each; refused for its aliases, not expanded.
  const laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let level = 1; level < 9; level++) {
    const previous = String.fromCharCode(96 + level);
    const name = String.fromCharCode(97 + level);
    laughs.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(',')}]`);
  }
  yaml('yaml_alias_bomb', `${laughs.join('\n')}\nsources: [{ type: folder, path: photos }]\n`, /recipe ".*yaml_alias_bomb\.yaml": not valid YAML or JSON \(Excessive alias count/);
  yaml('empty_file', '', /recipe ".*empty_file\.yaml": expected a mapping with at least `sources`, got null/);
  yaml('top_level_list', '- sources\n- run\n', /recipe ".*top_level_list\.yaml": expected a mapping with at least `sources`, got a list/);
  add('json_syntax', '{"sources": [}', /recipe ".*json_syntax\.json": not valid YAML or JSON \(.* at line 1, column 14/);
  add('nul_byte', `{"sources": [{"type": "folder", "path": "photos\u0000"}]}`, /sources\[0\]: folder path: expected a folder of images/);
  add('sources_missing', { run: { db: 'out/run.db' } }, /sources: expected array, got nothing/);
  add('sources_not_a_list', { sources: folder }, /sources: expected array, got \{"type":"folder","path":"photos"\}/);
  add('source_type_unknown', { sources: [{ type: 'webdatset', paths: 'a.tar' }] }, /sources\[0\]\.type: expected one of .*"webdataset".*, got "webdatset"/);
  add('source_type_missing', { sources: [{ path: 'photos' }] }, /sources\[0\]\.type: expected one of .*, got nothing/);
  add('unknown_top_level_field', { ...valid, sourcez: [] }, /\(top level\): unknown field "sourcez"/);
  add('unknown_source_field', { sources: [{ ...folder, pathh: 'x' }] }, /sources\[0\]: unknown field "pathh"/);
  add('source_path_missing', { sources: [{ type: 'folder', path: 'no-such-folder' }] }, /sources\[0\]: folder path: expected a folder of images, got ".*no-such-folder", which is not a folder/);
  add('source_names_repeat', { sources: [{ ...folder, name: 'x' }, { ...folder, name: 'x' }] }, /sources\[1\]\.name: source names must be unique, got "x", the name of sources\[0\] too/);
  add('key_prefix_with_a_dot', { sources: [{ ...folder, keyPrefix: 'a.b' }] }, /sources\[0\]\.keyPrefix: expected only letters, digits, "_" and "-" .*, got "a\.b"/);
  add('commit_every_a_string', { ...valid, run: { db: 'out/run.db', commitEvery: 'often' } }, /run\.commitEvery: expected number, got "often"/);
  add('decode_concurrency_negative', { ...valid, decode: { concurrency: -1 } }, /decode\.concurrency: expected "auto" or an integer from 1 and up, got -1/);
  add('decode_max_pixels_zero', { ...valid, decode: { maxPixels: 0 } }, /decode\.maxPixels: .*>0, got 0/);
  add('decode_max_bytes_infinite', `{"run": {"db": "out/run.db"}, "sources": [{"type": "folder", "path": "photos"}], "decode": {"maxBytes": 1e400}}`, /decode\.maxBytes: expected number, got Infinity/);
  add('filter_threshold_a_word', { ...valid, filter: { itc: { model: 'models/x', threshold: 'high' } } }, /filter\.itc\.threshold: expected number, got "high"/);
  add('filter_without_models', { ...valid, filter: { policy: 'both' } }, /filter\.policy: policy "both" needs `filter\.itm`/);
  add('filter_model_missing', { ...valid, filter: { itc: { model: 'no-such-model', threshold: 0.3 } } }, /filter\.itc\.model: .*no-such-model\/config\.json does not exist/);
  add('captioner_model_missing', { ...valid, captioner: { type: 'onnx', model: 'no-such-captioner' } }, /captioner\.model: .*no-such-captioner .*encoder_model\.onnx/);
  add('llm_base_url_a_file', { ...valid, synth: { tasks: ['detail'], llm: { baseURL: 'file:///etc/passwd', model: 'm' } } }, /synth\.llm\.baseURL: expected an http:\/\/ or https:\/\/ URL .*, got "file:\/\/\/etc\/passwd"/);
  add('llm_tasks_without_llm', { ...valid, synth: { tasks: ['conversation'] } }, /synth\.llm: the tasks "conversation" need an LLM endpoint, got none/);
  add('synth_task_unknown', { ...valid, synth: { tasks: ['poetry'] } }, /synth\.tasks\[0\]: expected one of .*, got "poetry"/);
  add('export_type_unknown', { ...valid, export: [{ type: 'tfrecord', out: 'out/x' }] }, /export\[0\]\.type: expected one of .*, got "tfrecord"/);
  add('export_max_count_zero', { ...valid, export: [{ type: 'webdataset', out: 'out/wds', maxCount: 0 }] }, /export\[0\]\.maxCount: .*>0, got 0/);
  add('exports_share_a_folder', { ...valid, export: [{ type: 'webdataset', out: 'out/x' }, { type: 'llava', out: 'out/x' }] }, /exports "wds" and "llava" both write into "out\/x"/);

  // The recipe path itself.
  builds.push(configBuild('recipes', 'recipe_missing', join(dir, 'no-such-recipe.yaml'), /recipe ".*no-such-recipe\.yaml": cannot read \(the file does not exist\)/));
  mkdirSync(join(dir, 'folder.yaml'), { recursive: true });
  builds.push(configBuild('recipes', 'recipe_is_a_folder', join(dir, 'folder.yaml'), /recipe ".*folder\.yaml": it is a folder, expected a YAML or JSON file/));
  builds.push(configBuild('recipes', 'recipe_is_dev_zero', '/dev/zero', /recipe "\/dev\/zero": not a regular file/));
  const dbFolder = join(dir, 'db_is_a_folder');
  mkdirSync(join(dbFolder, 'run.db'), { recursive: true });
  add('db_is_a_folder', { run: { db: 'run.db' }, sources: [folder] }, /run database ".*db_is_a_folder\/run\.db": cannot open \(it is a folder, expected a database file\)/);
  return builds;
}

// ---------------------------------------------------------------------------------------------------------
// URLs: a manifest of links to a local image server (tests/http-server/image-server.ts routes, serving
// `URL_IMAGES`), a row per case. Private addresses are allowed for this source (the server is 127.0.0.1);
// a second source keeps the default and must refuse them all.

/** Images the URL server must serve, by name. */
export async function urlImages() {
  const base = await baseImages();
  return { 'a.jpg': base.jpeg, 'a.png': base.png, 'cut.jpg': cut(base.jpeg, 0.5), 'text.jpg': Buffer.from('not an image at all') };
}

function urlBuilds(dir, origin) {
  const rows = [];
  const cases = [];
  const add = (name, url, expect, rowsOf = rows) => {
    rowsOf.push({ key: name, image: url, caption: `case ${name}` });
    cases.push({ name, records: { [name]: expect } });
  };
  const at = (path) => `${origin}${path}`;
  add('ok_jpeg', at('/img/a.jpg'), 'ok');
  add('ok_png', at('/img/a.png'), 'ok');
  add('ok_octet_stream', at('/octet/a.jpg'), 'ok');
  add('ok_no_content_type', at('/img/a.jpg?type=none'), 'ok');
  add('ok_gzip_encoded', at('/gzip/a.jpg'), 'ok');
  add('ok_two_redirects', at('/chain/2/a.jpg'), 'ok');
  add('ok_robots_tag_for_another_bot', at('/robots/a.jpg?tag=otherbot%3A%20noai'), 'ok');
  add('not_found', at('/status/404'), 'http_404');
  add('gone', at('/status/410'), 'http_410');
  add('server_error', at('/status/500'), 'http_500');
  add('unavailable_retry_after_an_hour', at('/status/503?retryAfter=3600'), 'http_503');
  add('rate_limited', at('/status/429?retryAfter=3600'), 'http_429');
  add('html_page', at('/html'), 'not_an_image');
  add('html_said_to_be_jpeg', at('/fake/a.jpg'), 'not_an_image');
  add('image_said_to_be_html', at('/img/a.jpg?type=text%2Fhtml'), 'not_an_image');
  add('text_said_to_be_jpeg', at('/img/text.jpg'), 'not_an_image');
  add('truncated_image', at('/img/cut.jpg'), 'image_truncated');
  add('redirect_loop', at('/loop/a'), 'too_many_redirects');
  add('too_many_redirects', at('/chain/9/a.jpg'), 'too_many_redirects');
  add('redirect_to_file', at('/redirect?to=file%3A%2F%2F%2Fetc%2Fpasswd'), 'redirect_invalid');
  add('redirect_to_ftp', at('/redirect?to=ftp%3A%2F%2F127.0.0.1%2Fa.jpg'), 'redirect_invalid');
  // A redirect status with nowhere to go is that status, named in the message.
  add('redirect_without_location', at('/redirect'), 'http_302');
  add('slow_headers', at('/slow-headers/a.jpg?ms=6000'), 'timeout');
  add('slow_body', at('/slow-body/a.jpg?ms=6000'), 'timeout');
  add('body_cut_off', at('/cut/a.jpg'), 'connection_failed');
  add('connection_reset', at('/reset/r1/a.jpg?times=9'), 'connection_failed');
  add('declared_too_large', at('/big-declared?bytes=100000000'), 'too_large');
  add('streamed_too_large', at('/big-undeclared?bytes=3000000'), 'too_large');
  add('robots_noai', at('/robots/a.jpg?tag=noai'), 'robots_disallowed');
  add('closed_port', 'http://127.0.0.1:1/a.jpg', 'connection_failed');
  add('space_in_host', 'http://exa mple.com/a.jpg', 'url_invalid');
  add('unclosed_ipv6', 'http://[::1/a.jpg', 'url_invalid');
  add('user_and_password', at('/img/a.jpg').replace('http://', 'http://user:secret@'), 'ok');
  write(join(dir, 'urls.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);

  const guarded = [];
  const port = new URL(origin).port;
  add('ssrf_loopback', at('/img/a.jpg'), 'address_disallowed', guarded);
  add('ssrf_localhost', `http://localhost:${port}/img/a.jpg`, 'address_disallowed', guarded);
  add('ssrf_decimal_loopback', `http://2130706433:${port}/img/a.jpg`, 'address_disallowed', guarded);
  add('ssrf_ipv6_loopback', `http://[::1]:${port}/img/a.jpg`, 'address_disallowed', guarded);
  add('ssrf_unspecified', `http://0.0.0.0:${port}/img/a.jpg`, 'address_disallowed', guarded);
  add('ssrf_link_local_metadata', 'http://169.254.169.254/latest/meta-data/', 'address_disallowed', guarded);
  add('ssrf_private_10', 'http://10.0.0.1/a.jpg', 'address_disallowed', guarded);
  add('ssrf_ipv4_mapped_ipv6', `http://[::ffff:127.0.0.1]:${port}/img/a.jpg`, 'address_disallowed', guarded);
  write(join(dir, 'ssrf.jsonl'), `${guarded.map((r) => JSON.stringify(r)).join('\n')}\n`);

  const fast = { timeoutMs: 1500, retries: 0, maxBytes: 1024 * 1024, maxRedirects: 3, cache: false };
  const recipe = recipeFile(dir, 'recipe.json', {
    run: { db: 'out/run.db' },
    sources: [
      { type: 'jsonl', name: 'urls', path: 'urls.jsonl', image: 'image', caption: 'caption', key: 'key', download: { ...fast, allowPrivateNetworks: true } },
      { type: 'jsonl', name: 'ssrf', path: 'ssrf.jsonl', image: 'image', caption: 'caption', key: 'key', download: fast },
    ],
  });
  return [build('urls', 'urls', recipe, 1, cases)];
}

// ---------------------------------------------------------------------------------------------------------
// LLM answers: a sample per case whose caption names the case; the fake OpenAI server
// (tests/llm-server/server.ts) answers the case's task as `llmBehaviour` says, every attempt alike.

const QA = (...blocks) => blocks.join('\n===\n');

/** Per case: the task it breaks, the server's behaviour for that task, the instruction row it must leave. */
const LLM_CASES = {
  conv_ok: { task: 'conversation', behaviour: null, expect: 'ok' },
  conv_plain_paragraph: { task: 'conversation', behaviour: { kind: 'answer', content: 'A red ball lies on the grass.' }, expect: 'rejected:bad_format' },
  conv_empty: { task: 'conversation', behaviour: { kind: 'answer', content: '' }, expect: 'rejected:empty_answer' },
  conv_missing_separator: { task: 'conversation', behaviour: { kind: 'answer', content: 'Question:\nWhat is it?\nAnswer:\nA ball.' }, expect: 'rejected:missing_separator' },
  conv_two_questions: { task: 'conversation', behaviour: { kind: 'answer', content: QA('Question:\nWhat is it?', 'Question:\nWhere is it?') }, expect: 'rejected:broken_alternation' },
  conv_empty_answer_turn: { task: 'conversation', behaviour: { kind: 'answer', content: QA('Question:\nWhat is it?', 'Answer:\n') }, expect: 'rejected:empty_turn' },
  conv_leaks_caption: { task: 'conversation', behaviour: { kind: 'answer', content: QA('Question:\nWhat is it?', 'Answer:\nThe caption says a ball.') }, expect: 'rejected:leak_caption' },
  detail_ok: { task: 'detail', behaviour: null, expect: 'ok' },
  detail_leaks_caption: { task: 'detail', behaviour: { kind: 'answer', content: 'The caption says there is a ball on the grass.' }, expect: 'rejected:leak_caption' },
  detail_leaks_coordinates: { task: 'detail', behaviour: { kind: 'answer', content: 'A ball sits at [0.1, 0.2, 0.3, 0.4] in the frame.' }, expect: 'rejected:leak_coordinates' },
  detail_leaks_box: { task: 'detail', behaviour: { kind: 'answer', content: 'The bounding region around the ball is small.' }, expect: 'rejected:leak_box' },
  detail_leaks_source: { task: 'detail', behaviour: { kind: 'answer', content: 'According to the description, a ball lies on the grass.' }, expect: 'rejected:leak_source' },
  detail_scene_tag: { task: 'detail', behaviour: { kind: 'answer', content: 'It shows <scene> a ball on the grass.' }, expect: 'rejected:leak_source' },
  detail_refusal: { task: 'detail', behaviour: { kind: 'answer', content: "I'm sorry, but I cannot see images, so I cannot describe this one." }, expect: 'rejected:refusal' },
  detail_a_list: { task: 'detail', behaviour: { kind: 'answer', content: '- a ball\n- some grass' }, expect: 'rejected:bad_format' },
  detail_two_paragraphs: { task: 'detail', behaviour: { kind: 'answer', content: 'A ball.\n\nSome grass.' }, expect: 'rejected:multiple_paragraphs' },
  detail_questions: { task: 'detail', behaviour: { kind: 'answer', content: QA('Question:\nWhat is it?', 'Answer:\nA ball.') }, expect: 'rejected:bad_format' },
  detail_empty: { task: 'detail', behaviour: { kind: 'answer', content: '   ' }, expect: 'rejected:empty_answer' },
  detail_cut_by_length: { task: 'detail', behaviour: { kind: 'answer', content: 'A ball on the', finishReason: 'length' }, expect: 'failed:finish_length' },
  detail_content_filter: { task: 'detail', behaviour: { kind: 'answer', content: '', finishReason: 'content_filter' }, expect: 'failed:content_filter' },
  detail_not_json: { task: 'detail', behaviour: { kind: 'malformed', text: '<html>502 Bad Gateway</html>', contentType: 'text/html' }, expect: 'failed:bad_response' },
  detail_json_without_choices: { task: 'detail', behaviour: { kind: 'malformed', text: '{"object": "chat.completion"}', contentType: 'application/json' }, expect: 'failed:bad_response' },
  detail_http_400: { task: 'detail', behaviour: { kind: 'status', status: 400, body: { error: { message: 'bad request' } } }, expect: 'failed:http_400' },
  detail_http_500: { task: 'detail', behaviour: { kind: 'status', status: 500, body: { error: { message: 'boom' } } }, expect: 'failed:server_error' },
  detail_body_cut_off: { task: 'detail', behaviour: { kind: 'cut' }, expect: 'failed:connection_error' },
  detail_connection_dropped: { task: 'detail', behaviour: { kind: 'drop' }, expect: 'failed:connection_error' },
  detail_no_usage: { task: 'detail', behaviour: { kind: 'answer', content: 'A red ball lies on green grass in daylight.', noUsage: true }, expect: 'ok' },
  // timeoutMs covers the whole request: headers that never come, and a body that stops halfway.
  detail_no_headers: { task: 'detail', behaviour: { kind: 'hang' }, expect: 'failed:timeout' },
  detail_body_stalls: { task: 'detail', behaviour: { kind: 'stall' }, expect: 'failed:timeout' },
};

/** The model name whose every request the fake server answers 401 (a rejected API key). */
export const KEY_REJECTED_MODEL = 'key-rejected-model';

/** The behaviour the fake server must have for one chat request of this category (null: its default answer). */
export function llmBehaviour(body) {
  if (body?.model === KEY_REJECTED_MODEL) return { kind: 'status', status: 401, body: { error: { message: 'Incorrect API key provided', code: 'invalid_api_key' } } };
  const messages = Array.isArray(body?.messages) ? body.messages : [];
  const text = (m) => (typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text ?? '').join(''));
  const last = [...messages].reverse().find((m) => m.role === 'user');
  const name = last ? /case ([a-z0-9_]+)/.exec(text(last))?.[1] : undefined;
  const entry = name === undefined ? undefined : LLM_CASES[name];
  if (!entry || entry.behaviour === null) return null;
  // The conversation task's few-shot answers are Question/Answer blocks; detail's are paragraphs.
  const fewShot = messages.find((m) => m.role === 'assistant');
  const task = fewShot && text(fewShot).startsWith('Question:') ? 'conversation' : 'detail';
  return task === entry.task ? entry.behaviour : null;
}

function llmBuilds(dir, base, baseURL, refusedBaseURL) {
  write(join(dir, 'a.jpg'), base.jpeg);
  const rows = [];
  const cases = [];
  for (const [name, entry] of Object.entries(LLM_CASES)) {
    rows.push({ key: name, image: 'a.jpg', caption: `a red ball, case ${name}` });
    cases.push({ name, records: { [name]: 'ok' }, instructions: { [entry.task]: entry.expect } });
  }
  // Nothing to write about (no caption, no boxes): not applicable, and no request is sent.
  rows.push({ key: 'no_context', image: 'a.jpg', caption: '' });
  cases.push({ name: 'no_context', records: { no_context: 'ok' }, instructions: { conversation: 'not_applicable:no_context', detail: 'not_applicable:no_context' } });
  write(join(dir, 'm.jsonl'), `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
  const recipe = recipeFile(dir, 'recipe.json', {
    run: { db: 'out/run.db' },
    sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'key' }],
    synth: { tasks: ['conversation', 'detail'], maxAttempts: 2, llm: { baseURL, model: 'test-model', maxRetries: 0, timeoutMs: 3000, concurrency: 4, rpm: 60_000, tpm: 100_000_000 } },
  });
  const builds = [build('llm', 'llm', recipe, 1, cases)];

  // Servers that cannot serve at all: synthesis stops at once with one line naming the server and why;
  // every sample waits for the next run (its task failed with the stop code, the sample held back).
  const stopped = (name, llm, stderr, extra) => {
    const folder = join(dir, name);
    write(join(folder, 'a.jpg'), base.jpeg);
    const keys = Array.from({ length: 12 }, (_, i) => `${name}_${i}`);
    write(join(folder, 'm.jsonl'), `${keys.map((key) => JSON.stringify({ key, image: 'a.jpg', caption: 'a red ball' })).join('\n')}\n`);
    const path = recipeFile(folder, 'recipe.json', {
      run: { db: 'out/run.db' },
      sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'key' }],
      synth: { tasks: ['detail'], llm: { model: 'test-model', maxRetries: 3, retryBaseMs: 200, timeoutMs: 3000, concurrency: 2, ...llm } },
    });
    const code = name === 'key_rejected' ? 'key_rejected' : 'server_unreachable';
    builds.push(build('llm', name, path, 1, keys.map((key) => ({ name: key, records: { [key]: 'ok' }, instructions: { detail: `failed:${code}` } })), { stderr, ...extra }));
  };
  const escaped = baseURL.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  // A rejected key is never retried: at most one request per concurrency slot is sent.
  stopped('key_rejected', { baseURL, model: KEY_REJECTED_MODEL }, new RegExp(`API key rejected by ${escaped}`), { llmRequests: { model: KEY_REJECTED_MODEL, atMost: 2 } });
  // Port 1 is one fetch refuses to dial; `refusedBaseURL` is a port nothing listens on (connection refused).
  stopped('server_unreachable', { baseURL: 'http://127.0.0.1:1/v1' }, /127\.0\.0\.1:1/, { maxWallMs: 30_000 });
  if (refusedBaseURL) stopped('server_refused', { baseURL: refusedBaseURL }, new RegExp(refusedBaseURL.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), { maxWallMs: 30_000 });
  return builds;
}


// ---------------------------------------------------------------------------------------------------------

async function main(argv) {
  const out = argv[0];
  if (!out || out.startsWith('-')) {
    process.stderr.write('usage: node tools/make-malformed-corpus.mjs OUT [--url-origin URL] [--llm-base-url URL]\n');
    process.exitCode = 2;
    return;
  }
  const flag = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] ?? null : null;
  };
  const { builds } = await generateCorpus(resolve(out), { urlOrigin: flag('--url-origin'), llmBaseURL: flag('--llm-base-url') });
  const counts = countCases(builds);
  for (const [category, n] of Object.entries(counts)) process.stdout.write(`${category.padEnd(10)} ${n}\n`);
  process.stdout.write(`${'builds'.padEnd(10)} ${builds.length}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
