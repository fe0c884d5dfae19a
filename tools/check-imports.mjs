#!/usr/bin/env node
/**
 * The import graph of src/, checked: no cycle between files, and every import between folders goes in a
 * direction that tools/import-rules.json allows.
 *
 *     node tools/check-imports.mjs            # prints the problems; exit 1 when there are any
 *     node tools/check-imports.mjs --graph    # prints the folder graph (who imports whom, how many files)
 *
 * A folder is the first path segment under src/ (src/captioner/decoding/x.ts belongs to `captioner`).
 * The rules name, for each folder, the folders it may import; a folder the rules do not name is a problem,
 * so a new folder gets its place in the list when it is made. The list goes from the bottom up and a folder
 * may name only folders listed before it, so the rules themselves cannot allow a folder cycle.
 * Type-only imports count: a folder that knows another folder's types depends on it.
 *
 * Imports of files outside the root (src/cli importing datasets/) are left out.
 * Imports are read with TypeScript's own pre-processor (`ts.preProcessFile`: import/export declarations,
 * `import()` and `require()`), so a `from '...'` in a comment or a string is not taken for one.
 * tests/core/import-graph.test.ts runs this on src/ and on a small tree with a planted cycle.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SOURCE_FILE = /\.(ts|tsx|mts|js|mjs|cjs)$/;

/** Every source file under `root`, as paths relative to it with `/` separators. */
export function listSourceFiles(root) {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (SOURCE_FILE.test(entry.name) && !entry.name.endsWith('.d.ts')) files.push(relative(root, path).split(sep).join('/'));
    }
  };
  walk(root);
  return files.sort();
}

/** The file a relative specifier names: TypeScript's NodeNext spelling (`./x.js` for `x.ts`), or the file itself. */
function resolveSpecifier(root, from, specifier) {
  const base = join(dirname(join(root, from)), specifier);
  const stem = base.replace(/\.(js|jsx|mjs|cjs)$/, '');
  const candidates = [base, `${stem}.ts`, `${stem}.tsx`, `${stem}.mts`, `${stem}.cts`, join(base, 'index.ts')];
  for (const candidate of candidates) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return relative(root, candidate).split(sep).join('/');
  }
  return null;
}

/** File-level graph: each file to the files under `root` it imports (packages and node: modules left out). */
export function importGraph(root) {
  const graph = new Map();
  const unresolved = [];
  for (const file of listSourceFiles(root)) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    const targets = new Set();
    for (const { fileName } of info.importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const target = resolveSpecifier(root, file, fileName);
      // Files outside the root (src/ importing datasets/) are not part of its graph.
      if (target?.startsWith('../')) continue;
      if (target) targets.add(target);
      else unresolved.push({ file, specifier: fileName });
    }
    graph.set(file, [...targets].sort());
  }
  return { graph, unresolved };
}

/** The folder a file belongs to: its first path segment ('.' for a file directly under the root). */
export function folderOf(file) {
  const slash = file.indexOf('/');
  return slash < 0 ? '.' : file.slice(0, slash);
}

/** Strongly connected components of more than one node (or with a self-loop), each as one cycle path. */
export function findCycles(graph) {
  let counter = 0;
  const index = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  // Iterative Tarjan: src/ is small, but recursion depth should not depend on it.
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const to = edges[frame.next++];
        if (!index.has(to)) {
          index.set(to, counter);
          low.set(to, counter++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, next: 0 });
        } else if (onStack.has(to)) {
          low.set(frame.node, Math.min(low.get(frame.node), index.get(to)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent), low.get(frame.node)));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const members = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          members.push(member);
        } while (member !== frame.node);
        const selfLoop = (graph.get(frame.node) ?? []).includes(frame.node);
        if (members.length > 1 || selfLoop) components.push(members.sort());
      }
    }
  }
  return components.map((members) => ({ members, path: cyclePath(graph, members) }));
}

/** One concrete cycle through a component, shortest from its first member (breadth-first), closed. */
function cyclePath(graph, members) {
  const inside = new Set(members);
  const start = members[0];
  const previous = new Map();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const to of graph.get(node) ?? []) {
      if (!inside.has(to)) continue;
      if (to === start) {
        const path = [node];
        while (path[0] !== start) path.unshift(previous.get(path[0]));
        return [...path, start];
      }
      if (!previous.has(to)) {
        previous.set(to, node);
        queue.push(to);
      }
    }
  }
  return [start, start];
}

/** Folder-level graph: folder -> folder -> the file edges that make it (a folder's imports of itself left out). */
export function folderGraph(graph) {
  const folders = new Map();
  for (const [file, targets] of graph) {
    const from = folderOf(file);
    if (!folders.has(from)) folders.set(from, new Map());
    for (const target of targets) {
      const to = folderOf(target);
      if (to === from) continue;
      const edges = folders.get(from);
      if (!edges.has(to)) edges.set(to, []);
      edges.get(to).push(`${file} -> ${target}`);
    }
  }
  return folders;
}

/**
 * Reads and checks the rules: `{folders: {NAME: [folders NAME may import]}}`, listed from the bottom up.
 * A folder may name only folders listed before it, so the allowed directions can never form a cycle.
 */
export function loadRules(path) {
  const rules = JSON.parse(readFileSync(path, 'utf8'));
  const allowed = new Map(Object.entries(rules.folders ?? {}));
  const order = [...allowed.keys()];
  const problems = [];
  for (const [position, [folder, targets]] of [...allowed].entries()) {
    if (!Array.isArray(targets)) {
      problems.push(`rules: folders.${folder} must be a list of folder names, got ${JSON.stringify(targets)}`);
      continue;
    }
    for (const target of targets) {
      if (!allowed.has(target)) problems.push(`rules: folders.${folder} allows "${target}", which the rules do not name`);
      else if (order.indexOf(target) >= position) problems.push(`rules: folders.${folder} allows "${target}", which is not listed before it (the list goes from the bottom up)`);
    }
  }
  return { allowed, problems };
}

/** Everything wrong with the import graph under `root` against the rules at `rulesPath`. */
export function checkImports(root, rulesPath) {
  const { graph, unresolved } = importGraph(root);
  const { allowed, problems: ruleProblems } = loadRules(rulesPath);
  const cycles = findCycles(graph);
  const folders = folderGraph(graph);
  const unknownFolders = [...folders.keys()].filter((folder) => !allowed.has(folder)).sort();
  const violations = [];
  for (const [from, edges] of folders) {
    if (!allowed.has(from)) continue;
    for (const [to, files] of edges) {
      if (!allowed.get(from).includes(to)) violations.push({ from, to, files });
    }
  }
  violations.sort((a, b) => `${a.from}/${a.to}`.localeCompare(`${b.from}/${b.to}`));
  return { files: graph.size, cycles, violations, unknownFolders, unresolved, ruleProblems, folders };
}

/** The report a person reads: one block per problem, empty when there is none. */
export function formatProblems(result) {
  const lines = [];
  for (const problem of result.ruleProblems) lines.push(problem);
  for (const folder of result.unknownFolders) lines.push(`folder "${folder}" is not named in the rules: add it with the folders it may import`);
  for (const { file, specifier } of result.unresolved) lines.push(`${file}: import "${specifier}" names no file`);
  for (const { path } of result.cycles) lines.push(`file cycle: ${path.join(' -> ')}`);
  for (const { from, to, files } of result.violations) {
    lines.push(`folder ${from} may not import ${to} (${files.length} import${files.length === 1 ? '' : 's'}):`);
    for (const edge of files) lines.push(`  ${edge}`);
  }
  return lines;
}

function main() {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = resolve(here, '..', 'src');
  const result = checkImports(root, join(here, 'import-rules.json'));
  if (process.argv.includes('--graph')) {
    for (const [from, edges] of [...result.folders].sort(([a], [b]) => a.localeCompare(b))) {
      const targets = [...edges].sort(([a], [b]) => a.localeCompare(b)).map(([to, files]) => `${to} (${files.length})`);
      console.log(`${from} -> ${targets.join(', ') || '(nothing)'}`);
    }
  }
  const problems = formatProblems(result);
  if (problems.length === 0) {
    console.log(`${result.files} files: no file cycle, every folder import in an allowed direction`);
    return;
  }
  console.log(problems.join('\n'));
  process.exitCode = 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
