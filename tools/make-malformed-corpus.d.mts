/** Types of tools/make-malformed-corpus.mjs, for the TypeScript tests that import it. */

export declare const CATEGORIES: readonly string[];

/** `ok`, an error code, or `dropped:REASON`. */
export type Outcome = string;

export interface CorpusCase {
  name: string;
  /** The samples the case makes, by key, with the outcome each must have. */
  records: Record<string, Outcome>;
  /** Further samples of the build whose key starts with `prefix`: each must have `expect`, and at least `atLeast` of them. */
  others?: { prefix: string; expect: Outcome; atLeast: number };
  /** The issue the first caption of each sample must carry. */
  captionIssue?: string;
  /** The codes in `meta.droppedAnnotations` of each sample, in order. */
  droppedAnnotations?: string[];
  /** Per task, `ok` or `STATUS:CODE` of the sample's instruction row (variant 0). */
  instructions?: Record<string, string>;
}

export interface CorpusBuild {
  category: string;
  name: string;
  /** The recipe to build (its folder is the working folder). */
  recipe: string;
  /** The exit code the build must end with. */
  exit: number;
  /** What the message must say (configuration errors, stopped synthesis). */
  stderr?: RegExp;
  /** The build must end within this many milliseconds (a dead LLM server stops synthesis fast). */
  maxWallMs?: number;
  /** Chat requests the fake LLM server may receive for `model` during the build, at most. */
  llmRequests?: { model: string; atMost: number };
  cases: CorpusCase[];
}

export interface LlmBehaviour {
  kind: string;
  [field: string]: unknown;
}

export declare function generateCorpus(
  root: string,
  options?: { urlOrigin?: string | null; llmBaseURL?: string | null; refusedBaseURL?: string | null },
): Promise<{ root: string; builds: CorpusBuild[] }>;

export declare function countCases(builds: readonly CorpusBuild[]): Record<string, number>;

export declare function urlImages(): Promise<Record<string, Buffer>>;

/** The model whose every request the fake LLM server answers 401. */
export declare const KEY_REJECTED_MODEL: string;

/** How the fake LLM server must answer a chat request of the LLM category (null: its default answer). */
export declare function llmBehaviour(body: unknown): LlmBehaviour | null;
