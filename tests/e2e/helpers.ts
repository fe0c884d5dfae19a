import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tar from 'tar';

/** The built CLI (`npm test` builds before running the tests). */
export const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; onStdoutLine?: (line: string, child: ChildProcess) => void; onStart?: (child: ChildProcess) => void } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const env = options.env ? { ...process.env, ...options.env } : undefined;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    options.onStart?.(child);
    let stdout = '';
    let stderr = '';
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stdout += text;
      if (!options.onStdoutLine) return;
      pending += text;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        options.onStdoutLine(pending.slice(0, newline), child);
        pending = pending.slice(newline + 1);
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

/** Every member of every finished shard in a folder, read with node-tar (not our writer's code). */
export async function readShardMembers(folder: string): Promise<{ shard: string; member: string }[]> {
  const shards = readdirSync(folder).filter((f) => f.endsWith('.tar')).sort();
  const out: { shard: string; member: string }[] = [];
  for (const shard of shards) {
    await tar.t({ file: join(folder, shard), onReadEntry: (entry) => out.push({ shard, member: entry.path }) });
  }
  return out;
}

/** Sample keys per shard: the member name up to the first dot. */
export function keysOf(members: { member: string }[]): string[] {
  return [...new Set(members.map((m) => `${m.member.split('.')[0]}`))];
}
