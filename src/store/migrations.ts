/**
 * Schema migrations, applied in order; `PRAGMA user_version` holds how many have run.
 * Never edit a shipped migration: add a new one.
 */
/**
 * Migration 2: what each export wrote per record (JSON exports rewrite their files from it) and the
 * settings an export name was created with. `IF NOT EXISTS`: databases made before this was a migration
 * already have the tables.
 */
export const EXPORT_RECORDS_SCHEMA = `
  CREATE TABLE IF NOT EXISTS export_configs (
    export_name TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    settings_json TEXT NOT NULL,     -- the options that decide what a record looks like
    created_at TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE IF NOT EXISTS export_records (
    export_name TEXT NOT NULL,
    record_id TEXT NOT NULL,         -- KEY-TASK-VARIANT (JSON exports), KEY (WebDataset)
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    part TEXT NOT NULL,              -- output file: stage1, mixed, conversation, ... ('' for WebDataset)
    seq INTEGER NOT NULL,            -- order of writing
    status TEXT NOT NULL,            -- ok | failed | dropped
    code TEXT,                       -- why failed or dropped
    message TEXT,
    record_json TEXT,                -- the exported record (JSON exports, status ok)
    tokens INTEGER,                  -- sequence length with visual tokens, before truncation (when tokenized)
    truncated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (export_name, record_id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS export_records_part ON export_records(export_name, part, seq);
`;

/**
 * How an instruction row's old one-string `reason` ("code: message") splits (migration 7, and the read-only
 * view of an older database). Lossless: `code: message` splits at the first ": " when what precedes it is a
 * code (letters, digits, `_`), so a message that itself holds ": " comes back whole; a failed row's bare code
 * keeps no message; anything else (an ok row's notes, a text of another shape) stays whole as the message.
 * Joined back by `reason` below (`instructionReasonText` in instruction-store.ts in TypeScript).
 * Part of migration 7: never edit.
 */
const IS_CODE = (text: string) => `(${text} <> '' AND ${text} NOT GLOB '*[^A-Za-z0-9_]*')`;
const PREFIX = `substr(reason, 1, instr(reason, ':') - 1)`;
const CODE_MESSAGE_SHAPE = `(status <> 'ok' AND instr(reason, ':') > 1 AND substr(reason, instr(reason, ':'), 2) = ': ' AND ${IS_CODE(PREFIX)})`;
const BARE_CODE_SHAPE = `(status <> 'ok' AND instr(reason, ':') = 0 AND ${IS_CODE('reason')})`;
export const CODE_OF_REASON = `CASE WHEN ${CODE_MESSAGE_SHAPE} THEN ${PREFIX} WHEN ${BARE_CODE_SHAPE} THEN reason END`;
export const MESSAGE_OF_REASON = `CASE WHEN ${CODE_MESSAGE_SHAPE} THEN substr(reason, instr(reason, ':') + 2) WHEN ${BARE_CODE_SHAPE} THEN NULL ELSE reason END`;
/** The one-string reason from `code` and `message`, as it was stored before migration 7. */
const REASON_OF_CODE_MESSAGE = `CASE WHEN code IS NULL THEN message WHEN message IS NULL THEN code ELSE code || ': ' || message END`;

export const MIGRATIONS: readonly string[] = [
  // 1: the whole first schema.
  `
  CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    recipe_json TEXT NOT NULL,
    recipe_hash TEXT NOT NULL,
    shard TEXT NOT NULL DEFAULT '0/1',
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL DEFAULT 'running' -- running | finished | aborted | failed | crashed
  );

  CREATE TABLE samples (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    image_ref TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    format TEXT,
    byte_length INTEGER,
    sha256 TEXT,
    orientation INTEGER,
    status TEXT NOT NULL,           -- ok | failed | dropped
    error_code TEXT,
    error_message TEXT,
    error_stage TEXT,
    drop_reason TEXT,
    meta_json TEXT NOT NULL DEFAULT '{}',
    run_id INTEGER NOT NULL REFERENCES runs(id),
    updated_at TEXT NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX samples_status ON samples(status, error_code);
  CREATE INDEX samples_sha256 ON samples(sha256);

  CREATE TABLE captions (
    id INTEGER PRIMARY KEY,
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    idx INTEGER NOT NULL,           -- position among the sample's captions
    origin TEXT NOT NULL,           -- web | annotation | synthetic
    text TEXT NOT NULL,
    issue TEXT,                     -- invalid_utf8, control_chars_removed, ...
    usable INTEGER NOT NULL DEFAULT 1,
    model TEXT,                     -- captioner that wrote a synthetic caption
    itc REAL,
    itm REAL,
    kept INTEGER,                   -- null until a filter decides
    reason TEXT,                    -- why kept or dropped
    UNIQUE (sample_key, idx)
  );
  CREATE INDEX captions_scores ON captions(kept, itm, itc);

  CREATE TABLE boxes (
    id INTEGER PRIMARY KEY,
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    label TEXT NOT NULL,
    x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
    original_json TEXT,             -- the box as the source gave it, with its frame
    UNIQUE (sample_key, idx)
  );

  CREATE TABLE instructions (
    id INTEGER PRIMARY KEY,
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    task TEXT NOT NULL,             -- conversation | detail | reasoning | stage1 | grounding | ...
    variant INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,           -- ok | rejected | failed
    reason TEXT,
    conversations_json TEXT,
    request_hash TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    UNIQUE (sample_key, task, variant)
  );

  CREATE TABLE llm_cache (
    request_hash TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
  ) WITHOUT ROWID;

  CREATE TABLE export_shards (
    export_name TEXT NOT NULL,
    shard_index INTEGER NOT NULL,
    path TEXT NOT NULL,
    sample_count INTEGER NOT NULL,
    byte_length INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (export_name, shard_index)
  ) WITHOUT ROWID;

  CREATE TABLE exports (
    export_name TEXT NOT NULL,
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    shard_index INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (export_name, sample_key)
  ) WITHOUT ROWID;
  CREATE INDEX exports_shard ON exports(export_name, shard_index);
  `,
  EXPORT_RECORDS_SCHEMA,
  // 3: score and origin indexes, so `inspect stats` (quantiles by ORDER BY ... OFFSET, counts by origin),
  // the report's histogram ranges, run-level percentile cuts and `samples --min-itm` read an index
  // instead of sorting every caption (bench/inspect.ts: 100k samples, 600k captions).
  `
  CREATE INDEX IF NOT EXISTS captions_itm ON captions(itm);
  CREATE INDEX IF NOT EXISTS captions_itc ON captions(itc);
  CREATE INDEX IF NOT EXISTS captions_origin ON captions(origin, kept);
  `,
  // 4: each refilter (see filter/refilter-log.ts), so builds, exports and the report know which decisions
  // are in force and where they came from.
  `
  CREATE TABLE IF NOT EXISTS refilters (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    run_id INTEGER,                  -- the latest run then: its recipe's filter is what the flags were laid over
    flags_json TEXT NOT NULL,        -- the flags given, as {"--itm-threshold": "0.7"}
    policy_json TEXT NOT NULL,       -- the resolved policy that decided (run-level cuts as numbers)
    samples INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    changed INTEGER NOT NULL
  );
  `,
  // 5: tasks that cannot apply (no caption for stage 1, no boxes to ground, no context for an LLM task)
  // were recorded as failed; they are `not_applicable`, which no summary counts as a failure.
  `
  UPDATE instructions SET status = 'not_applicable'
  WHERE status = 'failed' AND substr(reason, 1, instr(reason, ':') - 1) IN ('no_caption', 'no_boxes', 'no_context');
  `,
  // 6: samples an export left out on purpose (a caption export and a sample with no caption to train on;
  // a conversation export and a sample with no valid conversation), so a resume does not read, decode and
  // offer them to the export again and again: for that export they are handled.
  `
  CREATE TABLE IF NOT EXISTS export_left_out (
    export_name TEXT NOT NULL,
    sample_key TEXT NOT NULL REFERENCES samples(key) ON DELETE CASCADE,
    code TEXT NOT NULL,
    PRIMARY KEY (export_name, sample_key)
  ) WITHOUT ROWID;
  `,
  // 7: an instruction row's reason was one "code: message" string that every reader parsed back; it is two
  // columns now, `code` (why the row is not ok: leak_caption, budget_exhausted, ...; null on an ok row) and
  // `message` (what happened, or an ok row's notes). `reason` stays as a column computed from them, so a
  // query someone wrote against it (`inspect sql`) reads what it read before; nothing writes it.
  `
  ALTER TABLE instructions ADD COLUMN code TEXT;
  ALTER TABLE instructions ADD COLUMN message TEXT;
  UPDATE instructions SET code = ${CODE_OF_REASON}, message = ${MESSAGE_OF_REASON};
  ALTER TABLE instructions DROP COLUMN reason;
  ALTER TABLE instructions ADD COLUMN reason TEXT GENERATED ALWAYS AS (${REASON_OF_CODE_MESSAGE}) VIRTUAL;
  `,
  // 8: `vlcurate merge` (store/part-merge.ts): the parts a merged database was made of, and which part each
  // of its runs came from (null in a build's own database).
  `
  CREATE TABLE IF NOT EXISTS merged_parts (
    id INTEGER PRIMARY KEY,
    shard TEXT NOT NULL,             -- the part's --shard I/N
    first_run_at TEXT NOT NULL,      -- when the part's first run started: with shard, which part this is
    fingerprint TEXT NOT NULL,       -- its runs and counts when merged: a part that changed since merges again
    path TEXT NOT NULL,              -- the file it was read from
    samples INTEGER NOT NULL,
    merged_at TEXT NOT NULL,
    UNIQUE (shard, first_run_at)
  );
  ALTER TABLE runs ADD COLUMN part_id INTEGER REFERENCES merged_parts(id);
  `,
];

/**
 * What a database opened read-only (it cannot be migrated) and made before migration N needs so that
 * readers written for the current schema work: TEMP views, which SQLite looks up before the database's own
 * tables. Keyed by the migration whose tables they stand in for.
 */
export const READ_ONLY_VIEWS: Readonly<Record<number, string>> = {
  7: `
  CREATE TEMP VIEW instructions AS
  SELECT id, sample_key, task, variant, status, ${CODE_OF_REASON} AS code, ${MESSAGE_OF_REASON} AS message, reason,
         conversations_json, request_hash, attempts, created_at
  FROM main.instructions;
  `,
};
