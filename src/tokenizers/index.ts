export { ChatTokenizer, type ChatTokenizerOptions, type ChunkPosition, type TokenizerStyle } from './chat-tokenizer.js';
export { assembleByteLevelBpe, parseMerges, QWEN2_PRETOKENIZE_REGEX, QWEN2_VL_ADDED_TOKENS, type AddedTokenSpec } from './assemble-bpe.js';
export { byteLevelDecoder } from './byte-level.js';
