/**
 * The interactive progress UI (ink), rendered with ink-testing-library from recorded event streams.
 */
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { createElement } from 'react';
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import type { PipelineEvent } from '../../src/core/events.js';
import { ProgressApp, type TerminalSize } from '../../src/cli/progress/ink-app.js';
import { emptyView, etaMs, reduceView, type ProgressView } from '../../src/cli/progress/ink-model.js';
import { InkReporter } from '../../src/cli/progress/ink-reporter.js';
import { LazyInkReporter } from '../../src/cli/progress/ink-loader.js';
import { createReporter, usesInteractiveUi } from '../../src/cli/progress/choose.js';
import { JsonReporter } from '../../src/cli/progress/json.js';
import { PlainReporter } from '../../src/cli/progress/plain.js';
import type { ProgressReporter } from '../../src/cli/progress/reporter.js';
import { recordPipeline, scriptedAbortedRun, scriptedFinishedRun, scriptedRun } from './recorded-events.js';

function viewOf(events: readonly PipelineEvent[]): ProgressView {
  return events.reduce((view, event) => reduceView(view, event), emptyView());
}

function frame(events: readonly PipelineEvent[], size: TerminalSize = { columns: 100, rows: 40 }): string {
  const app = render(createElement(ProgressApp, { view: viewOf(events), size }));
  const text = stripVTControlCharacters(app.lastFrame() ?? '');
  app.unmount();
  return text;
}

const lines = (text: string) => text.split('\n');

describe('progress UI on a recorded run', () => {
  it('shows one row per stage with in, out, failed, dropped and both rates', () => {
    const text = frame(scriptedRun());
    for (const stage of ['read', 'resume', 'decode', 'filter', 'synth', 'record', 'export:wds']) {
      expect(text).toMatch(new RegExp(`^${stage}\\s`, 'm'));
    }
    expect(text).toMatch(/^stage\s+in\s+out\s+failed\s+dropped\s+now\/s\s+avg\/s$/m);
    // 360 samples in 4 s: 90/s on average, 100/s now; decode failed 2, filter dropped 25.
    expect(text).toMatch(/^decode\s+360\s+360\s+2\s+0\s+100\s+90\.0$/m);
    expect(text).toMatch(/^filter\s+360\s+360\s+0\s+25\s+100\s+90\.0\s+batch 43ms$/m);
    // The source's row has no "in": it reads.
    expect(text).toMatch(/^read\s{10,}360\s+0\s+0\s+100\s+90\.0$/m);
  });

  it('shows the run, how far it is, and the ETA when the total is known', () => {
    const text = frame(scriptedRun());
    expect(text).toContain('run 3');
    expect(text).toContain('resumed 100 done');
    expect(text).toContain('360 / 1,000  36%');
    // (1000 - 360) samples at 100/s now.
    expect(etaMs(viewOf(scriptedRun()))).toBeCloseTo(6400);
    expect(text).toContain('ETA 6s');
    expect(text).toMatch(/█+░+ 360/);
  });

  it('shows no ETA without a total', () => {
    const events = scriptedRun().map((e) =>
      e.type === 'run-start' || e.type === 'progress' ? ({ ...e, total: null } as PipelineEvent) : e,
    );
    const text = frame(events);
    expect(text).not.toContain('ETA');
    expect(text).toContain('360 read');
  });

  it('shows LLM counters on the LLM stage: in flight, requests, retries, tokens, cost', () => {
    const text = lines(frame(scriptedRun()));
    // Too long for the row at 100 columns: on the line under it.
    const synth = text[text.findIndex((l) => l.startsWith('synth')) + 1]!;
    expect(synth).toContain('7 in flight');
    expect(synth).toContain('412 req (18 cached)');
    expect(synth).toContain('3 retries');
    // 98,765 prompt + 23,456 completion tokens.
    expect(synth).toContain('122.2k tok');
    expect(synth).toContain('$0.029');
  });

  it('shows the most recent errors and log lines', () => {
    const text = frame(scriptedRun());
    expect(text).toContain('errors: 3');
    expect(text).toMatch(/decode web_000017 image_truncated: the image ends early/);
    expect(text).toMatch(/decode web_000211 image_too_large: 30000x30000 pixels/);
    expect(text).toMatch(/synth web_000230 llm_timeout: no answer/);
    expect(text).toContain('warning: synth: 429 from the API, waiting 2s (Retry-After)');
  });

  it('keeps only the latest errors, with the total count', () => {
    const errors: PipelineEvent[] = Array.from({ length: 12 }, (_, i) => ({
      type: 'sample-error',
      stage: 'decode',
      key: `bad_${i}`,
      code: 'image_corrupt',
      message: `broken ${i}`,
    }));
    const text = frame([...scriptedRun(), ...errors]);
    expect(text).toContain('errors: 15 (latest 5)');
    expect(text).toContain('bad_11');
    expect(text).toContain('bad_7');
    expect(text).not.toContain('bad_6 ');
  });

  it('says it is finishing in-flight work after Ctrl-C', () => {
    const text = frame(scriptedAbortedRun());
    expect(text).toContain('interrupted: finishing samples in flight');
    expect(text).toContain('Ctrl-C again quits at once; the run stays resumable');
  });

  it('ends with a summary of the run', () => {
    const text = frame(scriptedFinishedRun());
    expect(text).toContain('finished in 10s · samples: 1,000 total, 930 ok, 10 failed, 60 dropped');
    expect(text).toContain('failures: image_truncated 7, image_too_large 1, llm_timeout 2');
    expect(text).toContain('exported: wds 930');
    expect(text).toContain('1,000 / 1,000  100%');
    expect(text).not.toContain('ETA');
    // Final rows show average rates only; at 100 columns the filter's batch latency fits on its row.
    expect(text).toMatch(/^stage\s+in\s+out\s+failed\s+dropped\s+avg\/s$/m);
    expect(text).toMatch(/^decode\s+1,000\s+1,000\s+2\s+0\s+105$/m);
    expect(text).toMatch(/^filter\s+1,000\s+1,000\s+0\s+60\s+105\s+batch 43ms$/m);
  });

  it('ends an interrupted run with "stopped" and how to resume', () => {
    const text = frame(scriptedFinishedRun(true));
    expect(text).toContain('stopped in 5s · samples: 480 total, 446 ok, 8 failed, 26 dropped');
    expect(text).toContain('run the same command again to resume');
    expect(text).not.toContain('Ctrl-C again');
  });
});

describe('progress UI layout', () => {
  it('fits a narrow terminal: columns dropped, LLM detail on its own line, every line truncated', () => {
    const text = frame(scriptedFinishedRun(), { columns: 40, rows: 40 });
    for (const line of lines(text)) expect(line.length).toBeLessThanOrEqual(40);
    expect(text).toMatch(/^stage\s+in\s+out\s+failed$/m);
    expect(text).not.toContain('avg/s');
    expect(text).toMatch(/^ {2}7 in flight · 412 req/m);
    expect(text).toContain('…');
  });

  it('stays shorter than the terminal however many errors come', () => {
    const errors: PipelineEvent[] = Array.from({ length: 50 }, (_, i) => ({
      type: 'sample-error',
      stage: 'decode',
      key: `bad_${i}`,
      code: 'image_corrupt',
      message: 'broken',
    }));
    const text = frame([...scriptedAbortedRun(), ...errors], { columns: 100, rows: 22 });
    expect(lines(text).length).toBeLessThan(22);
    expect(text).toContain('bad_49');
    expect(text).toContain('interrupted: finishing samples in flight');
  });

  it('re-lays out when the terminal is resized', async () => {
    const app = render(createElement(ProgressApp, { view: viewOf(scriptedRun()) }));
    const wide = stripVTControlCharacters(app.lastFrame() ?? '');
    expect(wide).toContain('avg/s');
    Object.defineProperty(app.stdout, 'columns', { get: () => 40 });
    app.stdout.emit('resize');
    await new Promise((r) => setTimeout(r, 20));
    const narrow = stripVTControlCharacters(app.lastFrame() ?? '');
    app.unmount();
    expect(narrow).not.toContain('avg/s');
    for (const line of lines(narrow)) expect(line.length).toBeLessThanOrEqual(40);
  });
});

/** A terminal-like stream that keeps what ink writes. */
class FakeTerminal extends EventEmitter {
  readonly frames: string[] = [];
  columns = 100;
  rows = 40;
  isTTY = false;
  write = (chunk: string) => {
    this.frames.push(stripVTControlCharacters(chunk));
    return true;
  };
  get output(): string {
    return this.frames.join('');
  }
}

function asStream(t: FakeTerminal): NodeJS.WriteStream {
  return t as unknown as NodeJS.WriteStream;
}

describe('InkReporter', () => {
  it('draws a real recorded pipeline run and leaves the final frame', async () => {
    const events = await recordPipeline(60);
    const terminal = new FakeTerminal();
    const reporter = new InkReporter({ stdout: asStream(terminal), debug: true, throttleMs: 0 });
    for (const event of events) reporter.onEvent(event);
    reporter.close();
    const last = terminal.frames.filter((f) => f.includes('stage')).at(-1)!;
    // 60 samples: keys ending in 7 fail in decode (6), keys ending in 5 are dropped by judge (6).
    expect(last).toMatch(/^decode\s+60\s+60\s+6\s+0\s/m);
    expect(last).toMatch(/^judge\s+60\s+60\s+0\s+6\s.*batch 12ms/m);
    expect(last).toMatch(/^chat\s.*\n {2}0 in flight · 60 req · 6 retries · 24\.0k tok · \$0\.006/m);
    expect(last).toContain('finished in');
    expect(last).toContain('samples: 60 total, 48 ok, 6 failed, 6 dropped');
    expect(last).toContain('errors: 6 (latest 5)');
    expect(last).toContain('image_truncated: k0057: the image ends early');
  });

  it('draws the aborting notice of a real interrupted run, then "stopped"', async () => {
    const events = await recordPipeline(400, { abortAfter: 30 });
    expect(events.some((e) => e.type === 'aborting')).toBe(true);
    const terminal = new FakeTerminal();
    const reporter = new InkReporter({ stdout: asStream(terminal), debug: true, throttleMs: 0 });
    for (const event of events) {
      reporter.onEvent(event);
      if (event.type === 'aborting') expect(terminal.frames.at(-1)).toContain('interrupted: finishing samples in flight');
    }
    reporter.close();
    // With CI set in the environment, ink ends with a bare newline after the last frame; look at that frame.
    const last = terminal.frames.filter((f) => f.includes('stage')).at(-1)!;
    expect(last).toContain('stopped in');
    expect(last).toContain('run the same command again to resume');
  });

  it('throttles redraws of frequent events but never loses the final state', () => {
    const terminal = new FakeTerminal();
    const reporter = new InkReporter({ stdout: asStream(terminal), debug: true, throttleMs: 60_000 });
    const events = scriptedFinishedRun();
    for (const event of events) reporter.onEvent(event);
    // run-start draws at once; the progress, error and LLM events in between wait; run-end draws at once.
    expect(terminal.frames.filter((f) => f.includes('stage')).length).toBeLessThanOrEqual(3);
    reporter.close();
    expect(terminal.output).toContain('exported: wds 930');
  });
});

class Collecting implements ProgressReporter {
  events: PipelineEvent[] = [];
  closed = false;
  onEvent(event: PipelineEvent): void {
    this.events.push(event);
  }
  close(): void {
    this.closed = true;
  }
}

describe('choosing and loading the reporter', () => {
  it('auto uses the ink UI only on an interactive terminal outside CI; tty always; plain and json never', () => {
    expect(usesInteractiveUi('auto', { isTTY: true }, {})).toBe(true);
    expect(usesInteractiveUi('auto', { isTTY: false }, {})).toBe(false);
    expect(usesInteractiveUi('auto', { isTTY: true }, { TERM: 'dumb' })).toBe(false);
    expect(usesInteractiveUi('auto', { isTTY: true }, { CI: 'true' })).toBe(false);
    expect(usesInteractiveUi('auto', { isTTY: true }, { CI: 'false' })).toBe(true);
    expect(usesInteractiveUi('tty', { isTTY: true }, { CI: 'true' })).toBe(true);
    expect(usesInteractiveUi('tty', { isTTY: false }, {})).toBe(true);
    expect(usesInteractiveUi('plain', { isTTY: true }, {})).toBe(false);
    expect(usesInteractiveUi('json', { isTTY: true }, {})).toBe(false);
    expect(createReporter('json')).toBeInstanceOf(JsonReporter);
    expect(createReporter('plain')).toBeInstanceOf(PlainReporter);
    expect(createReporter('tty')).toBeInstanceOf(LazyInkReporter);
  });

  it('replays events that came while ink loaded, and closes once loaded', async () => {
    const target = new Collecting();
    let resolveLoad!: (r: ProgressReporter) => void;
    const lazy = new LazyInkReporter({}, () => new Promise((r) => (resolveLoad = r)));
    const events = scriptedFinishedRun();
    for (const event of events) lazy.onEvent(event);
    lazy.close();
    expect(target.events).toHaveLength(0);
    resolveLoad(target);
    await lazy.ready;
    expect(target.events).toEqual(events);
    expect(target.closed).toBe(true);
  });

  it('falls back to plain lines when ink cannot be loaded', async () => {
    const fallback = new Collecting();
    const lazy = new LazyInkReporter({}, () => Promise.reject(new Error('no ink here')), () => fallback);
    lazy.onEvent(scriptedRun()[0]!);
    await lazy.ready;
    expect(fallback.events[0]).toMatchObject({ type: 'log', level: 'warn', message: expect.stringContaining('no ink here') });
    expect(fallback.events[1]).toMatchObject({ type: 'run-start' });
  });

  it('only src/cli imports ink, and only the ink UI modules load it statically', () => {
    const root = resolve(import.meta.dirname, '../../src');
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.(ts|tsx)$/.test(name)) files.push(path);
      }
    };
    walk(root);
    const staticImport = (text: string, what: RegExp) =>
      [...text.matchAll(/^import\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms)].some((m) => what.test(m[1]!));
    const inkUsers = files.filter((f) => staticImport(readFileSync(f, 'utf8'), /^(ink|react)(\/|$)/)).map((f) => relative(root, f)).sort();
    expect(inkUsers).toEqual(['cli/progress/ink-app.tsx', 'cli/progress/ink-reporter.tsx']);
    const uiUsers = files
      .filter((f) => staticImport(readFileSync(f, 'utf8'), /ink-(app|reporter)\.js$/))
      .map((f) => relative(root, f))
      .sort();
    expect(uiUsers).toEqual(['cli/progress/ink-reporter.tsx']);
  });
});
