/**
 * One folder, one export. Two exports writing into one folder end badly: a loader globbing `*.tar` reads
 * both exports' samples, `manifest.json` and `stats.json` are overwritten by whichever ran last, JSON exports
 * share `images/`, and `--fresh` of one removes the other's images. So before an export writes anything,
 * the folder is checked for another export's files and refused with what to do instead.
 *
 * Another export is recognised by what vlcurate itself writes: a manifest or stats file naming another
 * export (`manifest.json`, `manifest-sIofN.json`, `stats*.json`), shard files of another prefix
 * (`OTHER-000000.tar`, `OTHER-s0of2-000000.tar`, and their `.tmp`), JSON part files of another prefix
 * (`OTHER-mixed.json`, ...), and, in the run database, another export whose shards were recorded there.
 * The same export under `--shard I/N` (`NAME-sIofN-...`, `manifest-sIofN.json`) is its own. Files vlcurate
 * does not write (a user's `notes.tar`) are left alone.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import { escapeRegExp } from '../core/escape-regexp.js';
import type { ExportLedger } from '../store/stage-ports.js';

export interface ExportFolderClaim {
  /** The folder, absolute. */
  dir: string;
  /** The export's name in the run database. */
  exportName: string;
  /** Its file prefix (`prefix`, default the name). */
  prefix: string;
  /** The store, to find other exports recorded in this folder. */
  store?: ExportLedger;
}

/** `manifest.json`, `manifest-s0of2.json`, `stats.json`, `stats-s1of4.json`. */
const SUMMARY_FILE = /^(manifest|stats)(-s\d+of\d+)?\.json$/;
/** A shard file: `PREFIX-000000.tar` or `PREFIX-s0of2-000000.tar`, maybe `.tmp`; captures PREFIX. */
const SHARD_FILE = /^(.+?)(?:-s\d+of\d+)?-\d{6,}\.tar(?:\.tmp)?$/;
/** A JSON export's part file: `PREFIX-mixed.json`, `PREFIX-stage1-s0of2.json`; captures PREFIX. */
const PART_NAMES = 'mixed|imported|conversation|detail|reasoning|grounding|referring|stage1';
const PART_FILE = new RegExp(`^(.+?)-(?:${PART_NAMES})(?:-s\\d+of\\d+)?\\.json$`);

interface Foreign {
  /** The other export's name, or its file prefix when no manifest names it. */
  owner: string;
  files: string[];
}

function exportNamedIn(path: string): string | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as { export?: unknown };
    return typeof parsed.export === 'string' ? parsed.export : null;
  } catch {
    return null;
  }
}

/** Other exports' files in `dir`, by owner. */
export function foreignExportFiles(claim: ExportFolderClaim): Foreign[] {
  const { dir, exportName, prefix } = claim;
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') entries = [];
    else throw err;
  }
  const byOwner = new Map<string, string[]>();
  const add = (owner: string, file: string) => byOwner.set(owner, [...(byOwner.get(owner) ?? []), file]);
  const own = new RegExp(`^${escapeRegExp(prefix)}$`);
  for (const entry of entries) {
    if (SUMMARY_FILE.test(entry)) {
      const named = exportNamedIn(join(dir, entry));
      if (named !== null && named !== exportName) add(named, entry);
      continue;
    }
    const shard = SHARD_FILE.exec(entry) ?? PART_FILE.exec(entry);
    if (shard && !own.test(shard[1]!)) add(shard[1]!, entry);
  }
  if (claim.store) {
    const others = claim.store.otherExports(exportName);
    for (const { name, path } of others.shards) {
      if (resolve(dirname(path)) === resolve(dir) && !byOwner.has(name)) add(name, '(shards recorded in the run database)');
    }
    for (const { name, settingsJson } of others.settings) {
      const out = (JSON.parse(settingsJson) as { out?: unknown }).out;
      if (typeof out === 'string' && resolve(out) === resolve(dir) && !byOwner.has(name)) add(name, '(recorded in the run database)');
    }
  }
  return [...byOwner].map(([owner, files]) => ({ owner, files }));
}

/**
 * Files of export `exportName` itself in `dir`, of one `--shard` part (`part`: `''`, or `-sIofN`): its
 * manifest or stats file (naming it), its shard or JSON part files. With nothing in the run database
 * about the export, such files are another run database's (or one since removed), never this one's to
 * overwrite or delete.
 */
export function ownExportFiles(claim: ExportFolderClaim, part: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(claim.dir).sort();
  } catch {
    return [];
  }
  const { summary, files } = ownFilePatterns(claim.prefix, part);
  return entries.filter((entry) => (summary.test(entry) ? exportNamedIn(join(claim.dir, entry)) === claim.exportName : files.test(entry)));
}

/**
 * Files of export `exportName` in `dir` written by the parts of a `--shard I/N` build (`NAME-sIofN-...`,
 * `manifest-sIofN.json`): each part's run database's, never a whole run's (a merged database's, say), which
 * exporting there would put every sample in the folder a second time.
 */
export function partExportFiles(claim: ExportFolderClaim, names?: readonly string[]): string[] {
  let entries: string[];
  try {
    entries = names ? [...names].sort() : readdirSync(claim.dir).sort();
  } catch {
    return [];
  }
  const part = String.raw`-s\d+of\d+`;
  const summary = new RegExp(`^(manifest|stats)${part}\\.json$`);
  const files = new RegExp(`^${escapeRegExp(claim.prefix)}(?:${part}-\\d{6,}\\.tar(?:\\.tmp)?|-(?:${PART_NAMES})${part}\\.json)$`);
  // Listed names (object storage): a part's manifest is counted without reading which export it names.
  return entries.filter((entry) => (summary.test(entry) ? names !== undefined || exportNamedIn(join(claim.dir, entry)) === claim.exportName : files.test(entry)));
}

/** The names of one `--shard` part's manifest or stats file (`summary`) and of its shard or JSON part files. */
export function ownFilePatterns(prefix: string, part: string): { summary: RegExp; files: RegExp } {
  const p = escapeRegExp(part);
  return {
    summary: new RegExp(`^(manifest|stats)${p}\\.json$`),
    files: new RegExp(`^${escapeRegExp(prefix)}(?:${p}-\\d{6,}\\.tar|-(?:${PART_NAMES})${p}\\.json)$`),
  };
}

/** The first three names, and how many more: `a, b, c, and 4 more`. */
function someOf(files: readonly string[]): string {
  return `${files.slice(0, 3).join(', ')}${files.length > 3 ? `, and ${files.length - 3} more` : ''}`;
}

/**
 * The refusal for files of export `exportName` in `dir` that this run database did not write (`strangers`,
 * found by `ownExportFiles` or the shard recovery): `what` names them ("shards", "files").
 */
export function strangersError(exportName: string, dir: string, what: string, strangers: readonly string[]): ConfigError {
  return new ConfigError(
    `export "${exportName}": ${dir} holds ${what} of an export "${exportName}" that this run database did not write ` +
      `(${someOf(strangers)}): another run database's, or one that was removed. Give this export a folder of its own, or remove those files first`,
  );
}

/** Refuse to write a whole run's export `exportName` into a folder that holds its `--shard` parts' files. */
export function assertNoPartFiles(claim: ExportFolderClaim, names?: readonly string[]): void {
  const parts = partExportFiles(claim, names);
  if (parts.length === 0) return;
  throw new ConfigError(
    `export "${claim.exportName}": ${claim.dir} holds the files of export "${claim.exportName}" written by the parts of a --shard build ` +
      `(${someOf(parts)}); this database's export there would put each sample in that folder a second time. ` +
      `Give it a folder of its own (--name NAME --out DIR, e.g. ${claim.dir}-merged), or remove the parts' files first`,
  );
}

/** Refuse to write export `exportName` into a folder that holds another export's files. */
export function assertOwnFolder(claim: ExportFolderClaim, hint: { flags: boolean }): void {
  const foreign = foreignExportFiles(claim);
  if (foreign.length === 0) return;
  const listed = foreign
    .map(({ owner, files }) => `"${owner}" (${someOf(files)})`)
    .join('; ');
  const names = foreign.map((f) => f.owner);
  const elsewhere = join(dirname(claim.dir), claim.exportName);
  const todo = hint.flags
    ? `to continue export ${names.map((n) => `"${n}"`).join(' or ')} there, pass --name ${names[0]}; to write export "${claim.exportName}", give --out a folder of its own (e.g. ${elsewhere})`
    : `give export "${claim.exportName}" an \`out\` folder of its own (e.g. ${elsewhere})`;
  throw new ConfigError(
    `export "${claim.exportName}": ${claim.dir} holds the files of another export ${listed}; a loader reading that folder ` +
      `would read both and their manifest.json would overwrite each other. ${todo[0]!.toUpperCase()}${todo.slice(1)}, or remove the other export's files first`,
  );
}
