/**
 * Every `index.ts` barrel under src/ is imported from somewhere (src, tests, bench, datasets, tools);
 * a barrel nothing imports only tells a newcomer the wrong place to look (issue 14).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const git = (...args: string[]): string[] =>
  execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((line) => line !== '' && existsSync(resolve(ROOT, line)));

describe('index.ts barrels', () => {
  it('each one is imported by some file', () => {
    const barrels = git('ls-files', 'src/**/index.ts', 'src/*/index.ts');
    expect(barrels.length).toBeGreaterThan(0);
    const files = git('ls-files', '--', 'src', 'tests', 'bench', 'datasets', 'tools').filter((f) => /\.(ts|mts|js|mjs)$/.test(f));
    const importers = new Map(barrels.map((b) => [b, [] as string[]]));
    for (const file of files) {
      const text = readFileSync(resolve(ROOT, file), 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*['"](\.[^'"]*\/index\.js)['"]/g)) {
        const target = relative(ROOT, resolve(ROOT, dirname(file), m[1]!)).replace(/\.js$/, '.ts');
        importers.get(target)?.push(file);
      }
    }
    const unused = [...importers].filter(([, by]) => by.length === 0).map(([barrel]) => barrel);
    expect(unused).toEqual([]);
  });
});
