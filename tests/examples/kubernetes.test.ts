/**
 * examples/kubernetes/: the manifests are parsed (yaml) and their wiring checked, and the shell each
 * container runs is run for real with stand-ins for `npm` and `vlcurate` on PATH (what Kubernetes would do:
 * expand `$(VAR)` from the container's env, set JOB_COMPLETION_INDEX, run `command` + `args`). run.sh runs
 * against a stand-in `kubectl` to check that the merge Job is applied only after the parts Job is Complete.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseRecipe } from '../../src/config/recipe.js';

const EXAMPLE = resolve(import.meta.dirname, '../../examples/kubernetes');

interface EnvVar { name: string; value?: string; valueFrom?: unknown }
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  resources?: Record<string, Record<string, unknown>>;
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

const files = readdirSync(EXAMPLE).filter((f) => f.endsWith('.yaml')).sort();
const manifests: Manifest[] = files.flatMap((f) =>
  parseAllDocuments(readFileSync(join(EXAMPLE, f), 'utf8')).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJSON() as Manifest;
  }),
);
const jobs = manifests.filter((m) => m.kind === 'Job');
const partsJob = jobs.find((j) => j.spec.completionMode === 'Indexed')!;
const mergeJob = jobs.find((j) => j !== partsJob)!;
const containerOf = (job: Manifest): Container => job.spec.template.spec.containers[0];
const envOf = (c: Container) => Object.fromEntries((c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));

let bin: string;
let calls: string;

/** A stand-in command on PATH that appends its argv (one line) to CALLS and exits with $STUB_EXIT_<name>. */
function stub(name: string, extra = ''): void {
  const path = join(bin, name);
  writeFileSync(path, `#!/bin/sh\necho "${name} $*" >> "$CALLS"\n${extra}\nexit "\${STUB_EXIT_${name}:-0}"\n`);
  chmodSync(path, 0o755);
}

/** Kubernetes' `$(VAR)` expansion in command and args: defined names are replaced, `$$` is a literal `$`. */
function expandKubernetes(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name?: string) =>
    whole === '$$' ? '$' : name !== undefined && name in env ? env[name]! : whole,
  );
}

/** Runs a container's command + args as the kubelet would, with the stand-ins first on PATH. */
function runContainer(c: Container, extraEnv: Record<string, string>, stubExit: Record<string, number> = {}) {
  writeFileSync(calls, '');
  const env = { ...envOf(c), ...extraEnv };
  const argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => expandKubernetes(a, env));
  const result = spawnSync(argv[0]!, argv.slice(1), {
    env: {
      PATH: `${bin}:/usr/bin:/bin`,
      CALLS: calls,
      ...env,
      ...Object.fromEntries(Object.entries(stubExit).map(([k, v]) => [`STUB_EXIT_${k}`, String(v)])),
    },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, calls: readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean), stderr: result.stderr };
}

beforeAll(() => {
  bin = mkdtempSync(join(tmpdir(), 'vlc-k8s-'));
  calls = join(bin, 'calls.txt');
  stub('npm');
  stub('vlcurate');
  stub('cp');
  stub('mv');
});
afterAll(() => rmSync(bin, { recursive: true, force: true }));

describe('examples/kubernetes', () => {
  it('has an Indexed Job for the parts and a separate merge Job', () => {
    expect(jobs).toHaveLength(2);
    expect(partsJob).toBeDefined();
    expect(mergeJob.spec.completionMode ?? 'NonIndexed').toBe('NonIndexed');
    const n = partsJob.spec.completions;
    expect(Number.isInteger(n) && n > 1).toBe(true);
    expect(partsJob.spec.parallelism).toBeGreaterThanOrEqual(1);
    expect(partsJob.spec.parallelism).toBeLessThanOrEqual(n);
    expect(partsJob.spec.template.spec.restartPolicy).toBe('Never');
  });

  it('wires JOB_COMPLETION_INDEX to --shard I/N with N = completions, for every index', () => {
    const c = containerOf(partsJob);
    const n: number = partsJob.spec.completions;
    // Kubernetes sets the index; the manifest must not.
    expect((c.env ?? []).map((e) => e.name)).not.toContain('JOB_COMPLETION_INDEX');
    for (let i = 0; i < n; i++) {
      const run = runContainer(c, { JOB_COMPLETION_INDEX: String(i) });
      expect(run.code, run.stderr).toBe(0);
      const builds = run.calls.filter((l) => l.startsWith('vlcurate build'));
      expect(builds).toEqual([`vlcurate build /config/recipe.yaml --shard ${i}/${n} --progress plain`]);
    }
  });

  it('installs one pinned vlcurate version from npm in node:20, the same in both Jobs', () => {
    const versions = new Set<string>();
    for (const job of [partsJob, mergeJob]) {
      const c = containerOf(job);
      expect(c.image).toMatch(/^node:20\b/);
      const run = runContainer(c, { JOB_COMPLETION_INDEX: '0' });
      const install = run.calls.find((l) => l.startsWith('npm '))!;
      const spec = /\bvlcurate@(\S+)/.exec(install)?.[1];
      expect(install).toMatch(/^npm install (--global|-g)\b/);
      expect(spec).toMatch(/^\d+\.\d+\.\d+$/);
      versions.add(spec!);
      // Installed before vlcurate runs.
      expect(run.calls.findIndex((l) => l.startsWith('npm '))).toBeLessThan(run.calls.findIndex((l) => l.startsWith('vlcurate ')));
    }
    expect(versions.size).toBe(1);
  });

  it('a part that finished with failed samples (exit 1) succeeds; a configuration error (exit 2) fails the index without retries', () => {
    const c = containerOf(partsJob);
    expect(runContainer(c, { JOB_COMPLETION_INDEX: '1' }, { vlcurate: 1 }).code).toBe(0);
    expect(runContainer(c, { JOB_COMPLETION_INDEX: '1' }, { vlcurate: 2 }).code).toBe(2);
    expect(runContainer(c, { JOB_COMPLETION_INDEX: '1' }, { npm: 1 }).code).not.toBe(0);
    const rule = partsJob.spec.podFailurePolicy.rules.find((r: any) => r.onExitCodes);
    expect(rule).toEqual({ action: 'FailIndex', onExitCodes: { containerName: c.name, operator: 'In', values: [2] } });
    expect(partsJob.spec.backoffLimitPerIndex).toBeGreaterThanOrEqual(1);
  });

  it('the merge Job copies exactly the N snapshots the parts write to its own disk, merges and exports there', () => {
    const recipeMap = manifests.find((m) => m.kind === 'ConfigMap' && m.data?.['recipe.yaml'])!;
    const recipe = parse(recipeMap.data!['recipe.yaml']!) as { run: { db: string; state: string } };
    // A recipe vlcurate accepts (fields, values; the files it names live in the cluster).
    expect(parseRecipe(recipe, 'recipe-configmap.yaml', '/config').recipe.sources[0]!.type).toBe('webdataset');
    const n: number = partsJob.spec.completions;
    // Part I snapshots its database (run-sIofN.db, after run.db's name) into run.state.
    const name = (i: number) => `${recipe.run.db.split('/').pop()!.replace(/\.db$/, '')}-s${i}of${n}.db`;
    const snapshots = Array.from({ length: n }, (_, i) => `${recipe.run.state.replace(/\/$/, '')}/${name(i)}`);
    const run = runContainer(containerOf(mergeJob), {});
    expect(run.code, run.stderr).toBe(0);
    expect(run.calls.filter((l) => l.startsWith('cp ') && l.endsWith(' /scratch/'))).toEqual(snapshots.map((p) => `cp ${p} /scratch/`));
    const local = Array.from({ length: n }, (_, i) => `/scratch/${name(i)}`);
    expect(run.calls.filter((l) => l.startsWith('vlcurate '))).toEqual([
      `vlcurate merge --out /scratch/merged.db ${local.join(' ')}`,
      'vlcurate inspect /scratch/merged.db stats',
      expect.stringMatching(/^vlcurate export \/scratch\/merged\.db --format webdataset --out s3:\/\//),
    ]);
    // A merged database from an earlier run is continued (merge is incremental; its export goes on).
    expect(containerOf(mergeJob).args!.join('\n')).toContain('if [ -f /work/state/run-merged.db ]; then cp /work/state/run-merged.db /scratch/merged.db; fi');
    // The merged database reaches the shared volume whole, after the export wrote its ledger.
    expect(run.calls.slice(-2)).toEqual(['cp /scratch/merged.db /work/state/run-merged.db.tmp', 'mv /work/state/run-merged.db.tmp /work/state/run-merged.db']);
    // SQLite stays on the pods' own disks: run.db (parts) and the merge's database are on the emptyDir.
    const mountOf = (job: Manifest, path: string) => containerOf(job).volumeMounts!.find((m) => path.startsWith(`${m.mountPath}/`))!.name;
    const volumeOf = (job: Manifest, name: string) => (job.spec.template.spec.volumes as { name: string; emptyDir?: object }[]).find((v) => v.name === name)!;
    expect(volumeOf(partsJob, mountOf(partsJob, recipe.run.db)).emptyDir).toBeDefined();
    expect(volumeOf(mergeJob, mountOf(mergeJob, '/scratch/merged.db')).emptyDir).toBeDefined();
    expect(volumeOf(partsJob, mountOf(partsJob, recipe.run.state)).emptyDir).toBeUndefined();
    // The recipe is mounted where the parts read it, and both Jobs mount the volume holding the databases.
    const volumes = (job: Manifest) => job.spec.template.spec.volumes as { name: string; configMap?: { name: string }; persistentVolumeClaim?: { claimName: string } }[];
    expect(volumes(partsJob).some((v) => v.configMap?.name === recipeMap.metadata.name)).toBe(true);
    const claim = (job: Manifest) => volumes(job).find((v) => v.persistentVolumeClaim)!.persistentVolumeClaim!.claimName;
    expect(claim(mergeJob)).toBe(claim(partsJob));
    const pvc = manifests.find((m) => m.kind === 'PersistentVolumeClaim' && m.metadata.name === claim(partsJob))!;
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
  });

  it('run.sh applies the merge Job only after the parts Job is Complete, and never after it Failed', () => {
    const progression = (states: string[]) => {
      // The stand-in kubectl answers `get job/...` with the next state in the list.
      const statesFile = join(bin, 'states');
      writeFileSync(statesFile, states.join('\n') + '\n');
      stub('kubectl', `case "$1" in get) head -n 1 "${statesFile}"; sed -i 1d "${statesFile}";; esac`);
      stub('sleep');
      writeFileSync(calls, '');
      const result = spawnSync('bash', [join(EXAMPLE, 'run.sh')], { env: { PATH: `${bin}:/usr/bin:/bin`, CALLS: calls }, encoding: 'utf8', timeout: 20_000 });
      return { code: result.status, calls: readFileSync(calls, 'utf8').trim().split('\n').filter((l) => l.startsWith('kubectl')) };
    };
    const name = partsJob.metadata.name;
    const ok = progression(['', 'SuccessCriteriaMet ', 'SuccessCriteriaMet Complete ']);
    expect(ok.code).toBe(0);
    const applyParts = ok.calls.findIndex((l) => l.includes('apply') && l.includes('parts-job.yaml'));
    const lastPoll = ok.calls.map((l, i) => (l.startsWith(`kubectl get job/${name}`) ? i : -1)).filter((i) => i >= 0);
    const applyMerge = ok.calls.findIndex((l) => l.includes('apply') && l.includes('merge-job.yaml'));
    expect(applyParts).toBeGreaterThanOrEqual(0);
    expect(lastPoll).toHaveLength(3);
    expect(applyMerge).toBeGreaterThan(lastPoll[2]!);
    expect(ok.calls.slice(lastPoll[2]!, applyMerge).some((l) => l === `kubectl wait --for=condition=complete job/${name} --timeout=60s`)).toBe(true);

    const failed = progression(['', 'FailureTarget Failed ']);
    expect(failed.code).toBe(1);
    expect(failed.calls.some((l) => l.includes('merge-job.yaml'))).toBe(false);
  });

  it('takes S3 credentials from a Secret and holds no secret value anywhere', () => {
    for (const job of jobs) {
      const c = containerOf(job);
      expect(c.envFrom?.map((e) => e.secretRef?.name)).toContain('vlcurate-s3');
      const plain = (c.env ?? []).filter((e) => /SECRET|PASSWORD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE/i.test(e.name) && e.value !== undefined);
      expect(plain).toEqual([]);
    }
    // No Secret object with data is shipped (it is created with kubectl create secret, as the comment says).
    expect(manifests.filter((m) => m.kind === 'Secret')).toEqual([]);
    for (const f of readdirSync(EXAMPLE)) {
      const text = readFileSync(join(EXAMPLE, f), 'utf8');
      expect(text).not.toMatch(/\bAKIA[0-9A-Z]{16}\b/);
      // The kubectl create secret comment names the keys with "..." for their values; nothing else gives one.
      for (const m of text.matchAll(/(?:AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN)\s*[=:]\s*([^\s\]]+)/gi)) expect(m[1]).toBe('...');
    }
    expect(readFileSync(join(EXAMPLE, 'parts-job.yaml'), 'utf8')).toMatch(/kubectl create secret generic vlcurate-s3/);
  });

  it('offers a GPU per part through resources.limits nvidia.com/gpu (commented: optional)', () => {
    expect(containerOf(partsJob).resources?.['limits']).toBeDefined();
    expect(readFileSync(join(EXAMPLE, 'parts-job.yaml'), 'utf8')).toMatch(/limits:[\s\S]*#\s*nvidia\.com\/gpu: 1/);
  });
});
