import { basename, extname, isAbsolute, join, dirname, resolve } from 'node:path';
import type { LoadedRecipe } from '../config/recipe.js';
import type { PipelineEvent } from '../core/events.js';
import { runPipeline } from '../core/pipeline.js';
import type { ShardSpec } from '../core/shard.js';
import type { Stage } from '../core/stage.js';
import { StageChain } from '../core/stage-chain.js';
import type { Pair } from '../core/sample.js';
import type { WithInstructions } from '../core/conversation.js';
import { concat } from '../iter/merge.js';
import { openDatabase, type Db } from '../store/database.js';
import { lockRunDatabase } from '../store/run-lock.js';
import { NewPaths } from './new-paths.js';
import { runSummary } from '../store/queries.js';
import { createRecordStage } from './record-stage.js';
import { RunStore } from '../store/run-store.js';
import { InstructionStore } from '../store/instruction-store.js';
import { LlmCache } from '../store/llm-cache.js';
import { createResumeStage } from './resume-stage.js';
import { createSource } from '../sources/registry.js';
import type { SourceContext } from '../sources/source.js';
import { DEFAULT_STORAGE } from '../storage/storage-settings.js';
import { createDecodeStage } from '../decode/decode-stage.js';
import { createDedupStage } from '../decode/dedup-stage.js';
import { releasingPixels } from '../decode/release-pixels.js';
import { createReuseStage } from './reuse-stage.js';
import { folderFingerprint } from '../store/folder-fingerprint.js';
import { apiKeyOf } from '../backends/llm-client.js';
import { checkExport, createExport } from '../export/registry.js';
import { CaptionScorer } from '../filter/caption-scorer.js';
import { createFilterStage } from '../filter/filter-stage.js';
import { createSelectStage } from '../filter/select-stage.js';
import { needsRunLevelCuts, resolvePolicy } from '../filter/resolve-policy.js';
import type { FilterOptions } from '../filter/filter-options.js';
import { loadItcModel } from '../models/itc-model.js';
import { loadItmModel } from '../models/itm-model.js';
import { ConfigError, inField } from '../core/errors.js';
import { createSynthStage } from '../synth/synth-stage.js';
import { asScored, decideCaptions, type ResolvedPolicy } from '../filter/policy.js';
import { policyInForce } from '../filter/policy-in-force.js';
import { describeFlags, type RefilterEntry } from '../store/refilter-log.js';
import { wantedInstructions } from '../synth/wanted-instructions.js';
import type { DoneRule } from '../store/done-rule.js';
import type { DecodedPair, DedupedPair } from '../core/sample.js';
import type { Recipe } from '../config/recipe.js';
import { createCaptionerStage } from '../captioner/captioner-stage.js';
import type { LoadedCaptioner } from '../captioner/captioner-type.js';
import { captionerModelFolder, loadCaptioner } from '../captioner/registry.js';
import { resolveRecipeRuntime } from '../config/recipe-runtime.js';
import type { ResolvedRuntime } from '../core/runtime-settings.js';
import { sessionOptionsFor } from '../backends/onnx-session.js';
import { describePartShare, partShare } from '../backends/llm-part-share.js';
import { DEFAULT_SNAPSHOT_POLICY, PartState } from './part-state.js';

export interface BuildOptions {
  shard: ShardSpec;
  signal: AbortSignal;
  tickMs?: number;
  /** `--max-cost`: US dollars this run may spend on LLM requests (none when absent). */
  maxCostUsd?: number | null;
  /** Cores `auto` runtime settings divide (default: this machine's, `os.availableParallelism()`). */
  cores?: number;
  /** `--state`: where the part's state lives (overrides the recipe's `run.state`). */
  state?: string;
}

/** Resolve a recipe path against the recipe's folder. */
export function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** `run.db` -> `run-s1of4.db` when this process is one of several (`--shard I/N`). */
export function shardedDbPath(path: string, shard: ShardSpec): string {
  if (shard.count === 1) return path;
  const ext = extname(path);
  return join(dirname(path), `${basename(path, ext)}-s${shard.index}of${shard.count}${ext}`);
}

/**
 * `vlcurate build`: sources -> resume filter -> decode -> record -> exports, streaming, with one event
 * stream out. Re-running the same recipe resumes: finished samples are skipped before decoding, exports
 * never write a sample twice.
 */
export async function* runBuild(loaded: LoadedRecipe, options: BuildOptions): AsyncGenerator<PipelineEvent> {
  const { recipe, baseDir } = loaded;
  const dbPath = shardedDbPath(resolvePath(baseDir, recipe.run.db), options.shard);
  // A build stopped before its run starts (a configuration error) leaves nothing behind: neither the run
  // database when this build created it (nor, through the lock, its folders), nor a run row in one that was there.
  const created = NewPaths.before(dbPath);
  // One writer per run database, from before it is opened (migrations write) to after it is closed
  // (`store/run-lock.ts`): a second build stops here. Released, its files removed, on any error.
  const lock = lockRunDatabase(dbPath);
  const stateUrl = options.state ?? recipe.run.state;
  let partState: PartState | null = null;
  let db: Db;
  let restored: 'local' | 'restored' | 'none' = 'local';
  try {
    if (stateUrl !== undefined) {
      const field = options.state !== undefined ? '--state' : 'run.state';
      partState = PartState.open(stateUrl, field, options.state !== undefined ? process.cwd() : baseDir, dbPath, recipe.storage, { ...DEFAULT_SNAPSHOT_POLICY, ...recipe.run.snapshot });
      // On a fresh machine the part's database comes from its last snapshot.
      restored = await partState.restore();
    }
    db = openDatabase(dbPath);
  } catch (err) {
    created.remove();
    lock.release();
    throw err;
  }
  const cleanups: (() => unknown)[] = [];
  let forgetRun: (() => void) | null = null;
  let endRun: ((status: 'finished' | 'aborted' | 'failed') => void) | null = null;
  let started = false;
  let ended = false;
  try {
    const store = new RunStore(db);
    if (partState) {
      if (restored === 'restored') yield { type: 'log', level: 'info', message: `run database restored from the snapshot ${partState.url}` };
      partState.start(db);
    }
    const sources = recipe.sources.map((entry, i) => createSource(entry, i));
    const exportNames = recipe.export.map((e) => e.name);
    // What a recorded sample still needs (`store/done-rule.ts`): every export, and every instruction row
    // asked for.
    const doneRule: DoneRule = {
      exports: exportNames,
      synth: wantedInstructions(recipe.synth),
    };
    const ctx: SourceContext = {
      signal: options.signal,
      shard: options.shard,
      baseDir,
      downloadCacheDir: join(dirname(dbPath), 'downloads'),
      maxFileBytes: recipe.decode.maxBytes,
      storage: recipe.storage ?? DEFAULT_STORAGE,
    };
    // Sources that know keys before reading images skip finished ones without reading or downloading.
    const contextOf = (source: { name: string }): SourceContext => ({
      ...ctx,
      isDone: (keys) => store.doneKeys(keys, doneRule, source.name),
    });
    let total: number | null = 0;
    for (const [i, source] of sources.entries()) {
      const n = source.count ? await inField(`sources[${i}]`, () => source.count!(ctx)) : null;
      total = n === null || total === null ? null : total + n;
    }
    for (const [i, entry] of recipe.export.entries()) await inField(`export[${i}]`, () => checkExport(entry, baseDir, store));
    if (recipe.synth?.llm) apiKeyOf(recipe.synth.llm, 'synth.llm');
    // Device, threads and workers of each ONNX model, `auto` resolved for this machine's cores.
    const runtime = resolveRecipeRuntime(recipe, options.cores);
    const scorer = recipe.filter ? await loadScorer(recipe.filter, baseDir, runtime) : null;
    cleanups.push(() => scorer?.close());
    const captionerContext = { baseDir, llmCache: new LlmCache(db), maxCostUsd: options.maxCostUsd ?? null, onnxRuntime: runtime.models['captioner'] };
    // Under --shard I/N each part takes its share of the LLM limits (`backends/llm-part-share.ts`).
    const shared = withPartShares(recipe, options.shard);
    const captioner = shared.captioner
      ? await inField('captioner.model', () => loadCaptioner(shared.captioner!, captionerContext))
      : null;
    cleanups.push(() => captioner?.close());
    // Stored with the run: a retrained model in place of the old one must not count as the same settings.
    // The recipe's folder and file too: `vlcurate export --name` continues its exports with their settings
    // (relative paths resolve against the folder), and `refilter` names the recipe to build.
    const stored = { ...recipe, resolvedRuntime: runtime, modelFingerprints: modelFingerprints(recipe, baseDir), recipeDir: baseDir, recipeFile: loaded.path ?? null };
    const reuseRuns = recipe.filter || recipe.captioner ? store.runsWithSettings(capfiltSettings, capfiltSettings(stored)) : [];
    // The run is on record only once its configuration has loaded: a recipe error leaves no run row behind.
    const runId = store.startRun(JSON.stringify(stored), loaded.hash, `${options.shard.index}/${options.shard.count}`);
    forgetRun = () => store.forgetRun(runId);
    endRun = (status) => {
      store.finishRun(runId, status);
      ended = true;
    };
    store.forgetKeyCollisions();
    // After a refilter the build decides with its policy (not the recipe's), so it neither undoes the
    // refilter nor drops again what it revived (`filter/policy-in-force.ts`; this run's recipe counts).
    const inForce = recipe.filter ? policyInForce(db) : null;
    const refiltered = inForce?.source.kind === 'refilter' ? { policy: inForce.policy, note: describeRefilterInForce(inForce.source.refilter) } : null;
    // One decode per image serves the check and every model: the decode stage prepares each image's
    // pixels for the models' resize steps; the last model stage releases them.
    const preparers = [...(scorer?.preparers ?? []), ...(captioner?.preparer ? [captioner.preparer] : [])];
    const decoded = StageChain.from<Pair>().then(createResumeStage(store, doneRule)).then(createDecodeStage({ ...recipe.decode, concurrency: runtime.decodeConcurrency }, { preparers }));
    const deduped: StageChain<Pair, DedupedPair> = recipe.decode.dedup === 'exact' ? decoded.then(createDedupStage(store)) : decoded;
    const recorded = deduped
      .thenAll(reuseRuns.length > 0 ? [createReuseStage(store, reuseRuns)] : [])
      .thenAll(capfiltStages(recipe, scorer, captioner, refiltered, filterInFlight(runtime)))
      .then(createRecordStage<DedupedPair>(store, runId, recipe.run.commitEvery));
    // After record: instruction rows reference the samples table.
    const synthesized: StageChain<Pair, DedupedPair & Partial<WithInstructions>> = shared.synth
      ? recorded.then(
          createSynthStage(shared.synth, {
            instructions: new InstructionStore(db),
            llmCache: new LlmCache(db),
            runFolder: dirname(dbPath),
            runId,
            signal: options.signal,
            maxCostUsd: options.maxCostUsd ?? null,
            baseDir,
          }),
        )
      : recorded;
    const stages = synthesized.thenAll(recipe.export.map((entry) => createExport(entry, { store, baseDir, shard: options.shard, storage: recipe.storage, checkpoint: partState ? () => partState!.snapshot() : undefined })));
    started = true;
    const events = runPipeline({
      runId,
      source: concat<Pair>(sources.map((s, i) => inFieldStream(`sources[${i}]`, s.read(contextOf(s))))),
      stages,
      signal: options.signal,
      total,
      resumed: store.countDone(doneRule),
      tickMs: options.tickMs,
      summarize: () => runSummary(db, exportNames),
    });
    for await (const event of events) {
      partState?.observe(event);
      yield event;
      if (event.type === 'run-start') for (const note of shared.notes) yield { type: 'log', level: 'info', message: note };
    }
    endRun(options.signal.aborted ? 'aborted' : 'finished');
  } catch (err) {
    // A build that dies of an error says so; it must not stay 'running' until another build starts.
    if (started && !ended) endRun?.('failed');
    throw err;
  } finally {
    try {
      if (!started) forgetRun?.();
      // Stopped early by its consumer, without an error: the run did not finish.
      else if (!ended) endRun?.('aborted');
      for (const cleanup of cleanups) await cleanup();
      // The last snapshot, of the run as it ended (finished, failed, or stopped by a signal).
      if (partState && started) await partState.stop();
      db.close();
      if (!started) created.remove();
    } finally {
      lock.release();
    }
  }
}

/** The recipe's LLM sections with this part's share of their limits, and a line saying what each part takes. */
function withPartShares(recipe: Recipe, shard: ShardSpec): { captioner: Recipe['captioner']; synth: Recipe['synth']; notes: string[] } {
  const notes: string[] = [];
  let captioner = recipe.captioner;
  if (captioner?.type === 'openai') {
    const note = describePartShare('captioner', captioner, shard);
    if (note) notes.push(note);
    captioner = partShare(captioner, shard);
  }
  let synth = recipe.synth;
  if (synth?.llm) {
    const note = describePartShare('synth.llm', synth.llm, shard);
    if (note) notes.push(note);
    synth = { ...synth, llm: partShare(synth.llm, shard) };
  }
  return { captioner, synth, notes };
}

/**
 * The parts of a stored recipe that decide a sample's captions and scores: equal ones may reuse recorded work.
 * Where and how wide a model runs (`runtime`) does not decide them.
 */
function capfiltSettings(stored: Record<string, unknown>): string {
  const filter = stored['filter'] as { itc?: object; itm?: object } | undefined;
  const models = filter ? { ...filter, itc: withoutRuntime(filter.itc), itm: withoutRuntime(filter.itm) } : null;
  return JSON.stringify([stored['sources'], stored['decode'], models, withoutRuntime(stored['captioner']) ?? null, stored['modelFingerprints'] ?? null]);
}

function withoutRuntime(section: unknown): unknown {
  if (!section || typeof section !== 'object') return section;
  const { runtime: _runtime, ...rest } = section as Record<string, unknown>;
  return rest;
}

/** Filter batches in flight: one more than the filter models' most workers, so each worker stays busy. */
function filterInFlight(runtime: ResolvedRuntime): number {
  const workers = ['filter.itc', 'filter.itm'].map((name) => runtime.models[name]?.workers ?? 1);
  return Math.max(2, Math.max(...workers) + 1);
}

/** Each local model folder of the filter and captioner as the sizes and times of its files. */
function modelFingerprints(recipe: Recipe, baseDir: string): Record<string, string> {
  const folders: Record<string, string | undefined> = {
    itc: recipe.filter?.itc?.model,
    itm: recipe.filter?.itm?.model,
    captioner: recipe.captioner ? captionerModelFolder(recipe.captioner, baseDir) : undefined,
  };
  const out: Record<string, string> = {};
  for (const [role, folder] of Object.entries(folders)) if (folder) out[role] = folderFingerprint(resolvePath(baseDir, folder));
  return out;
}

/** A source's pairs; a configuration error met while reading (a missing file) names the recipe entry. */
async function* inFieldStream<T>(field: string, items: AsyncIterable<T>): AsyncGenerator<T> {
  // Errors downstream never come back through `yield`, so what this catches is the source's own.
  try {
    yield* items;
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${field}: ${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * CapFilt, streaming: score the web captions, caption the images (all, or those whose own captions
 * failed), score the new captions, then decide every caption with the policy.
 */
function capfiltStages(
  recipe: Recipe,
  scorer: CaptionScorer | null,
  captioner: LoadedCaptioner | null,
  refiltered: { policy: ResolvedPolicy; note: string } | null,
  inFlight: number,
): Stage<DecodedPair, DecodedPair>[] {
  const filter = recipe.filter;
  const policy = filter && scorer ? (refiltered?.policy ?? resolvePolicy(filter, null)) : null;
  const stages: Stage<DecodedPair, DecodedPair>[] = [];
  if (filter && scorer) stages.push(createFilterStage(scorer, { name: 'filter', batchSize: filter.batchSize, inFlight }));
  if (captioner) {
    const onlyFailed = policy !== null && filter?.recaption === 'web-failed';
    const wants = (sample: DecodedPair) => !onlyFailed || !decideCaptions(sample.captions.map(asScored), policy!).some((v) => v.kept);
    const captionerInFlight = captioner.inFlight === undefined ? {} : { inFlight: captioner.inFlight };
    stages.push(createCaptionerStage(captioner.captionBatch, { model: captioner.model, batchSize: captioner.batchSize, wants, ...captionerInFlight }));
    if (filter && scorer) stages.push(createFilterStage(scorer, { name: 'filter:synthetic', batchSize: filter.batchSize, inFlight }));
  }
  // The decode stage's prepared pixels are used up after the last model stage.
  if (stages.length > 0) stages.push(releasingPixels(stages.pop()!));
  if (policy) stages.push(createSelectStage(policy, 'select', refiltered?.note));
  return stages;
}

function describeRefilterInForce(r: RefilterEntry): string {
  return (
    `filter: the decisions of \`vlcurate refilter ${describeFlags(r.flags)}\` (${r.at}) are in force, since the recipe's filter ` +
    'decisions are unchanged since; new and resumed samples are decided by them (change the filter in the recipe to decide by it again)'
  );
}

/** Load the filter's models once per build; paths resolve against the recipe's folder. */
async function loadScorer(filter: FilterOptions, baseDir: string, runtime: ResolvedRuntime): Promise<CaptionScorer> {
  if (needsRunLevelCuts(filter)) {
    throw new ConfigError(
      'filter: percentile and topFraction cuts are computed over the whole run; build with a `threshold` and then run ' +
        '`vlcurate refilter RUN.db --itm-percentile P` (or --itc-top-fraction F) to re-decide from the stored scores',
    );
  }
  const { itc: itcOptions, itm: itmOptions } = filter;
  const session = (name: string) => sessionOptionsFor(runtime.models[name]!);
  const itc = itcOptions
    ? await inField('filter.itc.model', () => loadItcModel(resolvePath(baseDir, itcOptions.model), { variant: itcOptions.variant, ...session('filter.itc') }))
    : null;
  const itm = itmOptions
    ? await inField('filter.itm.model', () => loadItmModel(resolvePath(baseDir, itmOptions.model), { variant: itmOptions.variant, ...session('filter.itm') }))
    : null;
  return new CaptionScorer(itc, itm);
}
