#!/usr/bin/env node
/**
 * Build the two small but real tokenizers the loss-mask tests run on when the real Llama 2 and Qwen2
 * tokenizers (../shared/tokenizers) are absent, e.g. in CI on a clean clone:
 *
 *     node tools/make_test_tokenizers.mjs            # writes tests/fixtures/tokenizers/{llama-mini,qwen-mini}
 *     node tools/make_test_tokenizers.mjs --out DIR  # writes them somewhere else
 *     node tools/make_test_tokenizers.mjs --check    # exits 1 unless the committed files are what it builds
 *
 * Plain Node, no dependencies, no randomness beyond a fixed-seed PRNG, no clock: every run writes
 * byte-identical files (tests/tokenizers/fixture-recipe.test.ts rebuilds them in memory and compares).
 *
 * Recipe
 * ------
 * 1. Corpus ({@link corpus}): a fixed list of sentences written here — LLaVA's vicuna_v1 system prompt,
 *    Qwen's ChatML system prompt, questions and answers about synthetic shapes scenes, COCO-style captions
 *    drawn from word lists by a mulberry32 PRNG with seed 20240601, a few paragraphs of prose, noisy
 *    alt-text, and sentences in French, German, Spanish, Russian, Chinese and Japanese. Emoji, `½` and
 *    Hebrew occur only once or twice, so both tokenizers meet them only as bytes. Short conversations are
 *    added as each tokenizer sees them at training time: for Llama, the vicuna_v1 rounds after the first
 *    (`USER: q ASSISTANT: a`, as a non-legacy LlamaTokenizer encodes the text after `</s>`: no dummy
 *    prefix); for Qwen, the ChatML messages between the special tokens (`user\nq`, `assistant\na`, `\n`).
 *    Special tokens are never trained on.
 *
 * 2. llama-mini/ — Llama/sentencepiece-style BPE with byte fallback, in the Hugging Face `tokenizer.json`
 *    layout of Llama 2's (normalizer Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer, BPE with
 *    `byte_fallback: true`, TemplateProcessing adding `<s>`, decoder Replace/ByteFallback/Fuse/Strip).
 *    Training follows sentencepiece's BPE trainer with Llama 2's options:
 *    - a sentence is normalized like the tokenizer does: spaces become `▁` and `▁` is prepended (text after
 *      `</s>` in a vicuna_v1 conversation is not: it is what a non-legacy LlamaTokenizer sees there);
 *    - characters seen at least {@link MIN_CHAR_COUNT} times (and `▁`) are the alphabet; any other
 *      character is only ever encoded as its UTF-8 bytes (`<0xNN>`); newlines and tabs are never pieces;
 *    - split_by_whitespace: `▁` only starts a piece (a run of spaces stays with the word after it), so no
 *      piece holds `▁` after another character;
 *    - split_by_unicode_script / split_digits: pieces never mix letters, Han characters, punctuation, and
 *      digits are always single tokens (a `▁` belongs to the character class after it);
 *    - max_piece_length 16; the most frequent pair wins, ties broken by the pair's text (code units);
 *    - {@link LLAMA_MERGES} merges. Ids: `<unk>` 0, `<s>` 1, `</s>` 2, `<0x00>`..`<0xFF>` 3..258, merged
 *      pieces in merge order, then the alphabet by frequency (as Llama 2 orders its vocabulary).
 *    tokenizer_config.json mirrors Llama 2's (add_bos_token, no `legacy` key, so transformers' default
 *    legacy=True applies); tokenizer_config.nonlegacy.json is the same with `"legacy": false` (as
 *    lmsys/vicuna-7b-v1.5 ships); special_tokens_map.json as Llama 2's.
 *
 * 3. qwen-mini/ — Qwen2-style byte-level BPE as `vocab.json` + `merges.txt` (the files Qwen2 and Qwen2-VL
 *    ship). Text is NFC-normalized and split with Qwen2's pre-tokenizer regex; each piece is written with
 *    GPT-2's byte-to-unicode table (`Ġ` = space, `Ċ` = newline). The 256 byte characters are ids 0..255 in
 *    that table's order (as in Qwen2's vocab.json), then {@link QWEN_MERGES} merges, most frequent pair first
 *    (ties by text), each adding the next id. tokenizer_config.json is Qwen2-Instruct's (its ChatML
 *    `chat_template`, eos `<|im_end|>`, pad `<|endoftext|>`) with `added_tokens_decoder` declaring, right
 *    after the vocabulary, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>` and Qwen2-VL's eleven tokens
 *    (`<|object_ref_start|>` ... `<|video_pad|>`), in Qwen2-VL's order.
 *
 * 4. Checks ({@link checkLlama}, {@link checkQwen}): properties of the real tokenizers that the templates'
 *    reference computations rely on, verified on the result with a small BPE encoder written here (the
 *    build fails if a corpus change breaks one):
 *    - Llama: `▁`, `:` and `</s>` behave as in Llama 2, and "USER" after `</s>` without the dummy prefix is
 *      exactly one token shorter than with it (LLaVA's non-legacy `round_len - 1` rule assumes this);
 *    - Qwen: `system`, `user`, `assistant` are single tokens (Qwen2-VL's finetuning code masks the first
 *      three tokens of `<|im_start|>assistant\n`).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const LLAMA_MERGES = 1500;
export const QWEN_MERGES = 1500;
export const MIN_CHAR_COUNT = 3;
const MAX_PIECE_LENGTH = 16;
const SEED = 20240601;

// ---------------------------------------------------------------------------------------------- corpus

/** mulberry32: a small, well-known 32-bit PRNG. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const VICUNA_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
export const QWEN_SYSTEM = 'You are a helpful assistant.';

const SHAPES = ['circle', 'square', 'triangle', 'star', 'hexagon', 'rectangle', 'diamond', 'ellipse', 'pentagon', 'cross'];
const COLOURS = ['red', 'green', 'blue', 'yellow', 'teal', 'purple', 'orange', 'pink', 'black', 'white', 'grey', 'brown'];
const SIZES = ['small', 'large', 'tiny', 'big', 'medium-sized', 'huge'];
const PLACES = ['on the left', 'on the right', 'at the top', 'at the bottom', 'in the middle', 'in the top left corner', 'near the bottom right corner', 'in the centre'];
const RELATIONS = ['next to', 'above', 'below', 'to the left of', 'to the right of', 'beside', 'under', 'over', 'near'];
const BACKGROUNDS = ['white', 'black', 'grey', 'light blue', 'pale yellow', 'dark green'];
const NUMBERS = ['one', 'two', 'three', 'four', 'five'];

const FIXED = [
  VICUNA_SYSTEM,
  QWEN_SYSTEM,
  'You are a helpful assistant that describes images.',
  'What is in the picture?',
  'What is in the image?',
  'What shape is it?',
  'What colour is it?',
  'What colour is the square?',
  'What colour is the circle?',
  'Is it large?',
  'Is it big?',
  'Is it small?',
  'How many shapes are there?',
  'Where is the square?',
  'Where is the circle?',
  'Any text in it?',
  'Describe the image.',
  'Describe the image in detail.',
  'Describe the image at length.',
  'Describe the picture briefly.',
  'Why is the sky blue?',
  'Why are tiles square?',
  'Why so noisy?',
  'What is shown?',
  'Name a primary colour.',
  'Another one?',
  'Say it.',
  'Be brief.',
  'It is a circle.',
  'It is teal.',
  'No, it is tiny.',
  'Blue.',
  'Yellow.',
  'Teal.',
  'Red, with a thin black outline.',
  'No, it is small: about 40 px across.',
  'A red circle on a white background.',
  'A small teal square fills the frame.',
  'A flat teal square on its own.',
  'So that they tile a plane without gaps.',
  'Rayleigh scattering.',
  'Gaussian noise was added.',
  'A noisy pattern.',
  'The end of text.',
  'Hello world! Hello there, world.',
  'The image shows a simple scene with a few flat shapes.',
  'There is nothing else in the picture.',
  'The background is plain and empty.',
  'Each shape has a thin outline.',
  'The objects do not overlap.',
  'The picture is a photograph of a table.',
  'a photo of thing number 1',
  'a picture number 2',
  'click to buy',
  'free shipping on all orders',
  'IMG_0042.JPG',
  'DSC_1234.jpg',
  'stock photo, royalty free',
  'I am fine, thank you. They will come. We have seen it. It is not here.',
  "I'm fine. They'll come. We've seen it. It's not here. You're right. She'd know.",
  'First, look at the shapes; then, count them: one, two, three.',
  '(see above) [note] {empty} "quoted" <tag> a/b a-b a_b a+b a=b 50% #1 @home ~ok | * &',
  'Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 28 40 64 100 224 391 480 640 1000 1080 1920 2024.',
  'Coordinates (12, 34), (56, 78) and [0.25, 0.50, 0.75, 1.00].',
  '  Two  spaces,   three   spaces and    four.',
];

/** Plain prose on varied subjects, for subwords beyond the word lists. */
const PROSE = [
  'The photograph was taken early in the morning, when the light was soft and the streets were still quiet.',
  'Several people are waiting patiently at the crossing while a delivery truck turns slowly into the narrow road.',
  'On the kitchen counter there are fresh vegetables, a cutting board, and a knife resting beside a bowl of tomatoes.',
  'The children laughed loudly as they chased each other around the playground, climbing and sliding everywhere.',
  'A passenger train travels through the countryside, passing farms, rivers and forests under a cloudy sky.',
  'Before training, every caption is cleaned, filtered and checked against the image it claims to describe.',
  'The model compares each image with its caption and keeps only the pairs whose similarity is high enough.',
  'Noisy web captions often mention prices, shipping, file names or unrelated advertising instead of the picture.',
  'Researchers measured the accuracy, precision and recall of the filter on a held-out evaluation split.',
  'Instructions were generated automatically, validated carefully, and rejected whenever the answer leaked hidden information.',
  'The museum displays ancient pottery, colourful paintings, bronze statues and delicate jewellery from many countries.',
  'Heavy snow covered the mountains, and skiers moved quickly down the slopes towards the wooden cabins below.',
  'Fishermen repaired their nets on the harbour wall while seagulls circled above the boats, calling noisily.',
  'Her grandmother planted roses, tulips, sunflowers and lavender in the garden behind the old stone cottage.',
  'The restaurant serves breakfast, lunch and dinner, with vegetarian options and homemade desserts every evening.',
  'Engineers inspected the bridge thoroughly, recording cracks, measurements and photographs for their report.',
  'Visitors walked along the beautiful beach, collecting shells, watching the sunset, and listening to the waves.',
  'A small brown puppy is sleeping comfortably on a soft blanket next to the fireplace in the living room.',
  'Traffic was unusually heavy because of the football match, so many supporters travelled by bicycle or bus.',
  'The students organised an exhibition about electricity, magnetism, chemistry and the history of computing.',
  'During the storm, lightning struck a tall tree, and the neighbours gathered outside to look at the damage.',
  'Please remember to include the original filename, the dimensions and the licence of every downloaded image.',
  'Although the weather forecast promised sunshine, it rained throughout the afternoon and everybody stayed indoors.',
  'The conversation continued for several turns, with questions about colours, positions, sizes and relationships.',
  'Each object is described by its category, a bounding box in normalised coordinates, and a confidence score.',
  'Tokenization splits text into pieces; the loss mask decides which of those pieces the model learns to predict.',
  'Volunteers distributed blankets, sandwiches and hot drinks to travellers stranded at the station overnight.',
  'The orchestra performed symphonies by famous composers, and the audience applauded enthusiastically afterwards.',
  'Farmers harvested wheat, barley and corn, then stored the grain in tall silos beside the red barn.',
  'Scientists discovered unexpected patterns in the satellite images, suggesting that the glacier was shrinking rapidly.',
];

/** Sentences in other languages; accents and CJK characters recur, so they become pieces. */
const FOREIGN = [
  'Un cercle rouge à gauche d’un carré bleu.',
  'Décris l’image, s’il te plaît.',
  'Une étoile jaune au-dessus d’un triangle vert.',
  'Le carré est très grand et la forme à côté est petite.',
  'Ein großer grüner Kreis über einem kleinen Quadrat.',
  'Größe: die Hälfte des Bildes. Schön, nicht wahr?',
  'Ein roter Kreis — über dem blauen Dreieck.',
  'Un círculo rojo junto a un cuadrado azul. ¿Qué es esto? Más pequeño, señor.',
  'Красный круг слева от синего квадрата.',
  'Привет, мир! Что на картинке?',
  '这是什么？一个红色的圆。',
  '图片里有两个形状：一个蓝色的正方形和一个红色的圆。',
  '一个红色的圆在左边，一个绿色的三角形在右边。',
  '你好，你好吗？这个圆是红色的。',
  '赤い丸と青い四角があります。',
  'これは何ですか？赤い丸です。',
];

/** Rare characters: only as bytes in both tokenizers. */
const RARE = ['Un cercle rouge 🔴 et un carré bleu 🟦.', 'Nice picture 😀 — ½ of it is empty. שלום'];

function pick(rand, list) {
  return list[Math.floor(rand() * list.length)];
}

function article(word) {
  return /^[aeiou]/.test(word) ? 'an' : 'a';
}

/** Captions, questions and answers about random shapes scenes. */
function sceneSentences(rand, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const s1 = pick(rand, SHAPES);
    const s2 = pick(rand, SHAPES);
    const c1 = pick(rand, COLOURS);
    const c2 = pick(rand, COLOURS);
    const z1 = pick(rand, SIZES);
    const place = pick(rand, PLACES);
    const rel = pick(rand, RELATIONS);
    const bg = pick(rand, BACKGROUNDS);
    const n = pick(rand, NUMBERS);
    const forms = [
      () => `${article(z1)} ${z1} ${c1} ${s1} ${rel} ${article(c2)} ${c2} ${s2}.`,
      () => `There is ${article(c1)} ${c1} ${s1} ${place} of the image.`,
      () => `${n[0].toUpperCase()}${n.slice(1)} ${c1} ${s1}s on ${article(bg)} ${bg} background.`,
      () => `The ${s1} is ${c1} and the ${s2} is ${c2}.`,
      () => `What colour is the ${s1}?`,
      () => `Where is the ${c1} ${s1}?`,
      () => `Is the ${s1} ${rel} the ${s2}?`,
      () => `The ${c1} ${s1} is ${place}, ${rel} ${article(z1)} ${z1} ${s2}.`,
      () => `${article(c1).replace(/^a/, 'A')} ${c1} ${s1} ${place}.`,
      () => `It is ${article(z1)} ${z1} ${c1} ${s1}, about ${Math.floor(rand() * 90) + 10} px across.`,
      () => `In this picture we can see ${article(c1)} ${c1} ${s1} and ${article(c2)} ${c2} ${s2}.`,
      () => `No, the ${s1} is ${z1}.`,
      () => `Yes, it is ${c1}.`,
    ];
    out.push(pick(rand, forms)());
  }
  return out;
}

/** COCO-style captions of everyday scenes, for a vocabulary beyond the shapes domain. */
const SUBJECTS = [
  ['a man', 'men'], ['a woman', 'women'], ['a person', 'people'], ['a child', 'children'], ['a dog', 'dogs'],
  ['a cat', 'cats'], ['a horse', 'horses'], ['a bird', 'birds'], ['a cow', 'cows'], ['a sheep', 'sheep'],
  ['an elephant', 'elephants'], ['a giraffe', 'giraffes'], ['a zebra', 'zebras'], ['a bear', 'bears'],
  ['a train', 'trains'], ['a bus', 'buses'], ['a truck', 'trucks'], ['a car', 'cars'], ['a motorcycle', 'motorcycles'],
  ['a bicycle', 'bicycles'], ['an airplane', 'airplanes'], ['a boat', 'boats'], ['a skateboarder', 'skateboarders'],
  ['a surfer', 'surfers'], ['a skier', 'skiers'], ['a baseball player', 'baseball players'], ['a tennis player', 'tennis players'],
];
const ACTIONS = [
  'standing', 'sitting', 'walking', 'running', 'riding a wave', 'eating grass', 'holding an umbrella', 'playing frisbee',
  'parked', 'waiting', 'looking out of a window', 'sleeping', 'jumping', 'flying a kite', 'crossing the street',
  'carrying a bag', 'drinking water', 'reading a book', 'talking on a phone', 'resting',
];
const SCENES = [
  'in a field', 'on a beach', 'next to a building', 'on a city street', 'in a kitchen', 'in a living room', 'at a train station',
  'near a lake', 'on a snowy slope', 'in front of a house', 'on a wooden table', 'under a tree', 'by the ocean', 'in a park',
  'on a grassy hill', 'at the airport', 'in a parking lot', 'on a dirt road', 'inside a restaurant', 'beside a fence',
];
const OBJECTS = [
  'a pizza', 'a sandwich', 'a bowl of fruit', 'a laptop', 'a clock', 'a vase of flowers', 'a cup of coffee', 'a teddy bear',
  'a pair of scissors', 'a toothbrush', 'an umbrella', 'a suitcase', 'a bench', 'a traffic light', 'a fire hydrant',
  'a stop sign', 'a potted plant', 'a refrigerator', 'a television', 'a keyboard', 'a cell phone', 'a banana', 'an apple',
  'a donut', 'a cake', 'a hot dog', 'a bottle of wine', 'a kite', 'a surfboard', 'a tennis racket',
];
const ADJECTIVES = ['old', 'young', 'colorful', 'bright', 'dark', 'wooden', 'metal', 'plastic', 'empty', 'crowded', 'sunny', 'cloudy', 'busy', 'quiet', 'tall', 'short', 'long', 'round', 'shiny', 'dirty'];

function cocoSentences(rand, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const [one, many] = pick(rand, SUBJECTS);
    const action = pick(rand, ACTIONS);
    const scene = pick(rand, SCENES);
    const object = pick(rand, OBJECTS);
    const adjective = pick(rand, ADJECTIVES);
    const forms = [
      () => `${one[0].toUpperCase()}${one.slice(1)} ${action} ${scene}.`,
      () => `${pick(rand, NUMBERS)[0].toUpperCase()}${pick(rand, NUMBERS).slice(1)} ${many} ${action} ${scene}.`,
      () => `There is ${object} ${scene}.`,
      () => `${one[0].toUpperCase()}${one.slice(1)} with ${object} ${scene}.`,
      () => `A ${adjective} room with ${object} and ${pick(rand, OBJECTS)}.`,
      () => `The ${many} are ${action} ${scene} on a ${adjective} day.`,
      () => `Close up of ${object} ${scene}.`,
      () => `An image of ${one} ${action}, with ${object} nearby.`,
    ];
    out.push(pick(rand, forms)());
  }
  return out;
}

/** Conversations: lists of [question, answer]. */
function conversations(rand, count) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const rounds = 1 + Math.floor(rand() * 3);
    const conv = [];
    for (let r = 0; r < rounds; r++) {
      const s = pick(rand, SHAPES);
      const c = pick(rand, COLOURS);
      const q = pick(rand, [`What colour is the ${s}?`, 'What shape is it?', 'Is it large?', `Where is the ${s}?`, 'Describe the image.', 'What is in the picture?']);
      const a = pick(rand, [`It is ${c}.`, `It is ${article(s)} ${s}.`, `No, it is small.`, `The ${s} is ${pick(rand, PLACES)}.`, `${article(c).replace(/^a/, 'A')} ${c} ${s} on a white background.`]);
      conv.push([r === 0 && rand() < 0.7 ? `<image>\n${q}` : q, a]);
    }
    out.push(conv);
  }
  return out;
}

/**
 * The corpus: `sentences` (plain text), plus vicuna_v1 and ChatML renderings of `chats`. Each entry of
 * `llama` is [text, dummyPrefix]; `qwen` entries are texts without special tokens.
 */
export function corpus() {
  const rand = prng(SEED);
  const sentences = [];
  for (let i = 0; i < 3; i++) sentences.push(...FIXED);
  for (let i = 0; i < 2; i++) sentences.push(...PROSE);
  for (let i = 0; i < 4; i++) sentences.push(...FOREIGN);
  sentences.push(...RARE);
  sentences.push(...sceneSentences(rand, 2500));
  sentences.push(...cocoSentences(rand, 3000));
  const chats = conversations(rand, 80);

  const llama = sentences.map((s) => [s, true]);
  const qwen = [...sentences];
  for (const chat of chats) {
    // vicuna_v1 rounds after the first, as a non-legacy LlamaTokenizer sees them after `</s>`: without the
    // dummy prefix. (The first round, system prompt included, would teach "▁USER", which Llama 2 lacks.)
    for (const [q, a] of chat.slice(1)) llama.push([`USER: ${q} ASSISTANT: ${a}`, false]);
    // ChatML.
    qwen.push(`system\n${QWEN_SYSTEM}`, '\n');
    for (const [q, a] of chat) {
      qwen.push(`user\n${q.replace('<image>', '')}`, '\n', `assistant\n${a}`, '\n');
    }
  }
  return { llama, qwen };
}

// ------------------------------------------------------------------------------------------ BPE trainer

/** Character class for sentencepiece-style splitting: pieces never span two classes; digits never merge. */
function charClass(ch) {
  if (/\p{N}/u.test(ch)) return 'digit';
  if (/\p{Script=Han}|\p{Script=Hiragana}|\p{Script=Katakana}/u.test(ch)) return 'cjk';
  if (/[\p{L}\p{M}]/u.test(ch)) return 'letter';
  return 'punct';
}

/**
 * Generic BPE training over `words` (Map from a key to {symbols, mergeable, count}): `mergeable[i]` says
 * whether symbols i and i+1 may ever be joined. Returns the merges in order, as [left, right].
 */
function trainBpe(words, numMerges, maxLength) {
  const list = [...words.values()].map((w) => ({ syms: [...w.symbols], can: [...w.mergeable], count: w.count }));
  const lengthOf = new Map();
  const len = (s) => {
    let n = lengthOf.get(s);
    if (n === undefined) {
      n = [...s].length;
      lengthOf.set(s, n);
    }
    return n;
  };
  // Pair -> count, and pair -> indexes of words that hold it.
  const counts = new Map();
  const where = new Map();
  const key = (a, b) => `${a}\u0000${b}`;
  const addPairs = (index, sign) => {
    const w = list[index];
    for (let i = 0; i + 1 < w.syms.length; i++) {
      if (!w.can[i] || len(w.syms[i]) + len(w.syms[i + 1]) > maxLength) continue;
      const k = key(w.syms[i], w.syms[i + 1]);
      counts.set(k, (counts.get(k) ?? 0) + sign * w.count);
      if (sign > 0) {
        let set = where.get(k);
        if (!set) where.set(k, (set = new Set()));
        set.add(index);
      }
    }
  };
  list.forEach((_, i) => addPairs(i, 1));

  const merges = [];
  while (merges.length < numMerges) {
    let best = null;
    let bestCount = 1; // a pair seen once is not worth a merge
    for (const [k, c] of counts) {
      if (c > bestCount || (c === bestCount && best !== null && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    const merged = a + b;
    for (const index of [...(where.get(best) ?? [])].sort((x, y) => x - y)) {
      const w = list[index];
      addPairs(index, -1);
      const syms = [];
      const can = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.can[i] && w.syms[i] === a && w.syms[i + 1] === b) {
          syms.push(merged);
          if (i + 2 < w.syms.length) can.push(w.can[i + 1]);
          i++;
        } else {
          syms.push(w.syms[i]);
          if (i + 1 < w.syms.length) can.push(w.can[i]);
        }
      }
      w.syms = syms;
      w.can = can;
      addPairs(index, 1);
    }
    where.delete(best);
    counts.delete(best);
    for (const [k, c] of counts) if (c <= 0) counts.delete(k);
  }
  return merges;
}

// ------------------------------------------------------------------------------------ llama-mini (spm)

const byteToken = (b) => `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;

/** Split a normalized text (spaces already `▁`) into words: a run of `▁` starts a word. */
function spmWords(text) {
  const words = [];
  let start = 0;
  for (let i = 1; i <= text.length; i++) {
    if (i < text.length && !(text[i] === '▁' && text[i - 1] !== '▁')) continue;
    words.push(text.slice(start, i));
    start = i;
  }
  return words.filter((w) => w.length > 0);
}

function buildLlama() {
  const { llama } = corpus();
  const texts = llama.map(([s, prefix]) => (prefix ? '▁' : '') + s.replaceAll(' ', '▁'));

  const charCounts = new Map();
  for (const t of texts) for (const ch of t) charCounts.set(ch, (charCounts.get(ch) ?? 0) + 1);
  const alphabet = new Set([...charCounts].filter(([ch, n]) => n >= MIN_CHAR_COUNT && !/[\p{Cc}\p{Cf}]/u.test(ch)).map(([ch]) => ch));
  alphabet.add('▁');

  const wordCounts = new Map();
  for (const t of texts) for (const w of spmWords(t)) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  const words = new Map();
  for (const [w, count] of wordCounts) {
    const chars = [...w];
    // A `▁` takes the class of the first non-`▁` character after it.
    const classes = new Array(chars.length);
    let next = 'space';
    for (let i = chars.length - 1; i >= 0; i--) {
      if (chars[i] !== '▁') next = charClass(chars[i]);
      classes[i] = next;
    }
    const mergeable = [];
    for (let i = 0; i + 1 < chars.length; i++) {
      mergeable.push(classes[i] === classes[i + 1] && classes[i] !== 'digit' && alphabet.has(chars[i]) && alphabet.has(chars[i + 1]));
    }
    words.set(w, { symbols: chars, mergeable, count });
  }
  const merges = trainBpe(words, LLAMA_MERGES, MAX_PIECE_LENGTH);

  const vocab = new Map([
    ['<unk>', 0],
    ['<s>', 1],
    ['</s>', 2],
  ]);
  const add = (piece) => {
    if (!vocab.has(piece)) vocab.set(piece, vocab.size);
  };
  for (let b = 0; b < 256; b++) add(byteToken(b));
  for (const [a, b] of merges) add(a + b);
  const chars = [...alphabet].sort((x, y) => (charCounts.get(y) ?? 0) - (charCounts.get(x) ?? 0) || (x < y ? -1 : x > y ? 1 : 0));
  for (const ch of chars) add(ch);

  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };

  const addedToken = (content) => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  const config = {
    add_bos_token: true,
    add_eos_token: false,
    bos_token: addedToken('<s>'),
    clean_up_tokenization_spaces: false,
    eos_token: addedToken('</s>'),
    model_max_length: 4096,
    pad_token: null,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
    unk_token: addedToken('<unk>'),
  };
  const nonLegacy = { ...config, legacy: false };
  const mapToken = (content) => ({ content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  const specialMap = { bos_token: mapToken('<s>'), eos_token: mapToken('</s>'), unk_token: mapToken('<unk>') };

  checkLlama(vocab, merges);
  return {
    'llama-mini/tokenizer.json': json(tokenizer),
    'llama-mini/tokenizer_config.json': json(config),
    'llama-mini/tokenizer_config.nonlegacy.json': json(nonLegacy),
    'llama-mini/special_tokens_map.json': json(specialMap),
  };
}

/** Hugging Face BPE over one word's symbols: repeatedly join the adjacent pair with the lowest rank. */
function applyMerges(symbols, ranks) {
  const syms = [...symbols];
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const r = ranks.get(`${syms[i]} ${syms[i + 1]}`);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return syms;
    syms.splice(best, 2, syms[best] + syms[best + 1]);
  }
}

/** Pieces of `text` with the llama-mini vocabulary (dummy prefix as asked). */
function llamaPieces(text, prefix, vocab, ranks) {
  const normalized = (prefix ? '▁' : '') + text.replaceAll(' ', '▁');
  const symbols = [];
  for (const ch of normalized) {
    if (vocab.has(ch)) symbols.push(ch);
    else for (const b of Buffer.from(ch, 'utf8')) symbols.push(byteToken(b));
  }
  return applyMerges(symbols, ranks);
}

function assert(condition, message) {
  if (!condition) throw new Error(`make_test_tokenizers: ${message}`);
}

function checkLlama(vocab, merges) {
  const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  const pieces = (text, prefix) => llamaPieces(text, prefix, vocab, ranks);
  const bad = [...vocab.keys()].find((p) => /[^▁]▁/.test(p));
  assert(bad === undefined, `piece ${JSON.stringify(bad)} holds ▁ after another character`);
  assert(vocab.has('▁') && vocab.has(':'), 'the alphabet lacks ▁ or :');
  // LLaVA's preprocess_v1 with a non-legacy tokenizer: round_len - 1, instruction_len - 1.
  const withPrefix = pieces('USER:', true);
  const without = pieces('USER:', false);
  assert(withPrefix.length === without.length + 1, `"▁USER:" is ${JSON.stringify(withPrefix)}, "USER:" is ${JSON.stringify(without)}: LLaVA's non-legacy arithmetic needs exactly one token more`);
  // "ASSISTANT: " ends in ":" then a lone "▁" (LLaVA's instruction_len - 2).
  assert(JSON.stringify(pieces('ASSISTANT: ', true).slice(-2)) === JSON.stringify([':', '▁']), 'ASSISTANT: does not end in ":", "▁"');
  assert(!vocab.has('😀') && !vocab.has('🔴'), 'emoji must be byte fallback');
}

// --------------------------------------------------------------------------------- qwen-mini (byte-level)

/** GPT-2's bytes_to_unicode: byte -> character, in the order its vocabulary lists them. */
function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return bs.map((b, i) => [b, String.fromCodePoint(cs[i])]);
}

/** Qwen2's pre-tokenizer regex, with its `(?i:...)` group spelled out for JavaScript. */
const QWEN_SPLIT = /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export const QWEN_ADDED = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|object_ref_start|>',
  '<|object_ref_end|>',
  '<|box_start|>',
  '<|box_end|>',
  '<|quad_start|>',
  '<|quad_end|>',
  '<|vision_start|>',
  '<|vision_end|>',
  '<|vision_pad|>',
  '<|image_pad|>',
  '<|video_pad|>',
];

/** Qwen2-Instruct's chat_template, as in its tokenizer_config.json. */
const QWEN_CHAT_TEMPLATE =
  "{% set system_message = 'You are a helpful assistant.' %}{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] %}{% endif %}{% if system_message is defined %}{{ '<|im_start|>system\n' + system_message + '<|im_end|>\n' }}{% endif %}{% for message in messages %}{% set content = message['content'] %}{% if message['role'] == 'user' %}{{ '<|im_start|>user\n' + content + '<|im_end|>\n<|im_start|>assistant\n' }}{% elif message['role'] == 'assistant' %}{{ content + '<|im_end|>' + '\n' }}{% endif %}{% endfor %}";

function buildQwen() {
  const { qwen } = corpus();
  const table = bytesToUnicode();
  const byteChar = new Map(table);
  const toChars = (piece) => [...Buffer.from(piece, 'utf8')].map((b) => byteChar.get(b));

  const pieceCounts = new Map();
  for (const text of qwen) {
    for (const m of text.normalize('NFC').matchAll(QWEN_SPLIT)) pieceCounts.set(m[0], (pieceCounts.get(m[0]) ?? 0) + 1);
  }
  const words = new Map();
  for (const [piece, count] of pieceCounts) {
    const symbols = toChars(piece);
    const w = symbols.join('');
    const existing = words.get(w);
    if (existing) existing.count += count;
    else words.set(w, { symbols, mergeable: symbols.slice(1).map(() => true), count });
  }
  const merges = trainBpe(words, QWEN_MERGES, Infinity);

  const vocab = new Map();
  const add = (piece) => {
    if (!vocab.has(piece)) vocab.set(piece, vocab.size);
  };
  for (const [, ch] of table) add(ch);
  for (const [a, b] of merges) add(a + b);
  const size = vocab.size;

  const decoder = {};
  QWEN_ADDED.forEach((content, i) => {
    decoder[String(size + i)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  });
  const config = {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: QWEN_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 32768,
    pad_token: '<|endoftext|>',
    padding_side: 'left',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  const mapToken = (content) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false });
  const specialMap = { additional_special_tokens: ['<|im_start|>', '<|im_end|>'], eos_token: mapToken('<|im_end|>'), pad_token: mapToken('<|endoftext|>') };

  checkQwen(vocab, merges, toChars);
  return {
    'qwen-mini/vocab.json': `${stringify(vocab, 0)}\n`,
    'qwen-mini/merges.txt': `#version: 0.2\n${merges.map(([a, b]) => `${a} ${b}`).join('\n')}\n`,
    'qwen-mini/tokenizer_config.json': json(config),
    'qwen-mini/special_tokens_map.json': json(specialMap),
  };
}

function checkQwen(vocab, merges, toChars) {
  const ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
  for (const word of ['system', 'user', 'assistant']) {
    const pieces = applyMerges(toChars(word), ranks);
    assert(pieces.length === 1, `"${word}" is ${JSON.stringify(pieces)}, expected one token (ChatML role)`);
  }
  assert(vocab.get('Ċ') === 198 && vocab.get('Ġ') === 220, 'byte characters out of place');
}

// ---------------------------------------------------------------------------------------------- output

/**
 * JSON as `JSON.stringify(value, null, indent)` writes it, except that a Map is written as an object with its
 * entries in insertion order: a vocabulary is listed by id even where JavaScript would move integer-like
 * keys ("0".."9") of a plain object to the front.
 */
function stringify(value, indent, level = 0) {
  const pad = (n) => (indent ? `\n${' '.repeat(indent * n)}` : '');
  const sep = indent ? ': ' : ':';
  if (value instanceof Map) {
    if (value.size === 0) return '{}';
    const items = [...value].map(([k, v]) => `${pad(level + 1)}${JSON.stringify(k)}${sep}${stringify(v, indent, level + 1)}`);
    return `{${items.join(',')}${pad(level)}}`;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[${value.map((v) => `${pad(level + 1)}${stringify(v, indent, level + 1)}`).join(',')}${pad(level)}]`;
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{}';
    return `{${entries.map(([k, v]) => `${pad(level + 1)}${JSON.stringify(k)}${sep}${stringify(v, indent, level + 1)}`).join(',')}${pad(level)}}`;
  }
  return JSON.stringify(value);
}

function json(value) {
  return `${stringify(value, 2)}\n`;
}

/** Every fixture file: relative path -> content. */
export function buildTokenizers() {
  return { ...buildLlama(), ...buildQwen() };
}

export const DEFAULT_OUT = resolve(dirname(fileURLToPath(import.meta.url)), '../tests/fixtures/tokenizers');

function main(argv) {
  let out = DEFAULT_OUT;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out = resolve(argv[++i] ?? '');
    else if (argv[i] === '--check') check = true;
    else throw new Error(`usage: make_test_tokenizers.mjs [--out DIR] [--check] (unknown argument ${argv[i]})`);
  }
  const files = buildTokenizers();
  let stale = 0;
  for (const [rel, content] of Object.entries(files)) {
    const path = join(out, rel);
    if (check) {
      let current = null;
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // missing
      }
      if (current !== content) {
        stale++;
        console.error(`${path}: differs from what the recipe builds`);
      }
      continue;
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    console.log(`${path} (${Buffer.byteLength(content)} bytes)`);
  }
  if (stale > 0) process.exit(1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
