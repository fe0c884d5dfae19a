/** Types of tools/check-imports.mjs, for the TypeScript test that imports it. */

export interface FileCycle {
  /** The files of one strongly connected component, sorted. */
  members: string[];
  /** One concrete cycle through them, closed (first file repeated at the end). */
  path: string[];
}

export interface FolderViolation {
  from: string;
  to: string;
  /** `FILE -> FILE` for each import that makes the edge. */
  files: string[];
}

export interface ImportCheck {
  files: number;
  cycles: FileCycle[];
  violations: FolderViolation[];
  unknownFolders: string[];
  unresolved: { file: string; specifier: string }[];
  ruleProblems: string[];
  folders: Map<string, Map<string, string[]>>;
}

export declare function listSourceFiles(root: string): string[];
export declare function importGraph(root: string): { graph: Map<string, string[]>; unresolved: { file: string; specifier: string }[] };
export declare function folderOf(file: string): string;
export declare function findCycles(graph: Map<string, string[]>): FileCycle[];
export declare function folderGraph(graph: Map<string, string[]>): Map<string, Map<string, string[]>>;
export declare function loadRules(path: string): { allowed: Map<string, string[]>; problems: string[] };
export declare function checkImports(root: string, rulesPath: string): ImportCheck;
export declare function formatProblems(result: ImportCheck): string[];
