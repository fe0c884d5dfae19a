/**
 * The malformed-input corpus (tools/make-malformed-corpus.mjs) through the real CLI: every build runs as a
 * child process (`vlcurate build RECIPE`), and each case must come out with its exact code. On top of the
 * codes, for every process: no crash (never exit 70, never a stack trace), no hang (killed after
 * PROCESS_TIMEOUT_MS, which fails the test), bounded memory (peak RSS under PEAK_RSS_LIMIT_KIB, measured
 * with getrusage in the child at exit and polled from /proc/PID/status VmHWM while it runs).
 *
 * URLs are served by a local 127.0.0.1 image server, LLM answers by the local fake OpenAI server.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CATEGORIES, countCases, generateCorpus, llmBehaviour, urlImages, type CorpusBuild } from '../../tools/make-malformed-corpus.mjs';
import { startImageServer, type ImageServer } from '../http-server/image-server.js';
import { FakeLlmServer, type Behaviour } from '../llm-server/server.js';
import { CLI } from './helpers.js';

const PROCESS_TIMEOUT_MS = 90_000;
/** 1 GiB: a build of this corpus needs a few hundred MiB; a read without a bound would need far more. */
const PEAK_RSS_LIMIT_KIB = 1024 * 1024;
/** Builds at once: the corpus runs in CI beside other tests. */
const PARALLEL = 2;
const PRELOAD = resolve(import.meta.dirname, 'peak-rss.cjs');

interface Ran {
  build: CorpusBuild;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  timedOut: boolean;
  wallMs: number;
  peakRssKiB: number | null;
}

let root: string;
let builds: CorpusBuild[];
let imageServer: ImageServer;
let llmServer: FakeLlmServer;
const ran: Ran[] = [];
const started = performance.now();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'vlc-corpus-'));
  imageServer = await startImageServer();
  for (const [name, bytes] of Object.entries(await urlImages())) imageServer.addImage(name, bytes);
  llmServer = await FakeLlmServer.start({ script: (request) => (llmBehaviour(request.body) as Behaviour | null) ?? undefined });
  // A port that was listening a moment ago and is closed now: connection refused.
  const gone = await FakeLlmServer.start();
  const refusedBaseURL = gone.baseURL;
  await gone.close();
  ({ builds } = await generateCorpus(root, { urlOrigin: imageServer.origin, llmBaseURL: llmServer.baseURL, refusedBaseURL }));
}, 120_000);

afterAll(async () => {
  await imageServer?.close();
  await llmServer?.close();
  if (root) rmSync(root, { recursive: true, force: true });
  const counts = countCases(builds ?? []);
  const peak = ran.reduce((max, r) => Math.max(max, r.peakRssKiB ?? 0), 0);
  const slowest = ran.reduce<Ran | null>((max, r) => (max === null || r.wallMs > max.wallMs ? r : max), null);
  console.log(
    `malformed corpus: ${Object.values(counts).reduce((a, b) => a + b, 0)} cases (${Object.entries(counts).map(([c, n]) => `${c} ${n}`).join(', ')}), ` +
      `${ran.length} processes, ${((performance.now() - started) / 1000).toFixed(1)} s in all, peak RSS ${(peak / 1024).toFixed(0)} MiB` +
      (slowest ? `, slowest ${slowest.build.category}/${slowest.build.name} ${(slowest.wallMs / 1000).toFixed(1)} s` : ''),
  );
});

/** Run one build as a child process, watching its time and memory. */
function runBuild(build: CorpusBuild): Promise<Ran> {
  const cwd = existsSync(build.recipe) && statSync(build.recipe).isFile() ? dirname(build.recipe) : root;
  const rssFile = join(root, `rss-${ran.length}-${Math.random().toString(36).slice(2)}`);
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, 'build', build.recipe, '--progress', 'plain'], {
      cwd,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: `--require ${PRELOAD}`, VLCURATE_PEAK_RSS_FILE: rssFile, CI: '1' },
    });
    let stderr = '';
    let polled = 0;
    let timedOut = false;
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 1_000_000) stderr += chunk.toString();
    });
    const poll = setInterval(() => {
      try {
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        if (hwm) polled = Math.max(polled, Number(hwm));
      } catch {
        // Gone, or no /proc here: the child's own report counts.
      }
    }, 50);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, PROCESS_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      let reported = 0;
      try {
        reported = Number(readFileSync(rssFile, 'utf8'));
      } catch {
        // Killed before it could say.
      }
      const peak = Math.max(polled, reported);
      resolvePromise({ build, code, signal, stderr, timedOut, wallMs: performance.now() - t0, peakRssKiB: peak > 0 ? peak : null });
    });
  });
}

async function runAll(list: CorpusBuild[]): Promise<Ran[]> {
  const out: Ran[] = [];
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const result = await runBuild(list[next++]!);
      out.push(result);
      ran.push(result);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  return out;
}

/** What went wrong with one build, as lines (empty when it is all as the corpus says). */
function problemsOf(r: Ran): string[] {
  const { build } = r;
  const label = `${build.category}/${build.name}`;
  const problems: string[] = [];
  const tail = r.stderr.trim().split('\n').slice(-3).join(' | ');
  if (r.timedOut) problems.push(`${label}: still running after ${PROCESS_TIMEOUT_MS} ms (killed)`);
  if (r.code !== build.exit) problems.push(`${label}: exit ${r.code ?? r.signal}, expected ${build.exit}: ${tail}`);
  if (/internal error/.test(r.stderr) || /^\s+at .+:\d+:\d+\)?$/m.test(r.stderr)) problems.push(`${label}: crashed: ${tail}`);
  // Inputs' control characters are escaped in every message (an ESC from a file must not reach the terminal).
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(r.stderr)) problems.push(`${label}: raw control characters in the output: ${JSON.stringify(tail)}`);
  if (build.stderr && !build.stderr.test(r.stderr)) problems.push(`${label}: the message does not match ${build.stderr}: ${tail}`);
  if (build.maxWallMs !== undefined && r.wallMs > build.maxWallMs) problems.push(`${label}: took ${Math.round(r.wallMs)} ms, more than ${build.maxWallMs}`);
  if (build.llmRequests) {
    const sent = llmServer.requests.filter((q) => q.body.model === build.llmRequests!.model).length;
    if (sent > build.llmRequests.atMost) problems.push(`${label}: ${sent} requests for ${build.llmRequests.model}, expected at most ${build.llmRequests.atMost}`);
  }
  if (r.peakRssKiB !== null && r.peakRssKiB > PEAK_RSS_LIMIT_KIB) problems.push(`${label}: peak RSS ${r.peakRssKiB} KiB over ${PEAK_RSS_LIMIT_KIB}`);
  problems.push(...recordProblems(r, label));
  return problems;
}

interface SampleRow {
  key: string;
  status: string;
  error_code: string | null;
  drop_reason: string | null;
  error_message: string | null;
  meta_json: string;
}

function outcomeOf(row: SampleRow): string {
  return row.status === 'ok' ? 'ok' : row.status === 'dropped' ? `dropped:${row.drop_reason}` : (row.error_code ?? 'failed');
}

/** Every case's samples against the run database; every sample must belong to a case. */
function recordProblems(r: Ran, label: string): string[] {
  const { build } = r;
  const dbPath = join(dirname(build.recipe), 'out', 'run.db');
  const expected = build.cases.flatMap((c) => Object.keys(c.records));
  if (!existsSync(dbPath) || !statSync(dbPath).isFile()) {
    return expected.length === 0 && !build.cases.some((c) => c.others) ? [] : [`${label}: no run database at ${dbPath}`];
  }
  const db = new Database(dbPath, { readonly: true });
  try {
    const rows = new Map((db.prepare('SELECT key, status, error_code, drop_reason, error_message, meta_json FROM samples').all() as SampleRow[]).map((row) => [row.key, row]));
    const captionIssues = new Map((db.prepare('SELECT sample_key AS key, issue FROM captions WHERE idx = 0').all() as { key: string; issue: string | null }[]).map((c) => [c.key, c.issue]));
    const instructions = db.prepare('SELECT sample_key AS key, task, status, reason FROM instructions WHERE variant = 0').all() as { key: string; task: string; status: string; reason: string | null }[];
    const problems: string[] = [];
    const claimed = new Set<string>();
    for (const c of build.cases) {
      for (const [key, want] of Object.entries(c.records)) {
        claimed.add(key);
        const row = rows.get(key);
        const got = row ? outcomeOf(row) : 'no sample';
        if (got !== want) problems.push(`${label} ${c.name}: ${key} is ${got}, expected ${want}${row?.error_message ? ` (${row.error_message})` : ''}`);
        if (c.captionIssue !== undefined && captionIssues.get(key) !== c.captionIssue) {
          problems.push(`${label} ${c.name}: ${key}'s caption issue is ${captionIssues.get(key) ?? 'none'}, expected ${c.captionIssue}`);
        }
        if (c.droppedAnnotations !== undefined) {
          const dropped = ((row ? (JSON.parse(row.meta_json) as { droppedAnnotations?: { code: string }[] }) : {}).droppedAnnotations ?? []).map((d) => d.code);
          if (dropped.join(',') !== c.droppedAnnotations.join(',')) problems.push(`${label} ${c.name}: ${key} dropped annotations [${dropped}], expected [${c.droppedAnnotations}]`);
        }
        for (const [task, wantRow] of Object.entries(c.instructions ?? {})) {
          const found = instructions.find((i) => i.key === key && i.task === task);
          const code = found?.reason ? found.reason.split(':')[0]!.trim() : null;
          const gotRow = found === undefined ? 'no row' : found.status === 'ok' ? 'ok' : `${found.status}:${code}`;
          if (gotRow !== wantRow) problems.push(`${label} ${c.name}: ${key} ${task} is ${gotRow}, expected ${wantRow}${found?.reason ? ` (${found.reason})` : ''}`);
        }
      }
    }
    for (const c of build.cases) {
      if (!c.others) continue;
      let n = 0;
      for (const [key, row] of rows) {
        if (claimed.has(key) || !key.startsWith(c.others.prefix)) continue;
        claimed.add(key);
        n++;
        if (outcomeOf(row) !== c.others.expect) problems.push(`${label} ${c.name}: ${key} is ${outcomeOf(row)}, expected ${c.others.expect}`);
      }
      if (n < c.others.atLeast) problems.push(`${label} ${c.name}: ${n} samples start with ${c.others.prefix}, expected at least ${c.others.atLeast}`);
    }
    for (const [key, row] of rows) if (!claimed.has(key)) problems.push(`${label}: sample ${key} (${outcomeOf(row)}) belongs to no case`);
    return problems;
  } finally {
    db.close();
  }
}

describe('malformed-input corpus through vlcurate build', () => {
  it('has a few hundred cases across every category', () => {
    const counts = countCases(builds);
    for (const category of CATEGORIES) expect(counts[category], category).toBeGreaterThanOrEqual(5);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(300);
  });

  for (const category of CATEGORIES) {
    it(`${category}: every case gets its code; no crash, no hang, bounded memory`, async () => {
      const mine = builds.filter((b) => b.category === category);
      expect(mine.length).toBeGreaterThan(0);
      const results = await runAll(mine);
      expect(results).toHaveLength(mine.length);
      for (const r of results) expect(r.peakRssKiB === null || r.peakRssKiB > 10_000, `${r.build.name}: RSS measured`).toBe(true);
      expect(results.flatMap(problemsOf)).toEqual([]);
    }, 300_000);
  }
});
