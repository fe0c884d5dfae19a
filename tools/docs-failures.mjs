// Writes the README failure-code table from the registry (src/core/failure-codes.ts, built to dist/ first:
// `npm run docs:failures` builds, then runs this). tests/core/failure-codes.test.ts checks the README agrees.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { failureCodeTable } from '../dist/src/core/failure-codes.js';

const readme = resolve(import.meta.dirname, '../README.md');
const text = readFileSync(readme, 'utf8');
const start = /<!-- failure-codes:start[^>]*-->\n/.exec(text);
const end = text.indexOf('<!-- failure-codes:end -->');
if (start === null || end < start.index) {
  console.error(`${readme}: expected the markers <!-- failure-codes:start ... --> and <!-- failure-codes:end -->`);
  process.exit(1);
}
const from = start.index + start[0].length;
const updated = `${text.slice(0, from)}${failureCodeTable()}\n${text.slice(end)}`;
if (updated !== text) writeFileSync(readme, updated);
console.log(updated === text ? 'README.md failure codes: up to date' : 'README.md failure codes: rewritten');
