import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { existsSync } from 'node:fs';
import { openDatabase } from '../../store/database.js';
import { lockRunDatabase } from '../../store/run-lock.js';
import { FILTER_POLICIES, ITC_RANGE, ITM_RANGE, type FilterPolicy } from '../../filter/filter-options.js';
import type { ResolvedPolicy } from '../../filter/policy.js';
import { DEFAULT_POLICY, policyInForce } from '../../filter/policy-in-force.js';
import { refilterRun, type RefilterSummary } from '../../filter/refilter.js';
import { knownExports } from '../../export/recorded-export.js';
import { wantedInstructionsOfStored } from '../../synth/wanted-instructions.js';
import type { RefilterEntry } from '../../store/refilter-log.js';
import { scorePercentile } from '../../store/caption-verdicts.js';
import { latestRun } from '../../store/run-history.js';
import { isMergedDatabase } from '../../store/part-merge.js';
import type { Db } from '../../store/database.js';
import { EXIT_OK } from '../exit.js';

interface RefilterFlags {
  policy?: string;
  itcThreshold?: string;
  itmThreshold?: string;
  itcPercentile?: string;
  itmPercentile?: string;
  itcTopFraction?: string;
  itmTopFraction?: string;
  topK?: string;
  topKBy?: string;
  preferWeb?: boolean;
  dryRun?: boolean;
  json?: boolean;
}

function number(flag: string, value: string, lo: number, hi: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < lo || n > hi) throw new ConfigError(`${flag}: expected a number from ${lo} to ${hi}, got "${value}"`);
  return n;
}

/**
 * The policy in force (the latest refilter's, else the recipe's, else BLIP/LAION defaults) with the flags
 * laid over it; percentile flags resolve against the run's scores.
 */
export function policyFromFlags(db: Db, flags: RefilterFlags): ResolvedPolicy {
  const policy = { ...(policyInForce(db)?.policy ?? DEFAULT_POLICY) };
  if (flags.policy !== undefined) {
    if (!(FILTER_POLICIES as readonly string[]).includes(flags.policy)) {
      throw new ConfigError(`--policy: expected one of ${FILTER_POLICIES.join(' | ')}, got "${flags.policy}"`);
    }
    policy.policy = flags.policy as FilterPolicy;
  }
  for (const score of ['itc', 'itm'] as const) {
    const threshold = flags[`${score}Threshold`];
    const percentile = flags[`${score}Percentile`];
    const fraction = flags[`${score}TopFraction`];
    const given = [threshold, percentile, fraction].filter((v) => v !== undefined).length;
    if (given > 1) throw new ConfigError(`--${score}-threshold, --${score}-percentile, --${score}-top-fraction: give at most one`);
    let cut: number | null | undefined;
    const range = score === 'itc' ? ITC_RANGE : ITM_RANGE;
    if (threshold !== undefined) cut = number(`--${score}-threshold`, threshold, range.min, range.max);
    if (percentile !== undefined) cut = scorePercentile(db, score, number(`--${score}-percentile`, percentile, 0, 100));
    if (fraction !== undefined) cut = scorePercentile(db, score, 100 * (1 - number(`--${score}-top-fraction`, fraction, 0, 1)));
    if (cut !== undefined) policy[`${score}Threshold`] = cut ?? Number.POSITIVE_INFINITY;
  }
  if (flags.topK !== undefined) {
    const k = number('--top-k', flags.topK, 0, 1e6);
    if (!Number.isInteger(k)) throw new ConfigError(`--top-k: expected a whole number (0 turns top-k off), got "${flags.topK}"`);
    policy.topK = k === 0 ? null : k;
  }
  if (flags.topKBy !== undefined) {
    if (flags.topKBy !== 'itc' && flags.topKBy !== 'itm') throw new ConfigError(`--top-k-by: expected itc | itm, got "${flags.topKBy}"`);
    policy.topKBy = flags.topKBy;
  }
  if (flags.preferWeb !== undefined) policy.preferWeb = flags.preferWeb;
  return policy;
}

/**
 * What to run so the files follow the new decisions: each export the database knows, continued by name with
 * its recorded settings (its shards holding dropped samples are rewritten, new ones appended), and the
 * build when revived samples still lack the instruction samples the recipe asks for.
 */
function applyAdvice(db: Db, dbPath: string, summary: RefilterSummary, policy: ResolvedPolicy): string[] {
  if (summary.changed === 0) return ['no sample changed between kept and dropped: the exports already hold the kept samples'];
  const latest = latestRun(db)?.recipeJson;
  let recipeFile = 'RECIPE';
  try {
    const stored = latest ? (JSON.parse(latest) as { recipeFile?: unknown }) : {};
    if (typeof stored.recipeFile === 'string') recipeFile = stored.recipeFile;
  } catch {
    // An unreadable recipe: say RECIPE.
  }
  const exports = knownExports(db);
  const lines: string[] = [];
  if (exports.length === 0) {
    lines.push(`no export is recorded yet; \`vlcurate export ${dbPath} --format FORMAT --out DIR\` writes one with the kept samples`);
  } else {
    lines.push(`the exports still hold the earlier decisions; to make each hold exactly the kept samples, run:`);
    for (const name of exports) lines.push(`  vlcurate export ${dbPath} --name ${name}`);
  }
  if (summary.revived > 0 && wantedInstructionsOfStored(latest).length > 0 && isMergedDatabase(db)) {
    // A merged database is not built: its parts are, and the merge is made again from them.
    lines.push(
      `${summary.revived} revived sample(s) lack the instruction samples the recipe asks for (exports hold them back); to synthesize them, ` +
        `lay this refilter's cuts on each part as thresholds (\`vlcurate refilter PART.db${thresholdFlags(policy)}\`), ` +
        `run \`vlcurate build ${recipeFile} --shard I/N\` for each part, then \`vlcurate merge\` the parts into ${dbPath} again`,
    );
  } else if (summary.revived > 0 && wantedInstructionsOfStored(latest).length > 0) {
    lines.push(
      `${summary.revived} revived sample(s) lack the instruction samples the recipe asks for: \`vlcurate build ${recipeFile}\` ` +
        'synthesizes them and updates every export (until then exports hold them back)',
    );
  } else if (exports.length > 0) {
    lines.push(`(or \`vlcurate build ${recipeFile}\`, which updates the recipe's exports)`);
  }
  return lines;
}

/** The flags that decide as `policy` does with absolute thresholds (run-level cuts as the numbers they resolved to). */
function thresholdFlags(policy: ResolvedPolicy): string {
  const flags = [` --policy ${policy.policy}`];
  if (policy.itcThreshold !== null) flags.push(` --itc-threshold ${policy.itcThreshold}`);
  if (policy.itmThreshold !== null) flags.push(` --itm-threshold ${policy.itmThreshold}`);
  flags.push(` --top-k ${policy.topK ?? 0}`);
  if (policy.topK !== null) flags.push(` --top-k-by ${policy.topKBy}`);
  flags.push(policy.preferWeb ? ' --prefer-web' : ' --no-prefer-web');
  return flags.join('');
}

/** The decision flags as given, for the record (`--itm-threshold 0.7`): output flags left out. */
function givenFlags(flags: RefilterFlags): RefilterEntry['flags'] {
  const out: RefilterEntry['flags'] = {};
  for (const [name, value] of Object.entries(flags)) {
    if (name === 'dryRun' || name === 'json' || value === undefined) continue;
    out[`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`] = value as string | boolean;
  }
  return out;
}

export function registerRefilter(program: Command, setExit: (code: number) => void): void {
  program
    .command('refilter')
    .description('re-decide every caption from stored scores with new thresholds or policy (no inference)')
    .argument('<db>', 'run database')
    .option('--policy <policy>', FILTER_POLICIES.join(' | '))
    .option('--itc-threshold <x>', 'keep captions with ITC cosine >= x')
    .option('--itm-threshold <p>', 'keep captions with ITM p(match) >= p')
    .option('--itc-percentile <p>', "cut at the run's p-th ITC percentile")
    .option('--itm-percentile <p>', "cut at the run's p-th ITM percentile")
    .option('--itc-top-fraction <f>', 'keep the best fraction f of ITC scores')
    .option('--itm-top-fraction <f>', 'keep the best fraction f of ITM scores')
    .option('--top-k <k>', 'keep at most k captions per image (0: no limit)')
    .option('--top-k-by <score>', 'itc | itm')
    .option('--prefer-web', 'keep a passing web caption alone')
    .option('--no-prefer-web', 'keep passing web and synthetic captions alike')
    .option('--dry-run', 'report what would change, change nothing')
    .option('--json', 'machine-readable output')
    .action((dbPath: string, flags: RefilterFlags) => {
      const started = performance.now();
      const dryRun = flags.dryRun ?? false;
      // A dry run only reads, so it works while a build runs; a real one is a writer and takes the lock.
      if (!dryRun && !existsSync(dbPath)) throw new ConfigError(`run database "${dbPath}" does not exist`);
      const lock = dryRun ? null : lockRunDatabase(dbPath);
      let db: Db;
      try {
        db = openDatabase(dbPath, { readonly: dryRun });
      } catch (err) {
        lock?.release();
        throw err;
      }
      try {
        const policy = policyFromFlags(db, flags);
        const summary = refilterRun(db, policy, { dryRun: flags.dryRun ?? false, flags: givenFlags(flags) });
        const seconds = (performance.now() - started) / 1000;
        if (flags.json) {
          const apply = flags.dryRun ? [] : applyAdvice(db, dbPath, summary, policy);
          process.stdout.write(`${JSON.stringify({ policy, ...summary, dryRun: flags.dryRun ?? false, seconds, apply }, null, 2)}\n`);
        } else {
          const cut = (name: string, t: number | null) => (t === null ? '' : ` ${name} >= ${Math.round(t * 1000) / 1000}`);
          process.stdout.write(
            `policy ${policy.policy}:${cut('itc', policy.itcThreshold)}${cut('itm', policy.itmThreshold)}` +
              `${policy.topK ? `, top ${policy.topK} by ${policy.topKBy}` : ''}${policy.preferWeb ? ', prefer web' : ''}\n` +
              `${summary.samples} samples: ${summary.kept} kept, ${summary.dropped} dropped (${summary.changed} changed); ` +
              `captions ${summary.captionsKept} kept, ${summary.captionsRejected} rejected${flags.dryRun ? ' [dry run: nothing written]' : ''} in ${seconds.toFixed(2)}s\n` +
              (flags.dryRun ? '' : applyAdvice(db, dbPath, summary, policy).map((line) => `${line}\n`).join('')),
          );
        }
      } finally {
        db.close();
        lock?.release();
      }
      setExit(EXIT_OK);
    });
}
