// Checks the exported shapes demo models (models/shapes-*) from Node, independently of the TypeScript
// sources: every ONNX graph loads in onnxruntime-node and reproduces the PyTorch outputs recorded in the
// folder's reference.json to 1e-4; batch and sequence axes are dynamic; the tokenizer.json read by
// @huggingface/tokenizers gives the token ids the Python trainer used; the captioner's three decoder
// forms (merged with use_cache_branch, the legacy pair, and no cache at all) give the same greedy ids.
//
// Usage: node tools/verify_shapes_onnx.mjs [models-dir]      (exit code 1 on any failure)
import fs from 'node:fs';
import path from 'node:path';

import { Tokenizer } from '@huggingface/tokenizers';
import ort from 'onnxruntime-node';
import sharp from 'sharp';

const TOL = 1e-4;
const root = process.argv[2] ?? 'models';
let failures = 0;

function check(name, ok, detail) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures += 1;
}

function maxDiff(actual, expected) {
  const flat = expected.flat(Infinity);
  if (actual.length !== flat.length) return Infinity;
  let m = 0;
  for (let i = 0; i < flat.length; i++) m = Math.max(m, Math.abs(actual[i] - flat[i]));
  return m;
}

function close(name, actual, expected) {
  const d = maxDiff(actual, expected);
  check(name, d <= TOL, `max |diff| ${d.toExponential(2)}`);
}

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const session = (folder, name) =>
  ort.InferenceSession.create(path.join(folder, 'onnx', name), { intraOpNumThreads: 1, interOpNumThreads: 1 });
const int64 = (rows) => new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

async function pixels(folder, images) {
  const pre = readJson(path.join(folder, 'preprocessor_config.json'));
  const out = [];
  let side = 0;
  for (const im of images) {
    const { data, info } = await sharp(path.join(folder, im.file)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    side = info.width;
    const hw = info.width * info.height;
    const chw = new Float32Array(3 * hw);
    for (let p = 0; p < hw; p++) {
      for (let c = 0; c < 3; c++) {
        chw[c * hw + p] = (data[p * 3 + c] * pre.rescale_factor - pre.image_mean[c]) / pre.image_std[c];
      }
    }
    out.push(chw);
  }
  const all = new Float32Array(out.reduce((n, a) => n + a.length, 0));
  out.forEach((a, i) => all.set(a, i * a.length));
  return { tensor: new ort.Tensor('float32', all, [images.length, 3, side, side]), items: out, side };
}

function tokenizerCheck(folder, texts, inputIds) {
  const tok = new Tokenizer(readJson(path.join(folder, 'tokenizer.json')), readJson(path.join(folder, 'tokenizer_config.json')));
  const ok = texts.every((t, i) => {
    const ids = tok.encode(t).ids;
    const want = inputIds[i].slice(0, ids.length);
    return ids.length <= inputIds[i].length && ids.every((id, k) => id === want[k]) && inputIds[i].slice(ids.length).every((x) => x === 0);
  });
  check(`${path.basename(folder)} tokenizer.json ids = Python ids`, ok);
}

async function verifyClip(folder) {
  const ref = readJson(path.join(folder, 'reference.json'));
  tokenizerCheck(folder, ref.texts, ref.input_ids);
  const vision = await session(folder, 'vision_model.onnx');
  const text = await session(folder, 'text_model.onnx');
  check('clip vision io', vision.inputNames.join() === 'pixel_values' && vision.outputNames.join() === 'image_embeds');
  check('clip text io', text.inputNames.join() === 'input_ids,attention_mask' && text.outputNames.join() === 'text_embeds');
  const px = await pixels(folder, ref.images);
  close('clip image_embeds (batch 3)', (await vision.run({ pixel_values: px.tensor })).image_embeds.data, ref.image_embeds);
  const one = new ort.Tensor('float32', px.items[1], [1, 3, px.side, px.side]);
  close('clip image_embeds (batch 1)', (await vision.run({ pixel_values: one })).image_embeds.data, ref.image_embeds[1]);
  const res = await text.run({ input_ids: int64(ref.input_ids), attention_mask: int64(ref.attention_mask) });
  close('clip text_embeds (padded batch)', res.text_embeds.data, ref.text_embeds);
  // Unpadded, one text: shorter sequence axis, same embedding.
  const len = ref.attention_mask[0].reduce((a, b) => a + b, 0);
  const single = await text.run({ input_ids: int64([ref.input_ids[0].slice(0, len)]), attention_mask: int64([ref.attention_mask[0].slice(0, len)]) });
  close('clip text_embeds (batch 1, unpadded)', single.text_embeds.data, ref.text_embeds[0]);
}

async function verifyItm(folder) {
  const ref = readJson(path.join(folder, 'reference.json'));
  tokenizerCheck(folder, ref.pairs.map((p) => p.text), ref.input_ids);
  const full = await session(folder, 'itm_model.onnx');
  const vision = await session(folder, 'itm_vision.onnx');
  const fusion = await session(folder, 'itm_fusion.onnx');
  check('itm_model io', full.inputNames.join() === 'pixel_values,input_ids,attention_mask' && full.outputNames.join() === 'itm_logits');
  check('itm_vision io', vision.inputNames.join() === 'pixel_values' && vision.outputNames.join() === 'image_embeds');
  check('itm_fusion io', fusion.inputNames.join() === 'image_embeds,input_ids,attention_mask' && fusion.outputNames.join() === 'itm_logits');
  const px = await pixels(folder, ref.images);
  const emb = (await vision.run({ pixel_values: px.tensor })).image_embeds;
  close('itm image_embeds', emb.data, ref.image_embeds);
  const [, n, d] = emb.dims;
  const rows = ref.pairs.map((p) => p.image);
  const gathered = new Float32Array(rows.length * n * d);
  rows.forEach((r, i) => gathered.set(emb.data.subarray(r * n * d, (r + 1) * n * d), i * n * d));
  const ids = int64(ref.input_ids);
  const mask = int64(ref.attention_mask);
  const split = await fusion.run({ image_embeds: new ort.Tensor('float32', gathered, [rows.length, n, d]), input_ids: ids, attention_mask: mask });
  close('itm_fusion itm_logits', split.itm_logits.data, ref.itm_logits);
  const pxRows = new Float32Array(rows.length * px.items[0].length);
  rows.forEach((r, i) => pxRows.set(px.items[r], i * px.items[0].length));
  const whole = await full.run({ pixel_values: new ort.Tensor('float32', pxRows, [rows.length, 3, px.side, px.side]), input_ids: ids, attention_mask: mask });
  close('itm_model itm_logits', whole.itm_logits.data, ref.itm_logits);
  const p = ref.pairs.map((_, i) => {
    const [a, b] = [whole.itm_logits.data[2 * i], whole.itm_logits.data[2 * i + 1]];
    return 1 / (1 + Math.exp(a - b));
  });
  close('itm p_match', p, ref.p_match);
}

function argmaxLast(logits) {
  const [b, t, v] = logits.dims;
  return Array.from({ length: b }, (_, i) => {
    const off = (i * t + t - 1) * v;
    let best = 0;
    for (let k = 1; k < v; k++) if (logits.data[off + k] > logits.data[off + best]) best = k;
    return best;
  });
}

// `step(fed, cache)` gets the tokens fed so far (every row the same length: a finished row is fed
// pad_token_id, which nothing reads) and returns logits and the new cache.
async function greedyDecode(step, batch, gen, maxLength) {
  const seqs = Array.from({ length: batch }, () => [gen.decoder_start_token_id]);
  const fed = seqs.map((s) => [...s]);
  const done = new Array(batch).fill(false);
  let cache = null;
  for (let s = 1; s < maxLength && !done.every(Boolean); s++) {
    const { logits, presents } = await step(fed, cache);
    cache = presents;
    argmaxLast(logits).forEach((tokId, i) => {
      fed[i].push(done[i] ? gen.pad_token_id : tokId);
      if (done[i]) return;
      seqs[i].push(tokId);
      if (tokId === gen.eos_token_id) done[i] = true;
    });
  }
  return seqs;
}

async function verifyCaptioner(folder) {
  const ref = readJson(path.join(folder, 'reference.json'));
  const gen = readJson(path.join(folder, 'generation_config.json'));
  const cfg = readJson(path.join(folder, 'config.json'));
  const { n_layer: layers, n_head: heads, n_embd: dim } = cfg.decoder;
  const encoder = await session(folder, 'encoder_model.onnx');
  const merged = await session(folder, 'decoder_model_merged.onnx');
  const plain = await session(folder, 'decoder_model.onnx');
  const withPast = await session(folder, 'decoder_with_past_model.onnx');
  const pastNames = Array.from({ length: layers }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]).flat();
  const presentNames = Array.from({ length: layers }, (_, i) => [`present.${i}.key`, `present.${i}.value`]).flat();
  check('encoder io', encoder.inputNames.join() === 'pixel_values' && encoder.outputNames.join() === 'last_hidden_state');
  check('merged io', merged.inputNames.join() === ['input_ids', 'encoder_hidden_states', ...pastNames, 'use_cache_branch'].join() &&
    merged.outputNames.join() === ['logits', ...presentNames].join());
  check('decoder_model io', plain.inputNames.join() === 'input_ids,encoder_hidden_states' && plain.outputNames.join() === ['logits', ...presentNames].join());
  check('decoder_with_past io', withPast.inputNames.join() === ['input_ids', 'encoder_hidden_states', ...pastNames].join());
  const px = await pixels(folder, ref.images);
  const enc = (await encoder.run({ pixel_values: px.tensor })).last_hidden_state;
  close('encoder last_hidden_state', enc.data, ref.last_hidden_state);
  const batch = ref.images.length;
  const lastIds = (seqs) => int64(seqs.map((s) => [s[s.length - 1]]));
  const collect = (out) => ({ logits: out.logits, presents: presentNames.map((n) => out[n]) });
  const emptyPast = () => Object.fromEntries(pastNames.map((n) => [n, new ort.Tensor('float32', new Float32Array(0), [batch, heads, 0, dim / heads])]));
  const first = await plain.run({ input_ids: int64(ref.images.map(() => [gen.decoder_start_token_id])), encoder_hidden_states: enc });
  close('decoder_model first-step logits', first.logits.data, ref.first_step_logits);
  const mergedFirst = await merged.run({ input_ids: int64(ref.images.map(() => [gen.decoder_start_token_id])), encoder_hidden_states: enc,
    ...emptyPast(), use_cache_branch: new ort.Tensor('bool', Uint8Array.from([0]), [1]) });
  close('merged first-step logits (zero-length past)', mergedFirst.logits.data, ref.first_step_logits);
  const same = (name, seqs) => check(name, JSON.stringify(seqs) === JSON.stringify(ref.generated_ids), JSON.stringify(seqs.map((s) => s.length)));
  const maxLength = gen.max_length;
  same('greedy with decoder_model_merged', await greedyDecode(async (seqs, cache) => collect(await merged.run({
    input_ids: lastIds(seqs), encoder_hidden_states: enc,
    ...(cache ? Object.fromEntries(pastNames.map((n, i) => [n, cache[i]])) : emptyPast()),
    use_cache_branch: new ort.Tensor('bool', Uint8Array.from([cache ? 1 : 0]), [1]),
  })), batch, gen, maxLength));
  same('greedy with decoder_model + decoder_with_past_model', await greedyDecode(async (seqs, cache) => collect(cache
    ? await withPast.run({ input_ids: lastIds(seqs), encoder_hidden_states: enc, ...Object.fromEntries(pastNames.map((n, i) => [n, cache[i]])) })
    : await plain.run({ input_ids: lastIds(seqs), encoder_hidden_states: enc })), batch, gen, maxLength));
  // No cache: the whole prefix each step (rows of one batch have equal length while any is running).
  same('greedy with decoder_model only (no cache)', await greedyDecode(async (seqs) => collect(
    await plain.run({ input_ids: int64(seqs), encoder_hidden_states: enc })), batch, gen, maxLength));
  // A dummy (non-empty) past with use_cache_branch=false is ignored.
  const dummy = Object.fromEntries(pastNames.map((n) => [n, new ort.Tensor('float32', new Float32Array(batch * dim).fill(0.5), [batch, heads, 1, dim / heads])]));
  const ignored = await merged.run({ input_ids: int64(ref.images.map(() => [gen.decoder_start_token_id])), encoder_hidden_states: enc,
    ...dummy, use_cache_branch: new ort.Tensor('bool', Uint8Array.from([0]), [1]) });
  close('merged ignores past when use_cache_branch=false', ignored.logits.data, ref.first_step_logits);
  const tok = new Tokenizer(readJson(path.join(folder, 'tokenizer.json')), readJson(path.join(folder, 'tokenizer_config.json')));
  const decoded = ref.generated_ids.map((ids) => tok.decode(ids, { skip_special_tokens: true }));
  check('tokenizer decode = reference captions', JSON.stringify(decoded) === JSON.stringify(ref.captions), JSON.stringify(decoded));
}

const folders = { 'shapes-clip': verifyClip, 'shapes-itm': verifyItm, 'shapes-captioner': verifyCaptioner };
for (const [name, verify] of Object.entries(folders)) {
  const folder = path.join(root, name);
  if (!fs.existsSync(folder)) {
    check(`${name} exists`, false);
    continue;
  }
  console.log(`# ${name}`);
  try {
    await verify(folder);
  } catch (err) {
    check(`${name} ran`, false, err instanceof Error ? err.message : String(err));
  }
}
console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
