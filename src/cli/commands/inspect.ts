import { escapeControlChars } from '../../core/control-chars.js';
import type { Command } from 'commander';
import { ConfigError } from '../../core/errors.js';
import { openDatabase } from '../../store/database.js';
import { listSamples, runStats, showSample, type SampleFilter } from '../../store/queries.js';
import { renderTable } from '../table.js';
import { inspectSql } from './inspect-sql.js';

/** All of inspect's output: stored messages, metadata and captions hold text from inputs, escaped here. */
function print(text: string): void {
  process.stdout.write(`${escapeControlChars(text)}\n`);
}

function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${flag}: expected a number, got "${value}"`);
  return n;
}

const ORDERS = ['key', 'itm', '-itm', 'itc', '-itc', 'updated'] as const;
const STATUSES = ['ok', 'failed', 'dropped'] as const;

function withDb<T>(path: string, fn: (db: ReturnType<typeof openDatabase>) => T): T {
  const db = openDatabase(path, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

type InspectOptions = Record<string, string | boolean | undefined>;

const VIEWS = ['stats', 'samples', 'show', 'sql'] as const;

/** `inspect RUN.db stats|samples|show KEY|sql QUERY`: the database comes first, as people type it. */
export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('look inside a run database (read-only): stats | samples | show KEY | sql "SELECT ..."')
    .argument('<db>', 'run database')
    .argument('<view>', VIEWS.join(' | '))
    .argument('[arg]', 'the sample key for show, the query for sql')
    .option('--status <status>', 'samples: ok | failed | dropped')
    .option('--reason <code>', 'samples: failure code or drop reason')
    .option('--origin <origin>', 'samples: has a caption of this origin (web | annotation | synthetic)')
    .option('--source <name>', 'samples: from this source')
    .option('--min-itm <p>', 'samples: best ITM score at least p')
    .option('--max-itc <x>', 'samples: best ITC score at most x')
    .option('--order <order>', `samples: ${ORDERS.join(' | ')}`, 'key')
    .option('--limit <n>', 'samples: at most n rows', '50')
    .option('--json', 'machine-readable output')
    .action((dbPath: string, view: string, arg: string | undefined, opts: InspectOptions) => {
      switch (view) {
        case 'stats':
          return inspectStats(dbPath, opts);
        case 'samples':
          return inspectSamples(dbPath, opts);
        case 'show':
          if (!arg) throw new ConfigError('inspect show: expected a sample key after "show"');
          return inspectShow(dbPath, arg, opts);
        case 'sql':
          if (!arg) throw new ConfigError('inspect sql: expected a query after "sql", e.g. "SELECT COUNT(*) FROM samples"');
          return inspectSql(dbPath, arg, opts.json === true);
        default:
          throw new ConfigError(`inspect: expected one of ${VIEWS.join(' | ')} after the database, got "${view}"`);
      }
    });
}

function inspectStats(dbPath: string, opts: InspectOptions): void {
  const stats = withDb(dbPath, runStats);
  if (opts.json) return print(JSON.stringify(stats, null, 2));
  const { samples } = stats;
  print(`samples  ${samples.total} total  ${samples.ok} ok  ${samples.failed} failed  ${samples.dropped} dropped`);
  const section = (title: string, counts: Record<string, number>) => {
    const entries = Object.entries(counts);
    if (entries.length) print(`\n${title}\n${renderTable(entries.map(([name, count]) => ({ name, count })))}`);
  };
  section('sources', stats.sources);
  const failureRows = Object.entries(stats.failuresByStage).flatMap(([stage, codes]) =>
    Object.entries(codes).map(([code, count]) => ({ stage, code, count })),
  );
  section('failures', stats.failures);
  if (failureRows.length) print(`\nfailures by stage\n${renderTable(failureRows)}`);
  section('drop reasons', stats.dropReasons);
  const captionRows = Object.entries(stats.captions.byOrigin).map(([origin, count]) => ({
    origin,
    count,
    ...(stats.captions.verdictsByOrigin[origin] ?? {}),
  }));
  if (captionRows.length) {
    const { total, kept, rejected, undecided } = stats.captions;
    captionRows.push({ origin: 'all', count: total, kept, rejected, undecided });
    print(`\ncaptions\n${renderTable(captionRows)}`);
  }
  section('caption issues', stats.captions.issues);
  const scoreRows = (['itc', 'itm'] as const).flatMap((name) => (stats.scores[name] ? [{ score: name, ...stats.scores[name] }] : []));
  if (scoreRows.length) print(`\nscores\n${renderTable(scoreRows)}`);
  const instructionRows = Object.entries(stats.instructions).map(([task, counts]) => ({ task, ...counts }));
  if (instructionRows.length) {
    const statuses = [...new Set(instructionRows.flatMap((r) => Object.keys(r).filter((k) => k !== 'task')))].sort();
    print(`\ninstructions\n${renderTable(instructionRows.map((r) => Object.fromEntries([['task', r.task], ...statuses.map((st) => [st, (r as Record<string, unknown>)[st] ?? 0])])))}`);
  }
  section('exported', stats.exported);
}

function inspectSamples(dbPath: string, opts: InspectOptions): void {
  const filter: SampleFilter = {};
  if (typeof opts.status === 'string') {
    if (!(STATUSES as readonly string[]).includes(opts.status)) {
      throw new ConfigError(`--status: expected one of ${STATUSES.join(' | ')}, got "${opts.status}"`);
    }
    filter.status = opts.status;
  }
  if (typeof opts.reason === 'string') filter.reason = opts.reason;
  if (typeof opts.origin === 'string') {
    const origins = ['web', 'annotation', 'synthetic'];
    if (!origins.includes(opts.origin)) throw new ConfigError(`--origin: expected one of ${origins.join(' | ')}, got "${opts.origin}"`);
    filter.origin = opts.origin;
  }
  if (typeof opts.source === 'string') filter.source = opts.source;
  if (typeof opts.minItm === 'string') filter.minItm = parseNumber('--min-itm', opts.minItm);
  if (typeof opts.maxItc === 'string') filter.maxItc = parseNumber('--max-itc', opts.maxItc);
  const order = String(opts.order);
  if (!(ORDERS as readonly string[]).includes(order)) throw new ConfigError(`--order: expected one of ${ORDERS.join(' | ')}, got "${order}"`);
  filter.order = order as SampleFilter['order'];
  const limit = parseNumber('--limit', String(opts.limit));
  if (!Number.isInteger(limit) || limit < 1) throw new ConfigError(`--limit: expected a whole number from 1 and up, got "${opts.limit}"`);
  filter.limit = limit;
  const rows = withDb(dbPath, (db) => listSamples(db, filter));
  if (opts.json) return print(JSON.stringify(rows, null, 2));
  print(renderTable(rows as unknown as Record<string, unknown>[], ['key', 'status', 'error_code', 'drop_reason', 'source', 'width', 'height', 'best_itc', 'best_itm', 'error_message']));
}

function inspectShow(dbPath: string, key: string, opts: InspectOptions): void {
  const detail = withDb(dbPath, (db) => showSample(db, key));
  if (!detail) throw new ConfigError(`show: no sample with key "${key}" in ${dbPath}`);
  if (opts.json) return print(JSON.stringify(detail, null, 2));
  const { sample } = detail;
  print(`${sample.key}  ${sample.status}${sample.error_code ? `  ${sample.error_code}: ${sample.error_message}` : ''}${sample.drop_reason ? `  dropped: ${sample.drop_reason}` : ''}`);
  print(`image    ${sample.image_ref}`);
  if (sample.width) print(`         ${sample.width}x${sample.height} ${sample.format}, ${sample.byte_length} bytes, orientation ${sample.orientation}, sha256 ${sample.sha256}`);
  print(`source   ${sample.source}`);
  const meta = JSON.stringify(sample.meta ?? {});
  if (meta !== '{}') print(`meta     ${meta.length > 400 ? `${meta.slice(0, 399)}…` : meta}`);
  print(`\ncaptions\n${renderTable(detail.captions, ['idx', 'origin', 'itc', 'itm', 'kept', 'reason', 'issue', 'text'], 80)}`);
  if (detail.boxes.length) print(`\nboxes\n${renderTable(detail.boxes, ['idx', 'label', 'x1', 'y1', 'x2', 'y2'])}`);
  if (detail.instructions.length) print(`\ninstructions\n${renderTable(detail.instructions, ['task', 'variant', 'status', 'reason'])}`);
  if (detail.exports.length) print(`\nexports\n${renderTable(detail.exports, ['export_name', 'shard_index', 'position', 'path'])}`);
}
