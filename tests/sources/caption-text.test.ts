import { describe, expect, it } from 'vitest';
import { captionFromBytes, captionFromString, cleanCaptionText, limitCaptionLength } from '../../src/sources/caption-text.js';

const bytes = (...values: number[]) => Uint8Array.from(values);
const utf8 = (text: string) => new TextEncoder().encode(text);

describe('caption text', () => {
  it('decodes clean UTF-8 unchanged apart from whitespace', () => {
    expect(captionFromBytes(utf8('  a dog\n on  the\tbeach  '), 'web')).toEqual({
      text: 'a dog on the beach',
      origin: 'web',
      issue: null,
      usable: true,
    });
    expect(captionFromBytes(utf8('café — 東京 🐕'), 'web').text).toBe('café — 東京 🐕');
  });

  it('marks invalid UTF-8 unusable and keeps a lossy decoding', () => {
    // "ab" + a lone continuation byte + "c" + a truncated 3-byte sequence
    const caption = captionFromBytes(bytes(0x61, 0x62, 0x80, 0x63, 0xe6, 0x97), 'web');
    expect(caption.usable).toBe(false);
    expect(caption.issue).toBe('invalid_utf8');
    expect(caption.text).toBe('ab\uFFFDc\uFFFD');
  });

  it('rejects overlong encodings and encoded surrogates as invalid UTF-8', () => {
    expect(captionFromBytes(bytes(0xc0, 0xaf), 'web').issue).toBe('invalid_utf8'); // overlong "/"
    expect(captionFromBytes(bytes(0xed, 0xa0, 0x80), 'web').issue).toBe('invalid_utf8'); // U+D800
  });

  it('removes C0, DEL and C1 control characters but keeps the caption usable', () => {
    const caption = captionFromBytes(utf8('a\u0000 red\u0007 car\u001b[31m\u007f\u0085\u009b'), 'web');
    expect(caption).toMatchObject({ text: 'a red car[31m', issue: 'control_chars_removed', usable: true });
    expect(caption.text).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
  });

  it('removes bidi override and isolate controls', () => {
    const hostile = 'invoice \u202Egnp.exe\u202C and \u2066isolated\u2069 \u202Aa\u202B\u202D';
    const caption = captionFromString(hostile, 'web');
    expect(caption.issue).toBe('control_chars_removed');
    expect(caption.usable).toBe(true);
    expect(caption.text).toBe('invoice gnp.exe and isolated a');
    expect(caption.text).not.toMatch(/[\u202A-\u202E\u2066-\u2069]/);
  });

  it('tab, newline and carriage return are whitespace, not removed controls', () => {
    expect(captionFromString('one\r\ntwo\tthree', 'annotation')).toEqual({
      text: 'one two three',
      origin: 'annotation',
      issue: null,
      usable: true,
    });
  });

  it('cleans the lossy text of invalid captions too: NUL never survives', () => {
    const caption = captionFromBytes(bytes(0x00, 0x41, 0xff, 0x00), 'web');
    expect(caption.issue).toBe('invalid_utf8');
    expect(caption.text).toBe('A\uFFFD');
  });

  it('treats empty and whitespace-only captions as usable, empty, without an issue', () => {
    expect(captionFromBytes(new Uint8Array(0), 'web')).toEqual({ text: '', origin: 'web', issue: null, usable: true });
    expect(captionFromString(' \n\t ', 'web')).toEqual({ text: '', origin: 'web', issue: null, usable: true });
  });

  it('strips a UTF-8 byte order mark', () => {
    expect(captionFromBytes(bytes(0xef, 0xbb, 0xbf, 0x68, 0x69), 'web')).toMatchObject({ text: 'hi', issue: null });
  });

  it('marks strings with lone surrogates (possible in JSON) unusable', () => {
    const caption = captionFromString('bad \ud800 text', 'annotation');
    expect(caption).toMatchObject({ issue: 'invalid_unicode', usable: false, text: 'bad \uFFFD text' });
    expect(captionFromString('ok 🐕', 'annotation').issue).toBeNull();
  });

  it('cleanCaptionText reports whether controls were removed', () => {
    expect(cleanCaptionText('a\u0001b')).toEqual({ text: 'ab', controlCharsRemoved: true });
    expect(cleanCaptionText(' a  b ')).toEqual({ text: 'a b', controlCharsRemoved: false });
  });
});

describe('caption length limit', () => {
  it('cuts a caption over the limit, marks it too_long and unusable; shorter ones are untouched', () => {
    const long = captionFromString('a'.repeat(50), 'web');
    expect(limitCaptionLength(long, 20)).toEqual({ text: 'a'.repeat(20), origin: 'web', issue: 'too_long', usable: false });
    const exact = captionFromString('b'.repeat(20), 'web');
    expect(limitCaptionLength(exact, 20)).toBe(exact);
  });

  it('never splits a surrogate pair, and keeps the issue of a caption already unusable', () => {
    const emoji = captionFromString(`${'x'.repeat(9)}😀😀`, 'web');
    expect(limitCaptionLength(emoji, 10).text).toBe('x'.repeat(9));
    const invalid = captionFromBytes(Buffer.concat([Buffer.from('y'.repeat(30)), Buffer.from([0xff])]), 'web');
    expect(limitCaptionLength(invalid, 10)).toMatchObject({ text: 'y'.repeat(10), issue: 'invalid_utf8', usable: false });
    const cleaned = captionFromString(`\u0007${'z'.repeat(30)}`, 'web');
    expect(limitCaptionLength(cleaned, 10)).toMatchObject({ issue: 'too_long', usable: false });
  });
});
