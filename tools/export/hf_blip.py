"""Input from Hugging Face transformers' BLIP classes (`BlipForImageTextRetrieval`,
`BlipForConditionalGeneration`): their weights are copied into salesforce/BLIP's own modules (the HF
classes are a port of them, with renamed vision keys), which the exporters then export as for an original
checkpoint; and the HF model itself is run on the check images and texts, so that the copy is verified
against transformers' own forward pass before anything is exported.

NOT RUN where these tools were developed (no transformers there): this path relies on the checks below
and on the export's self-check. `verify_against_hf` fails the export when BLIP's modules with the copied
weights differ from the HF model by more than HF_TOLERANCE, or greedy captions differ.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from blip_code import BlipCode
from references import TEXT_LENGTH, caption_prefix
from shims.bert_tokenizer import register_vocab

HF_TOLERANCE = 1e-4

# HF BlipVisionModel key -> salesforce/BLIP VisionTransformer key (after the "vision_model." prefix).
_VISION_KEYS = [
    (r"^embeddings\.class_embedding$", "cls_token"),
    (r"^embeddings\.position_embedding$", "pos_embed"),
    (r"^embeddings\.patch_embedding\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.qkv\.", r"blocks.\1.attn.qkv."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.projection\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.(\d+)\.layer_norm1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.(\d+)\.layer_norm2\.", r"blocks.\1.norm2."),
    (r"^encoder\.layers\.(\d+)\.mlp\.fc(\d)\.", r"blocks.\1.mlp.fc\2."),
    (r"^post_layernorm\.", "norm."),
]


def blip_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF BLIP state dict -> salesforce/BLIP names (text encoder/decoder, projections and heads keep theirs)."""
    out = {}
    for key, value in hf_state.items():
        if key.startswith("vision_model."):
            rest = key[len("vision_model."):]
            for pattern, repl in _VISION_KEYS:
                if re.search(pattern, rest):
                    out["visual_encoder." + re.sub(pattern, repl, rest)] = value
                    break
            else:
                raise SystemExit(f"unexpected vision key in the transformers checkpoint: {key}")
        else:
            out[key] = value
    return out


def _load_hf(kind: str, name: str) -> tuple[Any, Any]:
    import transformers  # the real package: this path needs it

    cls = transformers.BlipForImageTextRetrieval if kind == "itm" else transformers.BlipForConditionalGeneration
    model = cls.from_pretrained(name).eval()
    processor = transformers.BlipProcessor.from_pretrained(name)
    return model, processor


def build_from_hf(code: BlipCode, kind: str, name: str, prompt: str = "a picture of ") -> tuple[Any, Any, int]:
    """(BLIP module with the HF weights, the HF model, image size) for `kind` 'itm' or 'caption'."""
    hf, processor = _load_hf(kind, name)
    vcfg, tcfg = hf.config.vision_config, hf.config.text_config
    vit = {768: "base", 1024: "large"}.get(vcfg.hidden_size)
    if vit is None:
        raise SystemExit(f"{name}: vision hidden size {vcfg.hidden_size} is neither ViT-B (768) nor ViT-L (1024)")
    tmp = Path(tempfile.mkdtemp(prefix="blip-hf-"))
    processor.tokenizer.save_pretrained(str(tmp))
    register_vocab("bert-base-uncased", str(tmp / "vocab.txt"))
    med = {
        "architectures": ["BertModel"], "hidden_act": tcfg.hidden_act, "hidden_size": tcfg.hidden_size,
        "num_hidden_layers": tcfg.num_hidden_layers, "num_attention_heads": tcfg.num_attention_heads,
        "intermediate_size": tcfg.intermediate_size, "max_position_embeddings": tcfg.max_position_embeddings,
        "layer_norm_eps": tcfg.layer_norm_eps, "vocab_size": tcfg.vocab_size, "pad_token_id": tcfg.pad_token_id,
        "encoder_width": vcfg.hidden_size, "add_cross_attention": True, "model_type": "bert",
        "attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0, "initializer_range": 0.02, "type_vocab_size": 2,
    }
    (tmp / "med_config.json").write_text(json.dumps(med))
    size = vcfg.image_size
    if kind == "itm":
        model = code.blip_itm.BLIP_ITM(med_config=str(tmp / "med_config.json"), image_size=size, vit=vit, embed_dim=hf.config.image_text_hidden_size)
    else:
        model = code.blip.BLIP_Decoder(med_config=str(tmp / "med_config.json"), image_size=size, vit=vit, prompt=prompt)
    # transformers' BLIP vision LayerNorms use vision_config.layer_norm_eps (1e-5), BLIP's ViT 1e-6.
    for module in model.visual_encoder.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.eps = vcfg.layer_norm_eps
    state = blip_state_dict(hf.state_dict())
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids") and ".pooler." not in k]
    if missing or unexpected:
        raise SystemExit(f"{name}: the weights do not fit BLIP's modules: missing {missing[:8]}, unexpected {unexpected[:8]}")
    tok = model.tokenizer
    if tok.bos_token_id != tcfg.bos_token_id or tok.sep_token_id != tcfg.sep_token_id:
        raise SystemExit(f"{name}: tokenizer ids [DEC]={tok.bos_token_id} [SEP]={tok.sep_token_id} differ from text_config's bos/sep ids {tcfg.bos_token_id}/{tcfg.sep_token_id}")
    return model.eval(), hf, size


@torch.no_grad()
def verify_itm_against_hf(hf: Any, model: Any, pixels: torch.Tensor, texts: list[str]) -> list[str]:
    """transformers' own forward vs BLIP's modules with the copied weights: ITC cosines and [ENC] ITM logits."""
    tok = model.tokenizer
    text = tok(texts, padding="max_length", truncation=True, max_length=TEXT_LENGTH, return_tensors="pt")
    failures = []
    hf_cos = hf(input_ids=text.input_ids, attention_mask=text.attention_mask, pixel_values=pixels, use_itm_head=False).itm_score
    ours_cos = model(pixels, texts, match_head="itc")
    d = float((hf_cos - ours_cos).abs().max())
    print(f"transformers vs BLIP modules: largest |ITC cosine diff| {d:.2e}")
    if d > HF_TOLERANCE:
        failures.append(f"ITC cosine differs from transformers' by {d:.2e}")
    enc_ids = text.input_ids.clone()
    enc_ids[:, 0] = tok.enc_token_id
    states = model.visual_encoder(pixels)
    for i in range(pixels.shape[0]):
        rep = pixels[i : i + 1].repeat(len(texts), 1, 1, 1)
        hf_logits = hf(input_ids=enc_ids, attention_mask=text.attention_mask, pixel_values=rep, use_itm_head=True).itm_score
        image = states[i : i + 1].repeat(len(texts), 1, 1)
        out = model.text_encoder(enc_ids, attention_mask=text.attention_mask, encoder_hidden_states=image,
                                 encoder_attention_mask=torch.ones(image.shape[:-1], dtype=torch.long), return_dict=True)
        ours = model.itm_head(out.last_hidden_state[:, 0, :])
        d = float((F.softmax(hf_logits, -1) - F.softmax(ours, -1)).abs().max())
        print(f"transformers vs BLIP modules, image {i}: largest |ITM p diff| {d:.2e}")
        if d > HF_TOLERANCE:
            failures.append(f"image {i}: ITM p(match) differs from transformers' by {d:.2e}")
    return failures


@torch.no_grad()
def verify_captions_against_hf(hf: Any, model: Any, pixels: torch.Tensor, prompt: str, max_new_tokens: int, reference: list[list[int]]) -> list[str]:
    """Greedy ids from transformers' own text decoder (re-run on the whole sequence) vs the reference ids."""
    prefix = caption_prefix(model.tokenizer, prompt)
    eos = model.tokenizer.sep_token_id
    failures = []
    states = hf.vision_model(pixel_values=pixels)[0]
    for i in range(pixels.shape[0]):
        seq, new = list(prefix), []
        for _ in range(max_new_tokens):
            ids = torch.tensor([seq])
            logits = hf.text_decoder(input_ids=ids, attention_mask=torch.ones_like(ids), encoder_hidden_states=states[i : i + 1], return_dict=True).logits
            nxt = int(torch.argmax(logits[0, -1]))
            new.append(nxt)
            seq.append(nxt)
            if nxt == eos:
                break
        same = new == reference[i]
        print(f"transformers vs BLIP modules, image {i}: {'same' if same else 'DIFFERENT'} greedy ids")
        if not same:
            failures.append(f"image {i}: greedy ids {new} from transformers, {reference[i]} from BLIP's modules")
    return failures
