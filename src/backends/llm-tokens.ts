/**
 * Token estimates before a request is sent (for the TPM limit and `vlcurate estimate`): about four
 * characters per token for English text, a few tokens of framing per message, and a fixed charge per
 * image. The usage the server reports replaces the estimate once the answer is back.
 */

/** Tokens charged per image part (OpenAI's high-detail cost of a 512 px tile plus the base charge). */
export const IMAGE_TOKENS_ESTIMATE = 765;
const PER_MESSAGE = 4;
const PER_REQUEST = 3;

export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export type EstimatableContent = string | readonly ({ type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } })[];

export function estimatePromptTokens(messages: readonly { content: EstimatableContent }[]): number {
  let total = PER_REQUEST;
  for (const message of messages) {
    total += PER_MESSAGE;
    if (typeof message.content === 'string') {
      total += estimateTextTokens(message.content);
      continue;
    }
    for (const part of message.content) {
      total += part.type === 'text' ? estimateTextTokens(part.text) : IMAGE_TOKENS_ESTIMATE;
    }
  }
  return total;
}

/** US dollars for the given usage under a price table (per million tokens). */
export function costUsd(usage: { promptTokens: number; completionTokens: number }, price: { inputPerMTok: number; outputPerMTok: number }): number {
  return (usage.promptTokens * price.inputPerMTok + usage.completionTokens * price.outputPerMTok) / 1_000_000;
}
