import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | null = null;

/**
 * The folder of vlcurate's own package.json, found by walking up from this file: the same answer when run
 * from TypeScript sources (tests) and from the compiled `dist/` (the CLI), where the depth differs.
 * Bundled data (models/, prompts/) lives there.
 */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = import.meta.dirname;
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'vlcurate') return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find vlcurate's package.json above ${import.meta.dirname}`);
    dir = parent;
  }
}
