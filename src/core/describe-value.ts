/**
 * A value as an error message shows it: JSON (64-bit integers as numbers), `nothing` for a missing one,
 * cut to `max` characters so a huge cell or file does not flood the message.
 */
export function describeValue(value: unknown, max = 80): string {
  if (value === undefined) return 'nothing';
  // JSON would say null for these (a recipe's 1e400 is Infinity).
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  let json: string | undefined;
  try {
    json = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
  } catch {
    json = undefined;
  }
  const text = json ?? String(value);
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
