/**
 * The one codec between a `captions` row and a `Caption`: booleans are stored as 0/1, a verdict no filter
 * has given yet as NULL, and a caption's scores as NULL when nothing scored it. Every reader of caption
 * rows selects `CAPTION_COLUMNS` and decodes with `captionFromRow` (or `captionFromValues` for a raw row);
 * the writer encodes with `captionToRow`.
 */
import type { Caption, CaptionOrigin } from '../core/sample.js';

/** The columns a caption is read from, in `captionFromValues`' order. */
const COLUMNS = ['origin', 'text', 'issue', 'usable', 'model', 'itc', 'itm', 'kept', 'reason'] as const;

/** The columns `captionFromRow` reads, for a SELECT (`c.` prefixed in `CAPTION_COLUMNS_OF_C`). */
export const CAPTION_COLUMNS = COLUMNS.join(', ');
export const CAPTION_COLUMNS_OF_C = COLUMNS.map((column) => `c.${column}`).join(', ');

/** A caption as read back: every field present, null where no stage set it. */
export type StoredCaption = Required<Caption>;

/** A caption as stored (without its sample key, position and id). */
export interface CaptionRow {
  origin: string;
  text: string;
  issue: string | null;
  usable: number;
  model: string | null;
  itc: number | null;
  itm: number | null;
  kept: number | null;
  reason: string | null;
}

export function captionFromRow(row: CaptionRow): StoredCaption {
  return decode(row.origin, row.text, row.issue, row.usable, row.model, row.itc, row.itm, row.kept, row.reason);
}

/**
 * The same for a raw row (`statement.raw()`: arrays, not objects, which is what makes a scan of every
 * caption of a large run fast): the `CAPTION_COLUMNS` values from position `at` on.
 */
export function captionFromValues(values: readonly unknown[], at = 0): StoredCaption {
  const text = (i: number) => values[at + i] as string | null;
  const number = (i: number) => values[at + i] as number | null;
  return decode(text(0)!, text(1)!, text(2), number(3)!, text(4), number(5), number(6), number(7), text(8));
}

function decode(
  origin: string,
  text: string,
  issue: string | null,
  usable: number,
  model: string | null,
  itc: number | null,
  itm: number | null,
  kept: number | null,
  reason: string | null,
): StoredCaption {
  return { text, origin: origin as CaptionOrigin, issue, usable: usable !== 0, model, itc, itm, kept: kept === null ? null : kept !== 0, reason };
}

/** A caption's row values; what a stage has not set yet (a score, a verdict) is stored as NULL. */
export function captionToRow(caption: Caption): CaptionRow {
  return {
    origin: caption.origin,
    text: caption.text,
    issue: caption.issue,
    usable: caption.usable ? 1 : 0,
    model: caption.model ?? null,
    itc: caption.itc ?? null,
    itm: caption.itm ?? null,
    kept: caption.kept === undefined || caption.kept === null ? null : caption.kept ? 1 : 0,
    reason: caption.reason ?? null,
  };
}
