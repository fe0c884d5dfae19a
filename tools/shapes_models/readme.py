"""models/README.md, written by tools/train_shapes.py with the figures of the run that made the models."""
from __future__ import annotations

from . import tokenizer as tok
from .train import ITM_NEGATIVES


def pct(x: float) -> str:
    return f'{100 * x:.1f}%'


def render(trunk: dict, clip: dict, itm: dict, cap: dict, timings: dict, sizes: dict, setup: dict, dims: dict,
           args) -> str:
    kib = {k: f'{v / 1024:.0f} KiB' for k, v in sizes.items()}
    minutes = timings['total'] / 60
    kinds = itm['per_kind']
    web = itm['dataset_noise']
    kind_rows = '\n'.join(
        f"| {k} | {v['count']} | {v['auc']:.4f} | {pct(v['rejected_at_0.5'])} |" for k, v in kinds.items())
    web_rows = '\n'.join(
        f"| {k} | {v['count']} | {v['auc']:.4f} | {pct(v['rejected_at_0.5'])} |"
        for k, v in web.items() if isinstance(v, dict))
    trunk_rows = '\n'.join(
        f"| {k.replace('_objects', '')} | {v['count']} | {pct(v['pair_accuracy'])} | {pct(v['shape_accuracy'])} | "
        f"{pct(v['size_accuracy'])} |" for k, v in trunk.items())
    examples = '\n'.join(f'- `{c}`' for c in cap['examples'])
    rg, rn = cap['relations_greedy'], cap['relations_nucleus']
    neg = {k: f'{100 * w:.0f}%' for k, w in ITM_NEGATIVES.items()}
    if args.keep_itm:
        warm = ' These are the weights of an earlier training, kept as they were (`--keep-itm`).'
    elif 'itm' in args.warm_start:
        warm = (' Stage 1 was not run again: stage 2 started from the shapes-itm committed at the time (`--warm-start '
                'itm`; DEVELOPERS.md says which weights the committed models started from).')
    else:
        warm = ''
    warm_cap = (' Warm-started from the previous shapes-captioner (`--warm-start captioner`): blocks it lacked '
                'started as identities.' if 'captioner' in args.warm_start else '')
    d_itm, d_cap = dims['itm_dim'], dims['cap_dim']
    h_cap, l_cap = dims['cap_heads'], dims['cap_layers']
    hd_cap = d_cap // h_cap
    n_tok = dims['image_tokens']
    rest = timings['total'] - timings['trunk'] - timings['clip'] - timings['itm'] - timings['captioner']
    if args.reuse_trunk:
        kept = 'shapes-clip and shapes-itm' if args.keep_itm else 'shapes-clip'
        run_line = (f"Training times: the shared vision trunk {timings['trunk']:.0f} s and {kept} as measured when they were\n"
                    f"first trained (2-core development machine, 2 torch threads, no other load). The rest was retrained\n"
                    f"later on the same trunk (`--reuse-trunk`: read back from `shapes-clip/onnx/vision_model.onnx`;\n"
                    f"{args.threads} torch thread{'s' if args.threads != 1 else ''}, the machine otherwise nearly idle); data, measurement and export {rest:.0f} s;")
    else:
        run_line = (f"Whole run: {minutes:.1f} minutes on the 2-core development machine ({setup['threads']} torch threads, torch\n"
                    f"{setup['torch']}, no GPU, no other load): data {timings['data']:.0f} s (about 30 s when the splits are not\n"
                    f"generated yet), shared vision trunk {timings['trunk']:.0f} s, the three models as in the table, measurement and\n"
                    f"export {rest - timings['data']:.0f} s;")
    return f"""# Demo models

Three small models for the [shapes demo domain](../datasets/README.md), in the folder layouts vlcurate
reads (DESIGN.md, "Model folder layouts"). They are trained on the shapes **train** split (seed 1) by
`tools/train_shapes.py` with Debian's `python3-torch`, exported to ONNX (opset 17, fp32, dynamic batch and
sequence axes), and measured on the **test** split (seed 3). Nobody needs Python to use them; to retrain,
see [DEVELOPERS.md](../DEVELOPERS.md#retraining-the-demo-models). This file is written by that script.

For real-size models, e.g. the BLIP paper's own CapFilt filter and captioner, export the checkpoints
into the same layouts with [tools/export](../tools/export/README.md) (README, "Using the BLIP paper's
CapFilt models"): one folder holds BLIP's ITC and ITM graphs, another its captioner.

| folder | role | graphs | size | test-split quality | train time |
|---|---|---|---|---|---|
| `shapes-clip` | ITC dual encoder (CLIP layout) | `onnx/vision_model.onnx`, `onnx/text_model.onnx` | {kib['shapes-clip']} | image-to-text recall@1 of 100: **{clip['i2t_recall_at_1_of_100_distinct_distractors']:.3f}** | {timings['clip']:.0f} s |
| `shapes-itm` | ITM fusion encoder (vlcurate layout) | `onnx/itm_model.onnx`, `onnx/itm_vision.onnx` + `onnx/itm_fusion.onnx` | {kib['shapes-itm']} | ROC-AUC, true vs. the dataset's mismatch + swap captions: **{web['auc_mismatch_and_swap']:.4f}** | {timings['itm']:.0f} s |
| `shapes-captioner` | captioner (optimum vision encoder-decoder layout) | `onnx/encoder_model.onnx`, `onnx/decoder_model_merged.onnx`, `onnx/decoder_model.onnx` + `onnx/decoder_with_past_model.onnx` | {kib['shapes-captioner']} | greedy captions naming exactly the right objects: **{pct(cap['objects_exact'])}** | {timings['captioner']:.0f} s |

{run_line}
{setup['train_images']} train images, {setup['test_images']} test images. Each folder also holds `quality.json`
(every figure below) and `reference.json` (PyTorch outputs for parity tests).

## Shared pieces

**Images.** 128 px renders are resized to 64 x 64 (bicubic) and normalised with CLIP's mean and std
(`preprocessor_config.json`). The three models share one vision trunk, a 5-layer CNN (`[B,3,64,64]` ->
128 channels on an 8 x 8 grid of 8-px cells, batch norm folded in at export). It is trained first and
alone ({setup['trunk_epochs']} epochs) with a training-only dense head that names, for each grid cell, the
colour-shape pair (or background) and the size of the object under it, taken from the ground-truth
boxes. It is then frozen and copied into every model; each folder carries its own copy of the weights.
How well it knows the test objects (dense head at the cell holding each object's box centre):

| objects | count | colour-shape pair | shape | size |
|---|---|---|---|---|
{trunk_rows}

**Tokenizer** (`tokenizer.json`, identical in the three folders). A Hugging Face tokenizers JSON:
`Lowercase` normaliser, `Whitespace` pre-tokenizer (`\\w+|[^\\w\\s]+`), a `WordPiece` model whose
vocabulary is the 37 whole words of the shapes captions (commas included, no `##` pieces, so any other
word is `<unk>`; WordPiece because `@huggingface/tokenizers` has no WordLevel), `TemplateProcessing`
adding `<|startoftext|>` ... `<|endoftext|>`, `WordPiece` decoder. {tok.VOCAB_SIZE} ids:

| token | id |
|---|---|
| `<pad>` | {tok.PAD_ID} |
| `<unk>` | {tok.UNK_ID} |
| the words, in sorted order | {tok.TOKEN_ID[tok.WORDS[0]]} to {tok.TOKEN_ID[tok.WORDS[-1]]} |
| `<\\|startoftext\\|>` (BOS, decoder start) | {tok.BOS_ID} |
| `<\\|endoftext\\|>` (EOS) | {tok.EOS_ID} |

`model_max_length` is {tok.MAX_LENGTH} (the longest shapes caption is 24 words + 2 markers), which is also
every model's number of position embeddings: never feed more than {tok.MAX_LENGTH} tokens; truncation must keep
`<|endoftext|>` last. Pad on the right with `<pad>` and `attention_mask` 0. EOS has the highest id, as in
CLIP, so "argmax of input_ids" finds it too.

## shapes-clip (ITC)

| graph | inputs | outputs |
|---|---|---|
| `onnx/vision_model.onnx` | `pixel_values` float32 `[B,3,64,64]` | `image_embeds` float32 `[B,128]` |
| `onnx/text_model.onnx` | `input_ids` int64 `[B,T]`, `attention_mask` int64 `[B,T]` | `text_embeds` float32 `[B,128]` |

Embeddings are not normalised (like CLIP's projection outputs); the score is the cosine.
`config.json` has `model_type: "clip"`, `projection_dim` 128, `logit_scale_init_value` and the trained
`logit_scale` (its exp is {clip['logit_scale_exp']:.1f}), and `text_config` / `vision_config`.
The text tower is a 2-layer causal transformer (width 128, 4 heads) that **pools at the last position
whose `attention_mask` is 1**, i.e. the `<|endoftext|>` of a right-padded sequence (with the causal mask,
padding after it cannot change the result); then a linear projection. The vision tower is the trunk, a
1x1 reduction to 16 channels, flattened (so positions are kept), and an MLP to 128.

Training: the trunk frozen; contrastive loss over batches of 128 images in both directions, with one
extra hard negative text per image (a colour, shape or size swap, a colour exchange between two objects,
or a wrong spatial relation); captions of another image with exactly the same objects are not used as
negatives. {args.clip_epochs} epochs, AdamW, cosine schedule.

Test split ({setup['test_images']} images, 5 x {setup['test_images']} queries, one per ground-truth caption slot):

| measure | value |
|---|---|
| **image-to-text recall@1 among 100 candidates**: the image's caption against the same caption slot of the next 99 images whose objects differ | **{clip['i2t_recall_at_1_of_100_distinct_distractors']:.4f}** |
| the same in fixed blocks of 100 images, a hit when the top caption names exactly the image's objects | {clip['i2t_recall_at_1_of_100_same_objects']:.4f} |
| the same in fixed blocks, strict: the top caption must be the image's own | {clip['i2t_recall_at_1_of_100']:.4f} |
| text-to-image recall@1 among 100 (fixed blocks, strict) | {clip['t2i_recall_at_1_of_100']:.4f} |
| mean cosine: true caption / colour-or-shape swap / other image's caption | {clip['mean_cosine_true']:.3f} / {clip['mean_cosine_swap']:.3f} / {clip['mean_cosine_mismatch']:.3f} |
| ROC-AUC of the cosine, true caption vs. its colour-or-shape swap | {clip['auc_true_vs_swap']:.4f} |

About a third of the scenes hold a single object, so a block of 100 often holds two images with the same
object whose captions are equally true for both; the strict figure counts those ties as misses, which
caps it near 0.9 for any model.

## shapes-itm (ITM)

| graph | inputs | outputs |
|---|---|---|
| `onnx/itm_model.onnx` | `pixel_values` float32 `[B,3,64,64]`, `input_ids` int64 `[B,T]`, `attention_mask` int64 `[B,T]` | `itm_logits` float32 `[B,2]` |
| `onnx/itm_vision.onnx` | `pixel_values` float32 `[B,3,64,64]` | `image_embeds` float32 `[B,{n_tok},{d_itm}]` |
| `onnx/itm_fusion.onnx` | `image_embeds` float32 `[B,{n_tok},{d_itm}]`, `input_ids` int64 `[B,T]`, `attention_mask` int64 `[B,T]` | `itm_logits` float32 `[B,2]` |

Row *i* of the image input is paired with row *i* of the text inputs. p(match) = softmax(itm_logits)[1].
The split form has the same weights and gives the same logits as `itm_model.onnx`. Image tokens: the
frozen trunk, 2 x 2 grid cells per token ({n_tok} tokens), a linear map to {d_itm}, a learned position embedding
(started small, std 0.02; the position targets below make it carry where objects are) and one
self-attention layer. Fusion: token + position embeddings, {dims['itm_layers']} pre-LN blocks (bidirectional
self-attention with the padding mask, cross-attention to the image tokens, MLP), read at position 0
(`<|startoftext|>`), linear head to 2 logits.

Training: per image 1 true caption and 3 negatives (true and false weighted equally) drawn from: another
image's caption ({neg['mismatch']}), colour swap ({neg['colour']}), shape swap ({neg['shape']}), size swap ({neg['size']}), colour exchange between two
objects ({neg['exchange']}), wrong relation ({neg['relation']}), two objects trading places around a relation ({neg['order']}, "A above B" ->
"B above A"), one object named twice in place of another ({neg['duplicate']}), boilerplate alt-text ({neg['boilerplate']}), empty text ({neg['empty']}). Swaps change one object's
words so that the named object is not in the scene, as the demo's swap noise does. Training-only heads
(`tools/shapes_models/targets.py`) learn, per token: at the shape word of every `<size> <colour> <shape>`
phrase, whether that object is in the image and where its box centre is; at the last word of every relation
phrase, whether it holds by the generator's rule and where its subject and object are. Two stages on cached
trunk features: {args.itm_object_epochs} epochs of objects only (2 blocks; negatives without order swaps; the presence head
only), then {args.itm_epochs} epochs of everything above, with a third block that starts as an identity. Trained
with every loss from the start it learned relations but lost colour (a colour swap scored like the true
caption); learning the objects first keeps them.{warm}

Relations (issue 17). The first shapes-itm scored relation swaps at ROC-AUC 0.84 (own swaps) and objects
trading places at 0.49, i.e. it could tell "above" from "to the left of" (the dominant axis is symmetric)
but not which object is above: nothing taught it to fetch where a named object is, and its image position
embedding had stayed a few percent of the signal. The position and relation targets above, with order swaps
among the negatives and a third block, made relations learnable (before and after in the README's demo section).

Test split: positives are all 5 ground-truth captions of each image ({itm['positives']}); mean p(match)
of a true caption {itm['mean_p_true']:.3f}, {pct(itm['accuracy_true_at_0.5'])} of them at p >= 0.5.

The test split's own noisy web captions (written by the dataset generator with `--noise 1`):

| dataset noise kind | count | ROC-AUC vs. true | rejected at p < 0.5 |
|---|---|---|---|
{web_rows}

**ROC-AUC, true captions vs. the dataset's mismatch + swap web captions: {web['auc_mismatch_and_swap']:.4f}.**

Our own negatives, one per image and kind:

| negative kind | count | ROC-AUC vs. true | rejected at p < 0.5 |
|---|---|---|---|
{kind_rows}

ROC-AUC with all of these negatives together: {itm['auc_all_negatives']:.4f}; mismatch + colour + shape swaps
only: {itm['auc_mismatch_colour_shape']:.4f}. Wrong spatial relations (the right objects, one relation
wrong; the dataset's `relation` noise kind) and objects trading places are the hardest negatives: ROC-AUC
{kinds['relation']['auc']:.4f} for our own relation swaps, {web['relation']['auc']:.4f} for the dataset's and
{kinds['order']['auc']:.4f} for the order swaps. Against only the true captions that state a relation (the same sentence
forms; {itm['relation_positives']} captions, {pct(itm['accuracy_true_with_relation_at_0.5'])} of them at p >= 0.5): **{kinds['relation']['auc_vs_true_with_relation']:.4f}** for
relation swaps, **{web['relation']['auc_vs_true_with_relation']:.4f}** for the dataset's, **{kinds['order']['auc_vs_true_with_relation']:.4f}** for order swaps.

## shapes-captioner

| graph | inputs | outputs |
|---|---|---|
| `onnx/encoder_model.onnx` | `pixel_values` float32 `[B,3,64,64]` | `last_hidden_state` float32 `[B,{n_tok},{d_cap}]` |
| `onnx/decoder_model_merged.onnx` | `input_ids` int64 `[B,T]`, `encoder_hidden_states` float32 `[B,{n_tok},{d_cap}]`, `past_key_values.{{i}}.key` / `.value` float32 `[B,{h_cap},P,{hd_cap}]` for i = 0..{l_cap - 1}, `use_cache_branch` bool `[1]` | `logits` float32 `[B,T,{tok.VOCAB_SIZE}]`, `present.{{i}}.key` / `.value` float32 `[B,{h_cap},P+T,{hd_cap}]` |
| `onnx/decoder_model.onnx` | `input_ids`, `encoder_hidden_states` | `logits`, `present.{{i}}.key` / `.value` `[B,{h_cap},T,{hd_cap}]` |
| `onnx/decoder_with_past_model.onnx` | `input_ids`, `encoder_hidden_states`, `past_key_values.{{i}}.key` / `.value` | `logits`, `present.{{i}}.key` / `.value` |

Only the decoder's self-attention is cached (as for GPT-2 in optimum's vit-gpt2 export); cross-attention
reads `encoder_hidden_states` at every step. Positions continue from P (the cache length), so P + T must
stay within {tok.MAX_LENGTH}. There is no decoder `attention_mask`: decode a batch in lockstep and feed
finished rows any token (their outputs are ignored; rows never see each other).

**The merged graph** is one graph, not an `If` node: it always concatenates the past with the new keys and
values, which for a zero-length past (P = 0) is exactly the no-past computation. `use_cache_branch` is a
real input: the graph keeps the first `P * use_cache_branch` past positions (an `index_select` with
`arange`), so with `false` any past tensors fed (zero-length, as optimum and transformers.js feed at step 0,
or dummies) are ignored, and with `true` the whole past is used. Step 0: `input_ids` = `[[{tok.BOS_ID}]]` per row
(`decoder_start_token_id`), past tensors `[B,{h_cap},0,{hd_cap}]`, `use_cache_branch` false; later steps: the last
token, the previous `present.*`, `use_cache_branch` true. The legacy pair is the same module exported
without and with past inputs; `decoder_model.onnx` alone also works without any cache (feed the whole
prefix each step).

`config.json`: `model_type: "vision-encoder-decoder"`, `decoder_start_token_id` = `bos_token_id` =
{tok.BOS_ID}, `eos_token_id` {tok.EOS_ID}, `pad_token_id` {tok.PAD_ID}; `decoder` in GPT-2 names: `n_layer` {l_cap} (cached
layers), `n_head` {h_cap}, `n_embd` {d_cap} (head size {hd_cap}), `n_positions` {tok.MAX_LENGTH}, `vocab_size` {tok.VOCAB_SIZE}.
`generation_config.json` has the same ids and `max_length` {tok.MAX_LENGTH}. `preprocessor_config.json` is in
the ViTImageProcessor form (`size: {{height: 64, width: 64}}`, no crop). The encoder's image tokens are
built as in shapes-itm (own weights, width {d_cap}); the decoder is {l_cap} pre-LN blocks (causal self-attention,
cross-attention, MLP of {2 * d_cap}), final LayerNorm, untied LM head. Trained with teacher forcing on all 5
captions of every image, {args.captioner_epochs} epochs on cached trunk features; the words that choose a
spatial relation ("to", "above", "below", "next", then "left" or "right") weigh
{args.captioner_relation_weight:g} times the other tokens in the loss: they are few, and they decide whether a
caption is right. Training-only heads (`tools/shapes_models/targets.py`, weight
{args.captioner_position_weight:g}) learn, at the shape word of each object it has named, where that object is, and at
the last word of each relation, where its subject and the object it is about to name are.{warm_cap} The
image tokens' position embedding starts as 2-D sine-cosine codes as large as the content.

Relations (issue 17): the first captioner (a position embedding started small, no position targets) got
47% of its greedy and 33% of its nucleus relation captions right; sine-cosine position codes and the
relation words weighted 3x brought that to 59% and 38%; the position targets to the figures below.

Test split, greedy decoding ({setup['test_images']} images):

| measure | value |
|---|---|
| **captions naming exactly the right objects** (the set of colour-shape pairs parsed from the caption equals the ground truth's) | **{pct(cap['objects_exact'])}** |
| the same, sizes included | {pct(cap['objects_exact_with_size'])} |
| fully correct: one of the captions the dataset's templates can write for the scene (objects, sizes and every spatial relation right) | {pct(cap['fully_correct'])} |
| captions that are word for word one of the image's 5 references | {pct(cap['verbatim_reference'])} |
| **relations right**, of the greedy captions that state a spatial relation (every relation right by the generator's rule, and the right objects; datasets/shapes/relation-judge.ts) | **{pct(rg['accuracy'])}** of {rg['stating_a_relation']} |
| the same for nucleus samples as the demo draws them (3 per image, top-p 0.9, repetition penalty 1.1) | {pct(rn['accuracy'])} of {rn['stating_a_relation']} |

Spatial relations are where the captioner errs most; colours, shapes and sizes are nearly always right.

First test images:

{examples}

## reference.json

Each folder has `reference/*.png` (three test images with one, two and three objects, stored as 64 x 64
PNGs, which is the model input size, so preprocessing reduces to rescale and normalise) and
`reference.json` with the texts, their token ids and the PyTorch outputs of the exported weights:
`image_embeds`, `text_embeds` and `cosine` (clip); `image_embeds` of `itm_vision`, `itm_logits` and
`p_match` per (image, text) pair (itm); `last_hidden_state`, `first_step_logits`, greedy `generated_ids`
(start and end tokens included) and the decoded `captions` (captioner). `tools/verify_shapes_onnx.mjs`
checks every graph against them with onnxruntime-node to 1e-4, the tokenizer with
`@huggingface/tokenizers`, and that the three decoder forms give the same greedy ids.
"""
