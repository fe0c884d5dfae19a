/**
 * Finds SQL outside src/store/ (issue 14: the store is the only place with SQL). Read from each file's
 * syntax tree (TypeScript's parser), so comments do not count and string literals are seen whole:
 *
 * - `sqlite-import`: an import (or require, or dynamic import) of `better-sqlite3`;
 * - `sql-text`: a string or template literal holding an SQL statement (`SELECT ... FROM`, `SELECT 1`,
 *   `INSERT INTO`, `UPDATE t SET`, `DELETE FROM`, `CREATE`/`DROP` `TABLE|INDEX|VIEW|TRIGGER`, `ALTER TABLE`,
 *   `PRAGMA name`), keywords in capitals as this code base writes SQL (English prose stays out);
 * - `db-call`: `prepare`, `exec`, `pragma`, `transaction`, `function`, `aggregate`, `table`, `backup`,
 *   `serialize` or `loadExtension` called on something named like a database handle (`db`, `store.db`,
 *   `database`, `sqlite`, `...Db`), whatever its argument.
 *
 * The one exception, `ALLOWED`: inspect's messages that show the user an example of the SQL they may pass
 * (`vlcurate inspect RUN.db sql "..."`), which the store runs (`store/user-query.ts`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import ts from 'typescript';

export interface SqlFinding {
  /** Relative to the root given, with `/`. */
  file: string;
  line: number;
  rule: 'sqlite-import' | 'sql-text' | 'db-call';
  text: string;
}

/** Literal texts allowed outside the store, per file (relative to src/). */
export const ALLOWED: readonly { file: string; text: string; why: string }[] = [
  {
    file: 'cli/commands/inspect.ts',
    text: 'inspect sql: expected a query after "sql", e.g. "SELECT COUNT(*) FROM samples"',
    why: "an example of the user's own query in inspect's usage message; the query runs in store/user-query.ts",
  },
];

const SQL_STATEMENT = new RegExp(
  [
    String.raw`\bSELECT\b[\s\S]*\bFROM\b`,
    String.raw`\bSELECT\s+\d`,
    String.raw`\bINSERT\s+(?:OR\s+[A-Z]+\s+)?INTO\b`,
    String.raw`\bUPDATE\s+[\w.]+\s+SET\b`,
    String.raw`\bDELETE\s+FROM\b`,
    String.raw`\b(?:CREATE|DROP)\s+(?:TEMP\s+|TEMPORARY\s+|UNIQUE\s+)?(?:TABLE|INDEX|VIEW|TRIGGER)\b`,
    String.raw`\bALTER\s+TABLE\b`,
    String.raw`\bPRAGMA\s+[a-z_]+`,
  ].join('|'),
);
const DB_METHODS = new Set(['prepare', 'exec', 'pragma', 'transaction', 'function', 'aggregate', 'table', 'backup', 'serialize', 'loadExtension']);
const DB_NAME = /^(?:db|database|sqlite|connection)$|Db$/i;
const SOURCE_FILE = /\.(?:ts|mts|cts|js|mjs|cjs)$/;

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return SOURCE_FILE.test(entry.name) ? [path] : [];
  });
}

/** A template's text with each substitution as `?`. */
function literalText(node: ts.Node): string | null {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isTemplateExpression(node)) return node.head.text + node.templateSpans.map((span) => `?${span.literal.text}`).join('');
  return null;
}

function receiverName(expression: ts.Expression): string | null {
  // `(db as Db)`, `db!`, `<Db>db`: the handle inside.
  if (ts.isParenthesizedExpression(expression) || ts.isAsExpression(expression) || ts.isNonNullExpression(expression) || ts.isTypeAssertionExpression(expression)) {
    return receiverName(expression.expression);
  }
  if (ts.isIdentifier(expression)) return expression.text;
  if (ts.isPropertyAccessExpression(expression)) return expression.name.text;
  return null;
}

/** Findings in the files under `root` (a src/ folder), its `store/` folder left out. */
export function sqlOutsideStore(root: string): SqlFinding[] {
  const findings: SqlFinding[] = [];
  for (const path of filesUnder(root)) {
    const file = relative(root, path).split(sep).join('/');
    if (file.startsWith('store/')) continue;
    const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
    const report = (node: ts.Node, rule: SqlFinding['rule'], text: string) =>
      findings.push({ file, line: source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1, rule, text: text.slice(0, 120) });
    const visit = (node: ts.Node): void => {
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        if (node.moduleSpecifier.text === 'better-sqlite3') report(node, 'sqlite-import', node.getText(source));
      } else if (ts.isCallExpression(node)) {
        const callee = node.expression;
        const first = node.arguments[0];
        const loads = callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');
        if (loads && first && ts.isStringLiteral(first) && first.text === 'better-sqlite3') report(node, 'sqlite-import', node.getText(source));
        if (ts.isPropertyAccessExpression(callee) && DB_METHODS.has(callee.name.text)) {
          const receiver = receiverName(callee.expression);
          if (receiver !== null && DB_NAME.test(receiver)) report(node, 'db-call', node.getText(source));
        }
      } else {
        const text = literalText(node);
        if (text !== null && SQL_STATEMENT.test(text) && !ALLOWED.some((a) => a.file === file && a.text === text)) report(node, 'sql-text', text);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return findings;
}
