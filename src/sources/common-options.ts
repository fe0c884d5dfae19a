/** Option schemas every source type shares. */
import { z } from 'zod';

/** `name`: what samples record as their source; default `<type>-<position in the recipe>`. */
export const sourceNameSchema = z.string().min(1, 'expected a non-empty name');

/**
 * `keyPrefix`: prepended to every key of the source, so two sources with overlapping keys (two COCO
 * splits) stay apart. Keys allow only `[A-Za-z0-9_-]`, so the prefix does too.
 */
export const keyPrefixSchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]*$/, 'expected only letters, digits, "_" and "-" (keys are WebDataset keys)');
