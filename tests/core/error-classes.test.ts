/**
 * Every error class in src/ derives from the project's base error (issue 14), with a stable `code`,
 * while keeping the message, name and code that callers already rely on.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { PreparedRequest } from '../../src/backends/llm-client.js';
import { VlcurateError } from '../../src/core/errors.js';
import { FileExistsError } from '../../src/export/durable-fs.js';
import { RegionError } from '../../src/regions/region-format.js';
import { TemplateError } from '../../src/export/templates/template.js';
import { DownloadAbortedError } from '../../src/images/url-fetcher.js';
import { PendingRequest } from '../../src/synth/llm-task-runner.js';

describe('error classes', () => {
  it('derive from VlcurateError and keep their codes, names and messages', () => {
    const cause = new Error('EEXIST: file already exists');
    const exists = new FileExistsError('/tmp/x.tar', { cause });
    const cases: [VlcurateError, string, string, string][] = [
      [exists, 'EEXIST', 'FileExistsError', '/tmp/x.tar already exists'],
      [new RegionError('bad box'), 'region_invalid', 'RegionError', 'bad box'],
      [new TemplateError('separator_in_text', 'has </s>'), 'separator_in_text', 'TemplateError', 'has </s>'],
      [new DownloadAbortedError(), 'download_aborted', 'AbortError', 'download aborted'],
      [new PendingRequest({ hash: 'h' } as unknown as PreparedRequest), 'answer_pending', 'PendingRequest', 'answer not available yet'],
    ];
    for (const [err, code, name, message] of cases) {
      expect(err).toBeInstanceOf(VlcurateError);
      expect(err).toBeInstanceOf(Error);
      expect([err.code, err.name, err.message]).toEqual([code, name, message]);
    }
    expect(exists.path).toBe('/tmp/x.tar');
    expect(exists.cause).toBe(cause);
  });

  it('no class in src/ extends plain Error except the base itself', () => {
    // git grep exits 1 when nothing matches; `|| true` keeps that from throwing.
    const hits = execFileSync('sh', ['-c', "git grep -n 'extends Error\\b' -- src || true"], { cwd: resolve(import.meta.dirname, '../..'), encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.trim() !== '');
    expect(hits).toEqual([expect.stringMatching(/^src\/core\/errors\.ts:\d+:export class VlcurateError extends Error \{$/)]);
  });
});
