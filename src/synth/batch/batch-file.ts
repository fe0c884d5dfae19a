/**
 * OpenAI Batch API files. A request file has one JSON line per request:
 * `{"custom_id": "<request hash>", "method": "POST", "url": "/v1/chat/completions", "body": {...}}`,
 * the same file `vllm run-batch -i FILE -o OUT --model M` accepts. An output file has one line per
 * answered request: `{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}`.
 */
import { z } from 'zod';

export const BATCH_URL = '/v1/chat/completions';

export interface BatchRequestLine {
  custom_id: string;
  method: 'POST';
  url: typeof BATCH_URL;
  body: Record<string, unknown>;
}

export function batchRequestLine(customId: string, body: object): BatchRequestLine {
  return { custom_id: customId, method: 'POST', url: BATCH_URL, body: body as Record<string, unknown> };
}

/** JSONL text: one request per line, a final newline. */
export function writeBatchJsonl(lines: readonly BatchRequestLine[]): string {
  return lines.map((line) => JSON.stringify(line)).join('\n') + (lines.length > 0 ? '\n' : '');
}

const outputLineSchema = z.looseObject({
  custom_id: z.string(),
  response: z
    .looseObject({
      status_code: z.number(),
      body: z.unknown().optional(),
    })
    .nullable()
    .optional(),
  error: z
    .looseObject({
      code: z.string().nullable().optional(),
      message: z.string().nullable().optional(),
    })
    .nullable()
    .optional(),
});

export type BatchOutputLine = z.infer<typeof outputLineSchema>;

/** Parse an output or error file; lines that are not valid are counted, not thrown. */
export function parseBatchOutput(text: string): { lines: BatchOutputLine[]; invalid: number } {
  const lines: BatchOutputLine[] = [];
  let invalid = 0;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      invalid++;
      continue;
    }
    const parsed = outputLineSchema.safeParse(value);
    if (parsed.success) lines.push(parsed.data);
    else invalid++;
  }
  return { lines, invalid };
}

const requestLineSchema = z.object({
  custom_id: z.string().min(1),
  method: z.literal('POST'),
  url: z.literal(BATCH_URL),
  body: z.looseObject({ model: z.string(), messages: z.array(z.unknown()) }),
});

/** Read a request file back (to check it, or to ingest the results of an earlier run's batch). */
export function parseBatchRequests(text: string): BatchRequestLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      const parsed = requestLineSchema.safeParse(JSON.parse(line));
      if (!parsed.success) throw new Error(`batch request line ${i + 1}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
      return parsed.data as BatchRequestLine;
    });
}
