/** Option schemas every source type shares. */
import { z } from 'zod';
import { isValidKey, KEY_CHARACTERS } from '../core/sample.js';
import { inputPathSchema } from '../storage/input-path.js';

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

/**
 * Where a source's local image references may lead. By default only into the source's own folder (the
 * images folder of a manifest, LLaVA file or COCO set; a folder source's folder), symbolic links followed:
 * a dataset row naming `/home/me/.ssh/id_rsa` or a link out of the folder is `image_path_invalid`.
 */
export const localPathFields = {
  /**
   * More folders image references may point into, relative to the recipe's folder, or `s3://bucket/prefix`
   * for `s3://` references elsewhere in a bucket. Default none.
   */
  imageRoots: z.array(inputPathSchema).default([]),
  /**
   * Read local images wherever the dataset says: absolute paths, `file:` URLs, `..` and symbolic links
   * that leave the source's folders. Default false.
   */
  allowAbsolutePaths: z.boolean().default(false),
};
