import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * A short hash of a folder's files (relative path, size, modification time): cheap, without reading
 * model weights, and different as soon as a file is replaced. A missing folder hashes to "missing".
 */
export function folderFingerprint(folder: string): string {
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) {
        const { size, mtimeMs } = statSync(path);
        lines.push(`${relative(folder, path)}\t${size}\t${Math.round(mtimeMs)}`);
      }
    }
  };
  try {
    walk(folder);
  } catch {
    return 'missing';
  }
  return createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16);
}
