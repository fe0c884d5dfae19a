/**
 * The import graph of src/ has no file cycle, and every import between folders goes in a direction that
 * tools/import-rules.json allows (issue 14). The checker (tools/check-imports.mjs) is also fed small trees
 * with a planted cycle and a planted wrong direction, so a checker that finds nothing cannot pass. Each
 * folder's README.md states what the folder may import; that line must say what the rules say.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkImports, formatProblems, loadRules } from '../../tools/check-imports.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const RULES = join(ROOT, 'tools/import-rules.json');

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A temp folder holding `files` (path -> text) and `rules` as import-rules.json beside a src/ root. */
function tree(files: Record<string, string>, rules: Record<string, string[]>): { root: string; rules: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vlc-imports-'));
  made.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, 'src', path)), { recursive: true });
    writeFileSync(join(dir, 'src', path), text);
  }
  writeFileSync(join(dir, 'rules.json'), JSON.stringify({ folders: rules }));
  return { root: join(dir, 'src'), rules: join(dir, 'rules.json') };
}

describe('src/ import graph', () => {
  it('has no file cycle and no folder import against tools/import-rules.json', () => {
    const result = checkImports(join(ROOT, 'src'), RULES);
    // The checker saw the real tree: every folder of src/ and their imports.
    expect(result.files).toBeGreaterThan(150);
    expect(result.folders.get('cli')?.size).toBeGreaterThan(5);
    expect(formatProblems(result)).toEqual([]);
  });

  it("every folder has a README.md whose 'May import' line is the rules' list", () => {
    const folders = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    const { allowed } = loadRules(RULES);
    expect(folders.length).toBeGreaterThan(10);
    expect([...allowed.keys()].sort()).toEqual([...folders].sort());
    const stated = folders.map((folder) => {
      const readme = join(ROOT, 'src', folder, 'README.md');
      const line = existsSync(readme) ? /^\*\*May import:\*\* (.*)$/m.exec(readFileSync(readme, 'utf8'))?.[1] : undefined;
      return [folder, line === '(nothing in src/)' ? '' : line];
    });
    expect(stated).toEqual(folders.map((folder) => [folder, allowed.get(folder)!.join(', ')]));
  });

  it('the script exits 0 on src/ and says so', () => {
    const out = execFileSync(process.execPath, [join(ROOT, 'tools/check-imports.mjs')], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(/^\d+ files: no file cycle, every folder import in an allowed direction$/m);
  });
});

describe('tools/check-imports.mjs', () => {
  it('finds a file cycle through three files and names it, and the folder edge that breaks the rules', () => {
    const { root, rules } = tree(
      {
        'low/a.ts': "import { b } from '../high/b.js';\nexport const a = () => b;\n",
        'high/b.ts': "import type { C } from './c.js';\nexport const b = 1 as unknown as C;\n",
        'high/c.ts': "// import { nothing } from '../low/not-an-import.js';\nimport { a } from '../low/a.js';\nexport type C = ReturnType<typeof a>;\n",
        'high/d.ts': "import { a } from '../low/a.js';\nimport { readFileSync } from 'node:fs';\nexport const d = [a, readFileSync];\n",
      },
      { low: [], high: ['low'] },
    );
    const result = checkImports(root, rules);
    expect(result.files).toBe(4);
    expect(result.cycles).toHaveLength(1);
    expect(result.cycles[0]!.members).toEqual(['high/b.ts', 'high/c.ts', 'low/a.ts']);
    expect(result.cycles[0]!.path).toEqual(['high/b.ts', 'high/c.ts', 'low/a.ts', 'high/b.ts']);
    // The comment's `import ... from` is not an import: only a.ts -> b.ts breaks the direction.
    expect(result.violations).toEqual([{ from: 'low', to: 'high', files: ['low/a.ts -> high/b.ts'] }]);
    expect(result.unresolved).toEqual([]);
    expect(formatProblems(result)).toEqual([
      'file cycle: high/b.ts -> high/c.ts -> low/a.ts -> high/b.ts',
      'folder low may not import high (1 import):',
      '  low/a.ts -> high/b.ts',
    ]);
  });

  it('finds a file importing itself, a folder the rules do not name and an import of a missing file', () => {
    const { root, rules } = tree(
      {
        'core/self.ts': "export * from './self.js';\n",
        'extra/x.ts': "import { y } from './y.js';\nexport const x = y;\n",
      },
      { core: [] },
    );
    const result = checkImports(root, rules);
    expect(result.cycles.map((c) => c.path)).toEqual([['core/self.ts', 'core/self.ts']]);
    expect(result.unknownFolders).toEqual(['extra']);
    expect(result.unresolved).toEqual([{ file: 'extra/x.ts', specifier: './y.js' }]);
  });

  it('a clean tree has no problem', () => {
    const { root, rules } = tree(
      {
        'low/a.ts': 'export const a = 1;\n',
        'high/b.tsx': "import { a } from '../low/a.js';\nexport const b = a;\n",
        'high/c.ts': "export const c = import('./b.js');\n",
      },
      { low: [], high: ['low'] },
    );
    const result = checkImports(root, rules);
    expect(result.files).toBe(3);
    expect(formatProblems(result)).toEqual([]);
  });

  it('refuses rules where a folder allows one listed after it (the rules could hold a cycle)', () => {
    const { rules } = tree({}, { low: ['high'], high: ['low'] });
    expect(loadRules(rules).problems).toEqual(['rules: folders.low allows "high", which is not listed before it (the list goes from the bottom up)']);
  });
});
