import { open, rename, writeFile } from 'node:fs/promises';

/** fsync a folder, so that renames and deletions in it survive an OS crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replace a file whole or not at all: write `PATH.tmp`, fsync it, rename it over `PATH`. */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text, { flush: true });
  await rename(tmp, path);
}
