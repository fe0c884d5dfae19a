/** Render rows as an aligned text table; numbers right-aligned, long text cut to `maxWidth`. */
export function renderTable(rows: readonly Record<string, unknown>[], columns?: readonly string[], maxWidth = 60): string {
  if (rows.length === 0) return '(no rows)';
  const cols = columns ?? Object.keys(rows[0]!);
  const cell = (value: unknown): string => {
    if (value === null || value === undefined) return '';
    if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(4);
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    const flat = text.replace(/\s+/g, ' ');
    return flat.length > maxWidth ? `${flat.slice(0, maxWidth - 1)}…` : flat;
  };
  const cells = rows.map((row) => cols.map((c) => cell(row[c])));
  // A loop, not Math.max(...): spreading a column of 100k+ rows overflows the call stack.
  const widths = cols.map((c, i) => cells.reduce((width, r) => Math.max(width, r[i]!.length), c.length));
  const numeric = cols.map((c) => rows.every((row) => row[c] === null || row[c] === undefined || typeof row[c] === 'number'));
  const line = (values: string[]) =>
    values.map((v, i) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line([...cols]), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}
