/**
 * Whether two parts ran the same recipe where it decides what they hold, for `vlcurate merge`. Compared:
 * the sources, decode settings, filter, captioner and synthesis (prompts' model and tasks) and the model
 * folders' fingerprints. Not compared: where and how wide things ran (`runtime`, `batchSize`, the run and
 * export folders, the recipe's own folder), the LLM endpoint, key and limits, prices, and exports (a merged
 * database is exported anew).
 */

/** Settings that change where or how fast a part ran, never what it recorded. */
const NOT_DECIDING = new Set(['runtime', 'batchSize', 'baseURL', 'apiKeyEnv', 'rpm', 'tpm', 'concurrency', 'limitsPer', 'maxRetries', 'timeoutMs', 'price']);
const COMPARED = ['sources', 'decode', 'filter', 'captioner', 'synth', 'modelFingerprints'] as const;

/** The recipe sections that decide a part's samples, as plain data (a recipe that does not parse gives nothing). */
function deciding(recipeJson: string): Record<string, unknown> {
  let recipe: Record<string, unknown>;
  try {
    recipe = JSON.parse(recipeJson) as Record<string, unknown>;
  } catch {
    return {};
  }
  const out: Record<string, unknown> = {};
  for (const field of COMPARED) out[field] = strip(recipe[field]);
  return out;
}

function strip(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(strip);
  if (!value || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (!NOT_DECIDING.has(k)) out[k] = strip(v);
  return out;
}

/**
 * The fields where two stored recipes differ in what decides samples, as `path: A vs B` (at most `limit`),
 * empty when they agree.
 */
export function recipeDifferences(a: string, b: string, limit = 10): string[] {
  const out: string[] = [];
  walk('', deciding(a), deciding(b), out);
  return out.slice(0, limit).concat(out.length > limit ? [`... and ${out.length - limit} more`] : []);
}

function walk(path: string, a: unknown, b: unknown, out: string[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const objects = a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b);
  if (!objects) {
    out.push(`${path || '(recipe)'}: ${show(a)} vs ${show(b)}`);
    return;
  }
  const keys = [...new Set([...Object.keys(a as object), ...Object.keys(b as object)])].sort();
  for (const key of keys) {
    const child = Array.isArray(a) ? `${path}[${key}]` : path ? `${path}.${key}` : key;
    walk(child, (a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], out);
  }
}

function show(value: unknown): string {
  if (value === undefined) return '(not set)';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}
