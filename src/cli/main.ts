#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { escapeControlChars } from '../core/control-chars.js';
import { ConfigError, VlcurateError } from '../core/errors.js';
import { describeEnvironmentError } from './environment-error.js';
import { EXIT_CONFIG } from './exit.js';
import { registerBuild } from './commands/build.js';
import { registerInspect } from './commands/inspect.js';
import { registerReport } from './commands/report.js';
import { registerDatasets } from './commands/datasets.js';
import { registerDemo } from './commands/demo.js';
import { registerRefilter } from './commands/refilter.js';
import { registerCalibrate } from './commands/calibrate.js';
import { registerEstimate } from './commands/estimate.js';
import { registerExport } from './commands/export.js';
import { registerScore } from './commands/score.js';
import { registerCaption } from './commands/caption.js';
import { registerMerge } from './commands/merge.js';

export function createProgram(setExit: (code: number) => void): Command {
  const program = new Command('vlcurate')
    .description('Build vision-language training data: ingest, filter, recaption, synthesize, export.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();
  registerDemo(program, setExit);
  registerBuild(program, setExit);
  registerInspect(program);
  registerReport(program);
  registerDatasets(program);
  registerRefilter(program, setExit);
  registerCalibrate(program);
  registerEstimate(program);
  registerExport(program, setExit);
  registerScore(program);
  registerCaption(program);
  registerMerge(program, setExit);
  return program;
}

async function main(): Promise<void> {
  // Output piped into `head` and closed early: stop quietly, as other command-line tools do.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  let exitCode = 0;
  const program = createProgram((code) => (exitCode = code));
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors (already printed by commander) exit 2.
      process.exitCode = err.exitCode === 0 ? 0 : EXIT_CONFIG;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`vlcurate: ${escapeControlChars(err.message)}\n`);
      process.exitCode = EXIT_CONFIG;
      return;
    }
    const environment = describeEnvironmentError(err);
    if (environment !== null) {
      process.stderr.write(`vlcurate: ${escapeControlChars(environment)}\n`);
      process.exitCode = EXIT_CONFIG;
      return;
    }
    const code = err instanceof VlcurateError ? ` [${err.code}]` : '';
    process.stderr.write(`vlcurate: internal error${code}: ${escapeControlChars(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
    process.exitCode = 70;
    return;
  }
  process.exitCode = exitCode;
}

await main();
