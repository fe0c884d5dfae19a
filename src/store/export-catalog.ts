/**
 * What the run database records about exports by name, for continuing an export as it was written
 * (`export/recorded-export.ts`) and for telling one export's files from another's in a shared folder
 * (`export/export-folder.ts`): where each export's shards were written and the settings a `vlcurate
 * export` recorded (`export_configs`). Settings come back as their stored JSON; the export code reads them.
 */
import type { Db } from './database.js';

export interface RecordedSettings {
  type: string;
  settingsJson: string;
}

/** The path of an export's highest-numbered recorded shard, or null when it has none. */
export function lastShardPath(db: Db, exportName: string): string | null {
  return (db.prepare('SELECT path FROM export_shards WHERE export_name = ? ORDER BY shard_index DESC LIMIT 1').pluck().get(exportName) as string | undefined) ?? null;
}

/** The path of an export's lowest-numbered recorded shard, or null when it has none. */
export function firstShardPath(db: Db, exportName: string): string | null {
  return (db.prepare('SELECT path FROM export_shards WHERE export_name = ? ORDER BY shard_index LIMIT 1').pluck().get(exportName) as string | undefined) ?? null;
}

/** The settings `vlcurate export` recorded for an export name, or null. */
export function recordedSettings(db: Db, exportName: string): RecordedSettings | null {
  return (
    (db.prepare('SELECT type, settings_json AS settingsJson FROM export_configs WHERE export_name = ?').get(exportName) as RecordedSettings | undefined) ?? null
  );
}

/** Names of every export with recorded shards, exported samples or recorded settings, sorted. */
export function recordedExportNames(db: Db): string[] {
  return db
    .prepare('SELECT export_name FROM exports UNION SELECT export_name FROM export_shards UNION SELECT export_name FROM export_configs ORDER BY 1')
    .pluck()
    .all() as string[];
}

/** The recorded shard paths of every export but `exportName` (each path once per export). */
export function otherExportsShards(db: Db, exportName: string): { name: string; path: string }[] {
  return db.prepare('SELECT DISTINCT export_name AS name, path FROM export_shards WHERE export_name != ?').all(exportName) as { name: string; path: string }[];
}

/** The recorded settings of every export but `exportName`. */
export function otherExportsSettings(db: Db, exportName: string): { name: string; settingsJson: string }[] {
  return db.prepare('SELECT export_name AS name, settings_json AS settingsJson FROM export_configs WHERE export_name != ?').all(exportName) as {
    name: string;
    settingsJson: string;
  }[];
}
