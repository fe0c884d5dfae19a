/** Option schemas every source type shares. */
import { z } from 'zod';
import { isValidKey, KEY_CHARACTERS } from '../core/sample.js';

/** `name`: what samples record as their source; default `<type>-<position in the recipe>`. */
export const sourceNameSchema = z.string().min(1, 'expected a non-empty name');

/**
 * `keyPrefix`: prepended to every key of the source, so two sources with overlapping keys (two COCO
 * splits) stay apart. Keys hold only letters, marks and digits of any script, `_` and `-` (`isValidKey`),
 * so the prefix does too.
 */
export const keyPrefixSchema = z
  .string()
  .refine((prefix) => prefix === '' || isValidKey(prefix), `expected only ${KEY_CHARACTERS} (keys are WebDataset keys)`);
