/**
 * Names of the stages that code outside the stage itself must know: the store's queries ask for rows a
 * stage wrote (a sample the captioner held back, a synthesis deferral, a dedup drop), so the names live
 * below both. A stage no other folder names keeps its name in its own file.
 */

/** The captioner stage: the failures of samples it holds back are recorded under it (`store/done-rule.ts`). */
export const CAPTIONER_STAGE = 'captioner';

/** The synthesis stage: a sample whose synthesis was left for a later run is deferred under it. */
export const SYNTH_STAGE = 'synth';

/** The exact-duplicate stage, and the reason it drops a duplicate under (such a row owns no image). */
export const DEDUP_STAGE = 'dedup';
export const DUPLICATE_IMAGE = 'duplicate_image';
