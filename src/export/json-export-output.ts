/**
 * Where a JSON export (LLaVA, Qwen) puts its files: a local folder, or a prefix in object storage. Either
 * way each file appears whole or not at all (a rename locally, one atomic PUT remotely), image files are
 * written before the records that name them are committed, and the part files, manifest and stats are
 * rewritten from the run database at the end, so they list exactly what the database holds.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StorageError } from '../core/object-store.js';
import { writeFileAtomically } from './durable-fs.js';
import { remoteKey, remoteNames, stagingFolder, uploadFile, type ExportTarget } from './export-target.js';
import { writeJsonArrayFile, type JsonArrayFileInfo } from './json-array-file.js';

export interface JsonExportOutput {
  /** The folder or URL, for messages and the recorded settings. */
  readonly where: string;
  /** Names (no '/') of the files directly in the folder or prefix. */
  names(): Promise<string[]>;
  prepare(): Promise<void>;
  putImage(name: string, bytes: Uint8Array): Promise<void>;
  deleteImage(name: string): Promise<void>;
  /** Whether an image write's failure concerns the whole output (disk full, no network) rather than one file. */
  stopsTheExport(err: unknown): boolean;
  writeArray(name: string, items: AsyncIterable<string>): Promise<JsonArrayFileInfo>;
  writeText(name: string, text: string): Promise<void>;
  delete(name: string): Promise<void>;
  /** Remove what was staged locally (remote outputs). */
  close(): Promise<void>;
}

/** Errors that every other file in the folder would meet too: they stop the export. */
const FOLDER_PROBLEMS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EACCES', 'EPERM', 'EMFILE', 'ENFILE', 'ENOMEM', 'ENOENT']);

export async function openJsonExportOutput(target: ExportTarget): Promise<JsonExportOutput> {
  if (target.kind === 'local') {
    const { dir } = target;
    const imagesDir = join(dir, 'images');
    return {
      where: dir,
      names: () => readdir(dir).catch(() => []),
      prepare: () => mkdir(imagesDir, { recursive: true }).then(() => undefined),
      async putImage(name, bytes) {
        const path = join(imagesDir, name);
        await writeFile(`${path}.tmp`, bytes);
        await rename(`${path}.tmp`, path);
      },
      deleteImage: (name) => rm(join(imagesDir, name), { force: true }),
      stopsTheExport(err) {
        const code = (err as NodeJS.ErrnoException | null)?.code;
        return code === undefined || FOLDER_PROBLEMS.has(code);
      },
      writeArray: (name, items) => writeJsonArrayFile(join(dir, name), items),
      writeText: (name, text) => writeFileAtomically(join(dir, name), text),
      delete: (name) => rm(join(dir, name), { force: true }),
      close: async () => undefined,
    };
  }
  const staging = await stagingFolder('json');
  return {
    where: target.url,
    names: async () => [...(await remoteNames(target))].sort(),
    prepare: async () => undefined,
    putImage: (name, bytes) => target.store.put(remoteKey(target, `images/${name}`), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
    deleteImage: (name) => target.store.delete(remoteKey(target, `images/${name}`)),
    // A refused PUT is the bucket's problem (credentials, network), not one image's.
    stopsTheExport: (err) => err instanceof StorageError || !(err instanceof Error),
    async writeArray(name, items) {
      const local = join(staging.dir, name);
      const info = await writeJsonArrayFile(local, items);
      await uploadFile(target, name, local, 'application/json');
      await rm(local, { force: true });
      return { ...info, path: `${target.url}/${name}` };
    },
    writeText: (name, text) => target.store.put(remoteKey(target, name), Buffer.from(text), { contentType: 'application/json' }),
    delete: (name) => target.store.delete(remoteKey(target, name)),
    close: () => staging.dispose(),
  };
}
