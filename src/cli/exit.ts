/** Exit codes (DESIGN.md): 0 success, 1 finished but some samples failed, 2 usage or configuration error. */
export const EXIT_OK = 0;
export const EXIT_SAMPLES_FAILED = 1;
export const EXIT_CONFIG = 2;
/** Conventional code for a run stopped by Ctrl-C (128 + SIGINT). */
export const EXIT_INTERRUPTED = 130;
