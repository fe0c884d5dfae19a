/**
 * The files a conversation export needs in its `tokenizer` folder, checked before anything is loaded so a
 * wrong or incomplete folder fails with the list of what is expected. The folder to point at is the one of
 * the model being trained, as downloaded from the Hugging Face Hub (`huggingface-cli download MODEL`): the
 * masks are only right with the trainer's own tokenizer.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError } from '../core/errors.js';

interface Expected {
  /** What the template needs, for the message. */
  files: string;
  /** A model whose folder has them. */
  example: string;
}

const LLAMA: Expected = {
  files: 'tokenizer.json and tokenizer_config.json (bos_token, eos_token, add_bos_token, legacy)',
  example: 'the language model LLaVA-1.5 trains, e.g. lmsys/vicuna-7b-v1.5',
};
const QWEN: Expected = {
  files:
    'tokenizer.json (or vocab.json + merges.txt), tokenizer_config.json (the <|im_start|> and vision tokens), and preprocessor_config.json (min_pixels / max_pixels; without it 3136 and 1003520 are assumed)',
  example: 'e.g. Qwen/Qwen2-VL-7B-Instruct or Qwen/Qwen2.5-VL-7B-Instruct',
};
const ANY: Expected = {
  files: 'tokenizer.json (or vocab.json + merges.txt) and tokenizer_config.json',
  example: 'the model you train',
};

function expectedFor(template: string | null): Expected {
  if (template === 'vicuna_v1' || template === 'plain') return LLAMA;
  if (template === 'qwen2_vl') return QWEN;
  return ANY;
}

function advice(template: string | null): string {
  const expected = expectedFor(template);
  return `Point \`tokenizer\` at the folder of the model you train, as downloaded from the Hugging Face Hub (${expected.example}); ${template === null ? 'it' : `template ${template}`} needs there: ${expected.files}`;
}

/**
 * Throws a ConfigError naming the missing files when `location` (a folder, or a tokenizer config file in
 * one) lacks what `template` needs (null: the template is chosen later from the tokenizer).
 */
export function checkTokenizerFiles(location: string, template: string | null): void {
  if (!existsSync(location)) throw new ConfigError(`tokenizer: "${location}" does not exist. ${advice(template)}`);
  const isFile = statSync(location).isFile();
  const dir = isFile ? dirname(location) : location;
  const has = (name: string) => existsSync(join(dir, name));
  const missing: string[] = [];
  if (!has('tokenizer.json') && !(has('vocab.json') && has('merges.txt'))) {
    missing.push(has('tokenizer.model') ? 'tokenizer.json (the folder has only the sentencepiece tokenizer.model: write tokenizer.json with transformers, `AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)`)' : 'tokenizer.json (or vocab.json + merges.txt)');
  }
  if (!isFile && !has('tokenizer_config.json')) missing.push('tokenizer_config.json');
  if (missing.length > 0) throw new ConfigError(`tokenizer: ${location} has no ${missing.join(' and no ')}. ${advice(template)}`);
}
