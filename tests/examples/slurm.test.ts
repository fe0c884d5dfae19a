/**
 * examples/slurm/ for real: a one-node Slurm (Debian's slurm-wlm and munge, started by
 * tools/slurm/start-local-slurm.sh with its own munge key, ports and state in a temporary folder, stopped in
 * afterAll) runs submit.sh's job array of N `vlcurate build --shard $SLURM_ARRAY_TASK_ID/N` parts and the
 * merge job that depends on it, with part 0 requeued mid-run (as a preemption does); the merged run
 * database must hold every sample exactly once and equal a single-process build of the same recipe (same
 * samples, statuses, captions and scores), and the merged export the same kept samples. The jobs run this checkout's dist/ (VLCURATE overrides the npm install,
 * so nothing is downloaded). Needs root (slurmd), and `npm test` (or tsc -p tsconfig.build.json) first.
 * Skips only where sbatch is not installed; under CI (.ci/run installs it) a missing sbatch is an error.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { generateShapes, SPLIT_SEEDS } from '../../datasets/shapes/index.js';
import { inShard } from '../../src/core/shard.js';
import { openDatabase } from '../../src/store/database.js';
import { readHolder } from '../../src/store/run-lock.js';
import { CLI, keysOf, readShardMembers, runCli } from '../e2e/helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MODELS = join(ROOT, 'models');
const PARTS = 3;
const COUNT = 240;
const hasSbatch = spawnSync('sh', ['-c', 'command -v sbatch && command -v slurmctld && command -v munged']).status === 0;
if (!hasSbatch && process.env.CI) throw new Error('sbatch is missing: .ci/run installs slurm-wlm and munge for this test');

let dir: string;
let clusterDir: string | undefined;
let env: NodeJS.ProcessEnv;
let jobs: { array: string; merge: string };
let single: { code: number | null; stderr: string };
/** Samples part 0 had committed when Slurm requeued it. */
let requeuedAt: number;

/** `scontrol show job -o ID` as records (one per array task), e.g. { JobState: 'COMPLETED', ArrayTaskId: '2' }. */
function showJob(id: string): Record<string, string>[] {
  const out = spawnSync('scontrol', ['show', 'job', '-o', id], { env, encoding: 'utf8', timeout: 10_000 });
  if (out.status !== 0) throw new Error(`scontrol show job ${id}: ${out.stderr}`);
  return out.stdout.trim().split('\n').filter(Boolean).map((line) =>
    Object.fromEntries(line.split(/ (?=[A-Za-z:]+=)/).map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)])),
  );
}

const FINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE']);

/** Polls until every record of the job is in a final state; throws with the job's logs after `ms`. */
async function waitForJob(id: string, ms: number): Promise<Record<string, string>[]> {
  const until = Date.now() + ms;
  for (;;) {
    const records = showJob(id);
    if (records.length > 0 && records.every((r) => FINAL.has(r['JobState']!))) return records;
    if (Date.now() > until) throw new Error(`job ${id} not finished after ${ms / 1000} s: ${records.map((r) => r['JobState']).join(', ')}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * What a preemption or a lost node does to a part: once the task has committed samples (commitEvery 8),
 * `scontrol requeue` kills it (SIGTERM, then SIGKILL after KillWait) and queues it again; Slurm holds a
 * requeued job for 2 minutes, so the test lets it start at once (StartTime=now).
 */
async function requeueMidRun(task: string, db: string): Promise<number> {
  const until = Date.now() + 180_000;
  let committed = 0;
  while (committed < 8) {
    if (Date.now() > until) throw new Error(`${task} committed no samples within 180 s\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
    try {
      committed = Number(rows(db, 'SELECT count(*) AS n FROM samples')[0]!['n']);
    } catch {
      // Not created yet.
    }
  }
  const requeue = spawnSync('scontrol', ['requeue', task], { env, encoding: 'utf8', timeout: 10_000 });
  if (requeue.status !== 0) throw new Error(`scontrol requeue ${task} (${committed} samples committed): ${requeue.stderr}`);
  const requeued = Date.now();
  // The killed build finishes its samples in flight and exits. Started again before it is gone, the part
  // would meet its lock (exit 2), and slurmd refuses a launch in the same second as the revocation of the
  // old one's credential ("Job credential revoked"): what Slurm's own 2-minute hold avoids.
  const alive = () => {
    const holder = readHolder(`${db}.lock.json`);
    if (!holder) return false;
    try {
      process.kill(holder.pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  while (Date.now() - requeued < 2_500 || alive() || showJob(task)[0]!['JobState'] !== 'PENDING') {
    if (Date.now() - requeued > 60_000) throw new Error(`${task} not pending, or its build still running, 60 s after the requeue: ${showJob(task)[0]!['JobState']}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // It comes back on a "fresh node": no local database; its state snapshot is all it has.
  for (const suffix of ['', '-wal', '-shm', '.lock', '.lock.json']) rmSync(`${db}${suffix}`, { force: true });
  const start = spawnSync('scontrol', ['update', `JobId=${task}`, 'StartTime=now'], { env, encoding: 'utf8', timeout: 10_000 });
  if (start.status !== 0) throw new Error(`scontrol update ${task} StartTime=now: ${start.stderr}`);
  return committed;
}

/** The jobs' output and the controller's log, for failure messages. */
function logs(): string {
  const folder = join(dir, 'cluster', 'slurm-logs');
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '(none)';
    }
  };
  const jobLogs = (() => {
    try {
      return readdirSync(folder).map((f) => `--- ${f}\n${read(join(folder, f))}`);
    } catch {
      return ['(no slurm-logs)'];
    }
  })();
  return [...jobLogs, `--- slurmctld.log (end)\n${read(join(clusterDir!, 'log', 'slurmctld.log')).split('\n').slice(-60).join('\n')}`].join('\n');
}

function rows(db: string, sql: string): Record<string, unknown>[] {
  const handle = openDatabase(db, { readonly: true });
  try {
    return handle.prepare(sql).all() as Record<string, unknown>[];
  } finally {
    handle.close();
  }
}

const SAMPLES = 'SELECT key, source, image_ref, sha256, status, error_code, drop_reason FROM samples ORDER BY key';
const CAPTIONS = 'SELECT sample_key, idx, origin, text, usable, round(itc, 4) AS itc, round(itm, 4) AS itm, kept FROM captions ORDER BY sample_key, idx';

describe.skipIf(!hasSbatch)(`examples/slurm on a one-node Slurm (${PARTS} parts)`, () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vlc-slurm-test-'));
    // 3 WebDataset shards of 80 scenes, 40% noisy captions; the strict ITM cut makes some samples drop.
    const data = await generateShapes({ out: join(dir, 'data'), count: COUNT, noise: 0.4, seed: SPLIT_SEEDS.demo, shardSize: 80 });
    const recipe = {
      run: { db: 'state/run.db', commitEvery: 8 },
      sources: [{ type: 'webdataset', name: 'shapes', paths: data.shards }],
      filter: {
        itc: { model: join(MODELS, 'shapes-clip'), threshold: 0.3 },
        itm: { model: join(MODELS, 'shapes-itm'), threshold: 0.995 },
        policy: 'both',
      },
      captioner: { type: 'onnx', model: join(MODELS, 'shapes-captioner'), samples: 1, strategy: 'nucleus', topP: 0.9, minLength: 3, maxLength: 24, seed: 0 },
      export: [{ type: 'webdataset', name: 'wds', out: 'wds', maxCount: 8 }],
    };
    mkdirSync(join(dir, 'single'));
    writeFileSync(join(dir, 'single', 'recipe.yaml'), stringify(recipe));
    // The parts keep their run databases on the "node's" local disk and their state (snapshots) in the
    // shared folder cluster/state/, where the merge job reads them.
    mkdirSync(join(dir, 'cluster'));
    writeFileSync(join(dir, 'cluster', 'recipe.yaml'), stringify({ ...recipe, run: { db: join(dir, 'node-local', 'run.db'), commitEvery: 8, state: `${join(dir, 'cluster', 'state')}/` } }));

    clusterDir = join(dir, 'slurm');
    const start = spawnSync('bash', [join(ROOT, 'tools/slurm/start-local-slurm.sh'), clusterDir], { encoding: 'utf8', timeout: 90_000 });
    if (start.status !== 0) throw new Error(`start-local-slurm.sh failed (${start.status ?? start.signal}): ${start.stderr}`);
    const conf = /^SLURM_CONF=(.+)$/m.exec(start.stdout)![1]!;
    env = {
      ...process.env,
      SLURM_CONF: conf,
      // This checkout instead of `npm install -g vlcurate@VERSION`: nothing is downloaded.
      VLCURATE: `${process.execPath} ${CLI}`,
      VLCURATE_EXPORT_OUT: join(dir, 'cluster', 'merged-wds'),
      VLCURATE_MAX_RUNNING: '2',
    };
    const submit = spawnSync('bash', [join(ROOT, 'examples/slurm/submit.sh'), join(dir, 'cluster', 'recipe.yaml'), String(PARTS), '--cpus-per-task=1'], { env, encoding: 'utf8', timeout: 30_000 });
    if (submit.status !== 0) throw new Error(`submit.sh failed (${submit.status ?? submit.signal}): ${submit.stderr}`);
    const ids = /^array=(\d+) merge=(\d+)$/m.exec(submit.stdout);
    if (!ids) throw new Error(`submit.sh printed no job ids: ${submit.stdout}`);
    jobs = { array: ids[1]!, merge: ids[2]! };
    requeuedAt = await requeueMidRun(`${jobs.array}_0`, join(dir, 'node-local', `run-s0of${PARTS}.db`));

    // The same recipe in one process, while Slurm runs the parts.
    single = await runCli(['build', join(dir, 'single', 'recipe.yaml'), '--progress', 'plain']);
  }, 300_000);

  afterAll(() => {
    if (clusterDir) spawnSync('bash', [join(ROOT, 'tools/slurm/stop-local-slurm.sh'), clusterDir], { timeout: 60_000 });
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 90_000);

  it('runs every array task and then the merge job to completion', async () => {
    const merge = await waitForJob(jobs.merge, 240_000);
    const array = await waitForJob(jobs.array, 10_000);
    expect(array.map((r) => r['ArrayTaskId']).sort()).toEqual(Array.from({ length: PARTS }, (_, i) => String(i)));
    expect(array.map((r) => r['JobState']), logs()).toEqual(Array(PARTS).fill('COMPLETED'));
    expect(array.map((r) => r['ArrayTaskThrottle'])).toContain('2'); // VLCURATE_MAX_RUNNING=2
    expect(merge.map((r) => r['JobState']), logs()).toEqual(['COMPLETED']);
    // The merge waited for the array: it depended on it and started after every part ended.
    expect(merge[0]!['Dependency']).toBe('(null)'); // satisfied dependencies are cleared
    const ended = Math.max(...array.map((r) => Date.parse(r['EndTime']!)));
    expect(Date.parse(merge[0]!['StartTime']!)).toBeGreaterThanOrEqual(ended);
    expect(single.code, single.stderr).toBe(0);
  }, 300_000);

  it('a part that fails (exit 2: a configuration error) cancels the merge instead of leaving it pending', async () => {
    mkdirSync(join(dir, 'broken'));
    writeFileSync(join(dir, 'broken', 'recipe.yaml'), stringify({ sources: [{ type: 'webdataset', paths: 'missing-*.tar' }], export: [{ type: 'nonsense' }] }));
    const submit = spawnSync('bash', [join(ROOT, 'examples/slurm/submit.sh'), join(dir, 'broken', 'recipe.yaml'), '2', '--cpus-per-task=1'], { env, encoding: 'utf8', timeout: 30_000 });
    expect(submit.status, submit.stderr).toBe(0);
    const [, array, merge] = /^array=(\d+) merge=(\d+)$/m.exec(submit.stdout)!;
    const parts = await waitForJob(array!, 120_000);
    expect(parts.map((r) => [r['JobState'], r['ExitCode']])).toEqual([['FAILED', '2:0'], ['FAILED', '2:0']]);
    const [m] = await waitForJob(merge!, 60_000);
    expect(m!['JobState']).toBe('CANCELLED');
    expect(readdirSync(join(dir, 'broken', 'slurm-logs')).filter((f) => f.startsWith('merge-'))).toEqual([]);
  }, 200_000);

  it('the part requeued mid-run (as on preemption) came back without its local database, resumed from its snapshot, and exported no sample twice', async () => {
    const task = showJob(`${jobs.array}_0`)[0]!;
    expect(task['Restarts']).toBe('1');
    expect(requeuedAt).toBeGreaterThanOrEqual(8);
    const log = readFileSync(join(dir, 'cluster', 'slurm-logs', `part-${jobs.array}_0.out`), 'utf8');
    expect(log).toMatch(/restart 0\)/);
    expect(log).toMatch(/restart 1\)/);
    expect(log).toContain(`run database restored from the snapshot ${join(dir, 'cluster', 'state')}`);
    const db = join(dir, 'cluster', 'state', `run-s0of${PARTS}.db`);
    const runs = rows(db, 'SELECT status FROM runs ORDER BY id').map((r) => r['status']);
    expect(runs).toHaveLength(2);
    expect(runs[1]).toBe('finished');
    expect(runs[0]).not.toBe('finished');
    // Part 0's shards hold each of its kept samples exactly once, across the kill.
    const members = (await readShardMembers(join(dir, 'cluster', 'wds'))).filter((m) => m.shard.includes(`-s0of${PARTS}-`));
    const shardKeys = members.filter((m) => m.member.endsWith('.json')).map((m) => m.member.split('.')[0]!);
    const kept = rows(db, "SELECT key FROM samples WHERE status = 'ok' ORDER BY key").map((r) => String(r['key']));
    expect(kept.length).toBeGreaterThan(0);
    expect([...shardKeys].sort()).toEqual(kept);
  });

  it('array task I built part I/N: its database holds only the samples of part I', () => {
    let total = 0;
    for (let i = 0; i < PARTS; i++) {
      const keys = rows(join(dir, 'cluster', 'state', `run-s${i}of${PARTS}.db`), SAMPLES).map((r) => String(r['key']));
      expect(keys.length).toBeGreaterThan(0);
      expect(keys.filter((k) => !inShard(k, { index: i, count: PARTS }))).toEqual([]);
      total += keys.length;
    }
    expect(total).toBe(COUNT);
  });

  it('the merged database holds every sample exactly once and equals the single-process run', () => {
    const merged = join(dir, 'cluster', 'state', 'run-merged.db');
    const one = rows(join(dir, 'single', 'state', 'run.db'), SAMPLES);
    const all = rows(merged, SAMPLES);
    expect(one).toHaveLength(COUNT);
    expect(new Set(all.map((r) => r['key'])).size).toBe(all.length);
    expect(all).toEqual(one);
    const kept = one.filter((r) => r['status'] === 'ok');
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(COUNT); // some dropped: the comparison covers both decisions
    expect(rows(merged, CAPTIONS)).toEqual(rows(join(dir, 'single', 'state', 'run.db'), CAPTIONS));
  });

  it('merge.sbatch submitted again (as after rerunning failed parts) continues the merged database and its export', async () => {
    const before = readFileSync(join(dir, 'cluster', 'merged-wds', 'manifest.json'), 'utf8');
    const again = spawnSync('sbatch', ['--parsable', `--chdir=${join(dir, 'cluster')}`, `--output=${join(dir, 'cluster', 'slurm-logs', 'merge-again.out')}`, join(ROOT, 'examples/slurm/merge.sbatch')], {
      env: { ...env, VLCURATE_RECIPE: join(dir, 'cluster', 'recipe.yaml'), VLCURATE_PARTS: String(PARTS) },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(again.status, again.stderr).toBe(0);
    const [job] = await waitForJob(again.stdout.trim(), 120_000);
    expect(job!['JobState'], logs()).toBe('COMPLETED');
    expect(readFileSync(join(dir, 'cluster', 'slurm-logs', 'merge-again.out'), 'utf8')).toMatch(/unchanged since merged/);
    expect(readFileSync(join(dir, 'cluster', 'merged-wds', 'manifest.json'), 'utf8')).toBe(before);
  }, 150_000);

  it('the merge job exported the merged run: every kept sample once', async () => {
    const keys = keysOf(await readShardMembers(join(dir, 'cluster', 'merged-wds')));
    const kept = rows(join(dir, 'single', 'state', 'run.db'), SAMPLES).filter((r) => r['status'] === 'ok').map((r) => r['key']);
    expect([...keys].sort()).toEqual(kept);
    expect(keys).toHaveLength(new Set(keys).size);
  });
});
