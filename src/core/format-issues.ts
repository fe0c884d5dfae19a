import type { z } from 'zod';
import { describeValue } from './describe-value.js';

/** `sources[0].type` from a zod path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out.length === 0 ? String(part) : `.${String(part)}`;
  }
  return out || '(top level)';
}


function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node: unknown = root;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/**
 * One line per problem, each naming the field, the value received and what was expected:
 * `sources[0].type: expected one of "webdataset" | "coco", got "webdatset"`.
 */
export function formatIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.map((issue) => {
    const where = formatPath(issue.path);
    const got = describeValue(valueAt(input, issue.path));
    switch (issue.code) {
      case 'unrecognized_keys':
        return `${where}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling; see the recipe reference)`;
      case 'invalid_union': {
        if ('options' in issue && Array.isArray((issue as { options?: unknown[] }).options)) {
          const options = (issue as unknown as { options: unknown[] }).options;
          return `${where}: expected one of ${options.map((o) => JSON.stringify(o)).join(' | ')}, got ${got}`;
        }
        const expected = unionExpectation(issue);
        return expected ? `${where}: expected ${expected}, got ${got}` : withGot(`${where}: ${issue.message}`, got);
      }
      case 'invalid_type':
        return `${where}: expected ${issue.expected}, got ${got}`;
      case 'invalid_value':
        return `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${got}`;
      default:
        return withGot(`${where}: ${issue.message.replace(/^Invalid input: /, '')}`, got);
    }
  });
}

/** Custom messages may already say what they got; say it once. */
function withGot(message: string, got: string): string {
  return /\bgot\b/.test(message) ? message : `${message}, got ${got}`;
}

/** `string or array` from the branches of a union whose every branch failed on the value's type. */
function unionExpectation(issue: z.core.$ZodIssue): string | null {
  const branches = (issue as { errors?: z.core.$ZodIssue[][] }).errors;
  if (!branches) return null;
  const expected: string[] = [];
  for (const branch of branches) {
    const top = branch.find((i) => i.path.length === 0 && i.code === 'invalid_type');
    if (!top || top.code !== 'invalid_type') return null;
    if (!expected.includes(top.expected)) expected.push(top.expected);
  }
  return expected.length > 0 ? expected.join(' or ') : null;
}
