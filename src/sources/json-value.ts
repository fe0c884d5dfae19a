/**
 * Values read from Parquet or JSON made safe to store as JSON metadata: 64-bit integers (`bigint`) become
 * numbers when exact and decimal strings otherwise, dates become ISO strings, binary data becomes a short
 * description (it is not metadata), and nested lists and objects are converted throughout.
 */
export function toJsonValue(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : String(value);
    case 'bigint':
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
    case 'object': {
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (value instanceof Uint8Array) return `<${value.length} bytes>`;
      if (Array.isArray(value)) return value.map(toJsonValue);
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = toJsonValue(v);
      return out;
    }
    default:
      return String(value);
  }
}
