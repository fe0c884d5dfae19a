"""ONNX export, model-folder metadata files and parity references for the shapes demo models."""
from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from PIL import Image

from . import data, nets
from . import tokenizer as tok
from .train import greedy, text_batch

OPSET = 17
B, T = 'batch_size', 'sequence_length'


def onnx_export(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                axes: dict[str, dict[int, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    declared = [i.name for i in model.graph.input]
    if declared != inputs:
        raise RuntimeError(f'{path.name}: expected inputs {inputs}, the exported graph declares {declared}')
    # Keep the files free of the exporter's local paths and names.
    model.producer_name = 'vlcurate tools/train_shapes.py'
    model.doc_string = ''
    onnx.save(model, str(path))


def write_json(path: Path, content) -> None:
    path.write_text(json.dumps(content, indent=2) + '\n')


def rounded(x) -> list:
    """Tensor -> nested lists of floats with 8 significant digits (ample for a 1e-4 comparison)."""
    arr = np.asarray(x.detach().numpy() if torch.is_tensor(x) else x, dtype=np.float64)
    return json.loads(json.dumps(np.vectorize(lambda v: float(f'{v:.8g}'))(arr).tolist())) if arr.size else arr.tolist()


def clip_preprocessor() -> dict:
    return {
        'image_processor_type': 'CLIPImageProcessor',
        'feature_extractor_type': 'CLIPFeatureExtractor',
        'processor_class': 'CLIPProcessor',
        'do_resize': True,
        'size': {'shortest_edge': data.INPUT_SIZE},
        'resample': 3,
        'do_center_crop': True,
        'crop_size': {'height': data.INPUT_SIZE, 'width': data.INPUT_SIZE},
        'do_rescale': True,
        'rescale_factor': 1 / 255,
        'do_normalize': True,
        'image_mean': data.IMAGE_MEAN,
        'image_std': data.IMAGE_STD,
        'do_convert_rgb': True,
    }


def vit_preprocessor() -> dict:
    """The captioner uses the ViTImageProcessor form (resize straight to height x width, no crop), as
    `nlpconnect/vit-gpt2-image-captioning` does; values match the shared vision trunk's training."""
    return {
        'image_processor_type': 'ViTImageProcessor',
        'feature_extractor_type': 'ViTFeatureExtractor',
        'do_resize': True,
        'size': {'height': data.INPUT_SIZE, 'width': data.INPUT_SIZE},
        'resample': 3,
        'do_center_crop': False,
        'do_rescale': True,
        'rescale_factor': 1 / 255,
        'do_normalize': True,
        'image_mean': data.IMAGE_MEAN,
        'image_std': data.IMAGE_STD,
        'do_convert_rgb': True,
    }


TOKEN_IDS = {'bos_token_id': tok.BOS_ID, 'eos_token_id': tok.EOS_ID, 'pad_token_id': tok.PAD_ID}


def reference_images(folder: Path, test: data.Split, picks: list[int]) -> list[dict]:
    """Save the picked test images as 64x64 PNGs (the model's input size, so preprocessing is only
    rescale + normalise) and describe them."""
    ref = folder / 'reference'
    ref.mkdir(parents=True, exist_ok=True)
    out = []
    for i in picks:
        name = f'{test.keys[i]}.png'
        Image.fromarray(test.images[i]).save(ref / name, optimize=True)
        out.append({'file': f'reference/{name}', 'key': test.keys[i], 'split': 'test (seed 3), 128 px render',
                    'objects': [{k: o[k] for k in ('size', 'color', 'shape')} for o in test.objects[i]],
                    'captions': test.captions[i]})
    return out


def reference_pixels(folder: Path, images: list[dict]) -> torch.Tensor:
    arr = np.stack([np.asarray(Image.open(folder / im['file']).convert('RGB')) for im in images])
    return torch.from_numpy(data.normalise(arr))


REFERENCE_NOTE = (
    'PyTorch outputs of the exported weights, for parity tests of the ONNX graphs (tolerance 1e-4). Images are '
    '64x64 PNGs, already the model input size: pixel_values = (rgb / 255 - image_mean) / image_std, CHW, '
    'float32. Texts are tokenized with tokenizer.json and right-padded with <pad> (id 0) to the longest.')


# ---- shapes-clip ---------------------------------------------------------------------------------------

def export_clip(model: nets.ClipModel, folder: Path, test: data.Split, picks: list[int], quality: dict) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / 'onnx').mkdir(parents=True)
    vision, text = nets.ClipVision(model).eval(), nets.ClipText(model).eval()
    px = torch.from_numpy(data.normalise(test.images[picks]))
    ids, mask = text_batch(['a large red circle', 'a small blue square to the left of a large green star'])
    onnx_export(vision, (px,), folder / 'onnx' / 'vision_model.onnx', ['pixel_values'], ['image_embeds'],
                {'pixel_values': {0: B}, 'image_embeds': {0: B}})
    onnx_export(text, (ids, mask), folder / 'onnx' / 'text_model.onnx', ['input_ids', 'attention_mask'],
                ['text_embeds'], {'input_ids': {0: B, 1: T}, 'attention_mask': {0: B, 1: T}, 'text_embeds': {0: B}})
    text_cfg = model.text
    write_json(folder / 'config.json', {
        'model_type': 'clip',
        'architectures': ['CLIPModel'],
        '_vlcurate': 'shapes demo dual encoder trained by tools/train_shapes.py; the vision tower is a 5-layer CNN '
                     '(8x8 grid of 8 px cells), not a ViT; see models/README.md',
        'projection_dim': 128,
        'logit_scale_init_value': math.log(20.0),
        'logit_scale': float(model.logit_scale.detach()),
        'text_config': {
            'model_type': 'clip_text_model',
            'vocab_size': tok.VOCAB_SIZE,
            'hidden_size': text_cfg.tok.embedding_dim,
            'intermediate_size': 2 * text_cfg.tok.embedding_dim,
            'num_hidden_layers': len(text_cfg.blocks),
            'num_attention_heads': text_cfg.blocks[0].attn.heads,
            'max_position_embeddings': tok.MAX_LENGTH,
            'hidden_act': 'gelu',
            'projection_dim': 128,
            'pooling': 'last token with attention_mask 1 (the <|endoftext|> marker)',
            **TOKEN_IDS,
        },
        'vision_config': {
            'model_type': 'clip_vision_model',
            'image_size': data.INPUT_SIZE,
            'num_channels': 3,
            'patch_size': 8,
            'hidden_size': nets.VisionTrunk.channels,
            'projection_dim': 128,
        },
    })
    write_json(folder / 'preprocessor_config.json', clip_preprocessor())
    tok.write_tokenizer_files(folder)
    images = reference_images(folder, test, picks)
    texts = [test.captions[i][0] for i in picks] + [
        swap_text(test, picks[-1]), 'click to buy', '']
    ids, mask = text_batch(texts)
    with torch.no_grad():
        img = vision(reference_pixels(folder, images))
        txt = text(ids, mask)
    cosine = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    write_json(folder / 'reference.json', {
        'note': REFERENCE_NOTE, 'images': images, 'texts': texts, 'input_ids': ids.tolist(),
        'attention_mask': mask.tolist(), 'image_embeds': rounded(img), 'text_embeds': rounded(txt),
        'cosine': rounded(cosine), 'logit_scale': float(model.logit_scale.detach()),
    })
    write_json(folder / 'quality.json', quality)


def swap_text(test: data.Split, i: int) -> str:
    """A deterministic colour swap of the first caption (first object, first free colour)."""
    caption, o = test.captions[i][0], test.objects[i][0]
    own = {(x['color'], x['shape']) for x in test.objects[i]}
    colour = next(c for c in data.COLORS if (c, o['shape']) not in own)
    return caption.replace(f"{o['size']} {o['color']} {o['shape']}", f"{o['size']} {colour} {o['shape']}")


# ---- shapes-itm ----------------------------------------------------------------------------------------

def export_itm(model: nets.ItmModel, folder: Path, test: data.Split, picks: list[int], quality: dict) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / 'onnx').mkdir(parents=True)
    full, vision, fusion = model.eval(), nets.ItmVision(model).eval(), nets.ItmFusion(model).eval()
    px = torch.from_numpy(data.normalise(test.images[picks[:2]]))
    ids, mask = text_batch(['a large red circle', 'a small blue square to the left of a large green star'])
    text_axes = {'input_ids': {0: B, 1: T}, 'attention_mask': {0: B, 1: T}, 'itm_logits': {0: B}}
    onnx_export(full, (px, ids, mask), folder / 'onnx' / 'itm_model.onnx',
                ['pixel_values', 'input_ids', 'attention_mask'], ['itm_logits'], {'pixel_values': {0: B}, **text_axes})
    onnx_export(vision, (px,), folder / 'onnx' / 'itm_vision.onnx', ['pixel_values'], ['image_embeds'],
                {'pixel_values': {0: B}, 'image_embeds': {0: B}})
    with torch.no_grad():
        emb = vision(px)
    onnx_export(fusion, (emb, ids, mask), folder / 'onnx' / 'itm_fusion.onnx',
                ['image_embeds', 'input_ids', 'attention_mask'], ['itm_logits'], {'image_embeds': {0: B}, **text_axes})
    dim = model.tok.embedding_dim
    write_json(folder / 'config.json', {
        'model_type': 'vlcurate_itm',
        'architectures': ['ShapesItmModel'],
        '_vlcurate': 'shapes demo image-text matching fusion encoder trained by tools/train_shapes.py; '
                     'layout documented in models/README.md',
        'itm_match_index': 1,
        'vocab_size': tok.VOCAB_SIZE,
        'hidden_size': dim,
        'intermediate_size': 2 * dim,
        'num_hidden_layers': len(model.blocks),
        'num_attention_heads': model.blocks[0].attn.heads,
        'max_position_embeddings': tok.MAX_LENGTH,
        'image_size': data.INPUT_SIZE,
        'num_image_tokens': 16,
        'text_pooling': 'position 0 (<|startoftext|>)',
        **TOKEN_IDS,
    })
    write_json(folder / 'preprocessor_config.json', clip_preprocessor())
    tok.write_tokenizer_files(folder)
    images = reference_images(folder, test, picks)
    pairs = []
    for k, i in enumerate(picks):
        pairs += [(k, test.captions[i][0], 'true'), (k, swap_text(test, i), 'colour swap')]
    pairs += [(0, test.captions[picks[1]][0], 'mismatch'), (1, 'IMG_0042.JPG', 'boilerplate'), (2, '', 'empty')]
    for k, i in list(enumerate(picks))[1:]:  # the scenes with two and three objects: one relation swapped
        stating = next(c for c in test.captions[i] if data.relations_correct(c, test.objects[i]) is not None)
        pairs += [(k, stating, 'true'), (k, data.relation_swap(random.Random(k), stating, test.objects[i]), 'relation swap')]
    ids, mask = text_batch([p[1] for p in pairs])
    rows = torch.tensor([p[0] for p in pairs])
    with torch.no_grad():
        img_px = reference_pixels(folder, images)
        emb = vision(img_px)
        logits = fusion(emb[rows], ids, mask)
    write_json(folder / 'reference.json', {
        'note': REFERENCE_NOTE + ' Pair i uses image pairs[i].image; itm_model.onnx takes pixel_values row-aligned '
                'with input_ids, itm_fusion.onnx takes image_embeds row-aligned with input_ids.',
        'images': images,
        'pairs': [{'image': r, 'text': t, 'kind': kind} for r, t, kind in pairs],
        'input_ids': ids.tolist(), 'attention_mask': mask.tolist(),
        'image_embeds': rounded(emb), 'itm_logits': rounded(logits),
        'p_match': rounded(torch.softmax(logits, dim=-1)[:, 1]),
    })
    write_json(folder / 'quality.json', quality)


# ---- shapes-captioner ----------------------------------------------------------------------------------

def export_captioner(model: nets.Captioner, folder: Path, test: data.Split, picks: list[int], quality: dict) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    (folder / 'onnx').mkdir(parents=True)
    layers, heads, dim = model.layers, model.heads, model.dim
    encoder = nets.CaptionEncoder(model).eval()
    px = torch.from_numpy(data.normalise(test.images[picks[:2]]))
    onnx_export(encoder, (px,), folder / 'onnx' / 'encoder_model.onnx', ['pixel_values'], ['last_hidden_state'],
                {'pixel_values': {0: B}, 'last_hidden_state': {0: B, 1: 'encoder_sequence_length'}})
    with torch.no_grad():
        enc = encoder(px)
    ids = torch.tensor([[tok.BOS_ID, 3, 17], [tok.BOS_ID, 3, 30]])
    past_names = [f'past_key_values.{i}.{kv}' for i in range(layers) for kv in ('key', 'value')]
    present_names = [f'present.{i}.{kv}' for i in range(layers) for kv in ('key', 'value')]
    axes = {'input_ids': {0: B, 1: 'decoder_sequence_length'},
            'encoder_hidden_states': {0: B, 1: 'encoder_sequence_length'},
            'logits': {0: B, 1: 'decoder_sequence_length'}}
    past_axes = {n: {0: B, 2: 'past_decoder_sequence_length'} for n in past_names}
    present_axes = {n: {0: B, 2: 'past_decoder_sequence_length + decoder_sequence_length'} for n in present_names}
    onnx_export(nets.CaptionDecoder(model), (ids, enc), folder / 'onnx' / 'decoder_model.onnx',
                ['input_ids', 'encoder_hidden_states'], ['logits', *present_names], {**axes, **present_axes})
    with torch.no_grad():
        _, presents = model.decode(ids, enc, None)
    past = tuple(t for kv in presents for t in kv)
    step = torch.tensor([[5], [6]])
    onnx_export(nets.CaptionDecoderWithPast(model), (step, enc, *past), folder / 'onnx' / 'decoder_with_past_model.onnx',
                ['input_ids', 'encoder_hidden_states', *past_names], ['logits', *present_names],
                {**axes, **past_axes, **present_axes})
    onnx_export(nets.CaptionDecoderMerged(model), (step, enc, *past, torch.tensor([True])),
                folder / 'onnx' / 'decoder_model_merged.onnx',
                ['input_ids', 'encoder_hidden_states', *past_names, 'use_cache_branch'], ['logits', *present_names],
                {**axes, **past_axes, **present_axes})
    ids_cfg = {'decoder_start_token_id': tok.BOS_ID, **TOKEN_IDS}
    write_json(folder / 'config.json', {
        'model_type': 'vision-encoder-decoder',
        'architectures': ['VisionEncoderDecoderModel'],
        '_vlcurate': 'shapes demo captioner trained by tools/train_shapes.py: CNN image encoder (16 tokens) and a '
                     'GPT-2-like decoder with cross-attention; see models/README.md',
        'is_encoder_decoder': True,
        'tie_word_embeddings': False,
        **ids_cfg,
        'max_length': tok.MAX_LENGTH,
        'encoder': {
            'model_type': 'vlcurate_cnn',
            'image_size': data.INPUT_SIZE,
            'num_channels': 3,
            'hidden_size': dim,
            'num_tokens': 16,
        },
        'decoder': {
            'model_type': 'gpt2',
            'vocab_size': tok.VOCAB_SIZE,
            'n_positions': tok.MAX_LENGTH,
            'n_ctx': tok.MAX_LENGTH,
            'n_embd': dim,
            'n_layer': layers,
            'n_head': heads,
            'n_inner': 2 * dim,
            'activation_function': 'gelu',
            'add_cross_attention': True,
            'is_decoder': True,
            **ids_cfg,
        },
    })
    write_json(folder / 'generation_config.json', {**ids_cfg, 'max_length': tok.MAX_LENGTH})
    write_json(folder / 'preprocessor_config.json', vit_preprocessor())
    tok.write_tokenizer_files(folder)
    images = reference_images(folder, test, picks)
    with torch.no_grad():
        enc = encoder(reference_pixels(folder, images))
        generated = greedy(model, enc)
        first, _ = model.decode(torch.full((len(picks), 1), tok.BOS_ID), enc, None)
    write_json(folder / 'reference.json', {
        'note': REFERENCE_NOTE + ' Greedy decoding from decoder_start_token_id, at most max_length tokens, stopping '
                'at eos; generated_ids include the start and end tokens.',
        'images': images,
        'last_hidden_state': rounded(enc),
        'first_step_logits': rounded(first[:, 0]),
        'generated_ids': generated,
        'captions': [tok.decode(g) for g in generated],
    })
    write_json(folder / 'quality.json', quality)
