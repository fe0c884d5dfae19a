/**
 * Control bytes from inputs never reach the terminal (issue 12, "Safe by default"): a JSONL line starting
 * with `\x1b]2;PWNED` (an OSC sequence that retitles the terminal) was echoed raw in the parse error. Real
 * child processes; their output is checked byte for byte for ESC, C1 controls and bidi overrides.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { escapeControlChars } from '../../src/core/control-chars.js';
import { makeImage } from '../fixtures/make-webdataset.js';
import { runCli } from './helpers.js';

let dir: string;
/** Raw controls an input may carry: ESC (C0), CSI as one C1 character, BEL, a right-to-left override. */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vlc-ctrl-'));
  writeFileSync(join(dir, 'ok.jpg'), await makeImage(24, 16, 'jpeg', 2));
  const lines = [
    '\u001b]2;PWNED\u0007 this line is not JSON',
    JSON.stringify({ key: 'good', image: 'ok.jpg', caption: 'a photo', note: 'meta with \u001b[31mred\u001b[0m and \u009b2J and \u202egnp.exe' }),
    JSON.stringify({ key: 'missing', image: 'nope-\u001b[2J.jpg', caption: 'x' }),
  ];
  writeFileSync(join(dir, 'm.jsonl'), lines.join('\n'));
  writeFileSync(
    join(dir, 'recipe.yaml'),
    stringify({ run: { db: 'out/run.db' }, sources: [{ type: 'jsonl', path: 'm.jsonl', image: 'image', caption: 'caption', key: 'key', extra: ['note'] }] }),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('messages with control characters from inputs', () => {
  it('are escaped in plain and JSON progress, and stored escaped', async () => {
    const plain = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'plain']);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain('row_invalid');
    expect(plain.stderr).toContain('\\u001b]2;PWNED\\u0007');
    expect(plain.stderr).toContain('nope-\\u001b[2J.jpg');
    expect(plain.stderr).not.toMatch(UNSAFE);
    expect(plain.stdout).not.toMatch(UNSAFE);

    const json = await runCli(['build', join(dir, 'recipe.yaml'), '--progress', 'json']);
    expect(json.stdout + json.stderr).not.toMatch(UNSAFE);

    const failed = await runCli(['inspect', join(dir, 'out/run.db'), 'samples', '--status', 'failed', '--json']);
    expect(failed.stdout).not.toMatch(UNSAFE);
    const rows = JSON.parse(failed.stdout) as { key: string; error_message: string }[];
    expect(rows).toHaveLength(2);
    // The database holds the escaped text, so any client shows it safely.
    for (const row of rows) expect(row.error_message).not.toMatch(UNSAFE);
    expect(rows.map((r) => r.error_message).join('\n')).toContain('\\u001b]2;PWNED');
  });

  it('are escaped by inspect (tables, show, sql) and in error lines', async () => {
    const db = join(dir, 'out/run.db');
    const outputs = await Promise.all([
      runCli(['inspect', db, 'samples']),
      runCli(['inspect', db, 'show', 'good']),
      runCli(['inspect', db, 'sql', 'SELECT key, meta_json FROM samples']),
      runCli(['inspect', db, 'sql', 'SELECT key, meta_json FROM samples', '--json']),
      runCli(['inspect', db, 'show', 'no-\u001b]2;such']),
    ]);
    for (const out of outputs) {
      expect(out.stdout).not.toMatch(UNSAFE);
      expect(out.stderr).not.toMatch(UNSAFE);
    }
    expect(outputs[1]!.stdout).toContain('\\u001b[31mred');
    // --json output escapes them as JSON escapes: parsed back, the value is what the input held.
    expect(JSON.parse(outputs[3]!.stdout).find((r: { key: string }) => r.key === 'good').meta_json).toContain('\u009b2J and \u202egnp.exe');
    expect(outputs[4]!.code).toBe(2);
    expect(outputs[4]!.stderr).toContain('no-\\u001b]2;such');
  });
});

describe('escapeControlChars', () => {
  it('writes controls as JSON escapes, keeps tab and newline unless one line is asked for', () => {
    expect(escapeControlChars('a\u001b]2;x\u0007b')).toBe('a\\u001b]2;x\\u0007b');
    expect(escapeControlChars('line\nnext\tcol\rback')).toBe('line\nnext\tcol\\u000dback');
    expect(escapeControlChars('line\nnext\t', { oneLine: true })).toBe('line\\u000anext\\u0009');
    expect(escapeControlChars('\u009b\u007f\u202e\u2066 ünïcødé ✓')).toBe('\\u009b\\u007f\\u202e\\u2066 ünïcødé ✓');
    expect(JSON.parse(escapeControlChars(JSON.stringify({ t: '\u009b\u202e' })))).toEqual({ t: '\u009b\u202e' });
  });
});
