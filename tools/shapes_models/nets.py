"""The three shapes demo networks, written so that `torch.onnx.export` (tracing, opset 17) gives graphs with
dynamic batch and sequence axes: attention is spelled out with matmuls, masks come from `arange`, and
pooling uses a one-hot weighting instead of advanced indexing.

Shapes (D = model width):
- VisionTrunk: pixel_values [B,3,64,64] -> grid [B,128,8,8]. A 5-layer CNN, trained first and alone with
  a dense head that names the object (colour-shape pair, size) under each grid cell, from the boxes; then
  copied, frozen, into the three models, whose other layers train on its cached features.
- ClipModel: image_embeds [B,128] and text_embeds [B,128] (unnormalised; score = cosine).
- ItmModel: image tokens [B,16,D] (2x2 cells of the grid per token, one self-attention layer), fusion
  encoder over the text with cross-attention to the image tokens, logits [B,2] read at position 0 (BOS).
- Captioner: the same kind of image tokens as `last_hidden_state`, and a GPT-2-like decoder (pre-LN blocks:
  causal self-attention with a key/value cache, cross-attention to the image tokens, MLP).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # additive attention bias for masked positions (fp32)


def heads_split(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B,T,D] -> [B,heads,T,D/heads]."""
    return x.reshape(x.shape[0], x.shape[1], heads, x.shape[2] // heads).transpose(1, 2)


def heads_merge(x: torch.Tensor) -> torch.Tensor:
    """[B,heads,T,hd] -> [B,T,heads*hd]."""
    x = x.transpose(1, 2)
    return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, scale: float) -> torch.Tensor:
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        scores = scores + bias
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def padding_bias(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B,T] mask (1 keep, 0 pad) -> [B,1,1,T] additive bias."""
    return (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * NEG


def causal_bias(q_len: torch.Tensor | int, k_len: torch.Tensor | int) -> torch.Tensor:
    """[T,S] bias letting query i (absolute position S-T+i) see keys 0..S-T+i."""
    qi = torch.arange(q_len) + (k_len - q_len)
    kj = torch.arange(k_len)
    return (kj[None, :] > qi[:, None]).to(torch.float32) * NEG


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, bias, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = heads_split(q, self.heads), heads_split(k, self.heads), heads_split(v, self.heads)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        return self.out(heads_merge(attend(q, k, v, bias, self.scale))), (k, v)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, ctx, ctx_rows=None):
        """`ctx_rows` (training only): row i of x reads ctx[ctx_rows[i]], so keys and values are
        computed once per image rather than once per caption."""
        k, v = self.kv(ctx).chunk(2, dim=-1)
        if ctx_rows is not None:
            k, v = k[ctx_rows], v[ctx_rows]
        q = heads_split(self.q(x), self.heads)
        return self.out(heads_merge(attend(q, heads_split(k, self.heads), heads_split(v, self.heads), None, self.scale)))


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-LN transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, dim: int, heads: int, mlp: int, cross: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.ln_cross = nn.LayerNorm(dim) if cross else None
        self.cross = CrossAttention(dim, heads) if cross else None
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp)

    def forward(self, x, bias, ctx=None, past=None, ctx_rows=None):
        h, present = self.attn(self.ln1(x), bias, past)
        x = x + h
        if self.cross is not None:
            x = x + self.cross(self.ln_cross(x), ctx, ctx_rows)
        return x + self.mlp(self.ln2(x)), present


# ---- vision --------------------------------------------------------------------------------------------

def conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class VisionTrunk(nn.Module):
    """[B,3,64,64] -> [B,128,8,8]; receptive field 39 px, more than a large object (about 20 px). The
    extra layer at 32 x 32 keeps the detail that tells a small (10 px) hexagon from a circle."""

    channels = 128

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(conv_bn(3, 32, 2), conv_bn(32, 32, 1), conv_bn(32, 64, 2), conv_bn(64, 128, 2),
                                    conv_bn(128, 128, 1))

    def forward(self, pixel_values):
        return self.layers(pixel_values)


class DenseHead(nn.Module):
    """Training-only: per grid cell, the colour-shape pair (30 + background) and the size of the object."""

    def __init__(self, channels: int = VisionTrunk.channels, classes: int = 31):
        super().__init__()
        self.cls = nn.Conv2d(channels, classes, 1)
        self.size = nn.Conv2d(channels, 2, 1)

    def forward(self, grid):
        return self.cls(grid), self.size(grid)


def grid_positions(dim: int, side: int = 4) -> torch.Tensor:
    """[side*side, dim] 2-D sine-cosine position codes of a side x side token grid (row-major), scaled to
    about unit variance per channel, i.e. as large as the layer-normed content they are added to."""
    quarter = dim // 4
    freq = torch.arange(1, quarter + 1, dtype=torch.float32) * (math.pi / (2 * side))
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                                indexing='ij')
    r, c = rows.reshape(-1, 1) * freq, cols.reshape(-1, 1) * freq
    codes = torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1)
    codes = F.pad(codes, (0, dim - codes.shape[1]))
    return codes * math.sqrt(2.0)


class ImageTokens(nn.Module):
    """Trunk grid [B,C,8,8] -> tokens [B,16,D]: each token holds a 2x2 block of cells, plus a position
    embedding and one self-attention layer so every token knows the rest of the scene.

    With `grid_start` (the captioner) the position embedding starts as 2-D sine-cosine codes as large as
    the content: spatial relations ("to the left of", "above") need to know where each object is, and the
    small random start (std 0.02; the ITM still has it) left the position a few percent of a content of
    norm ~8 in the first trained models, which kept the captioner near chance on relations. Tried in an
    ITM trained from scratch, the large start left it near chance after 2 of 4 epochs (content drowned), so
    the ITM keeps the small one; its position targets (targets.py) grow it as far as it needs."""

    def __init__(self, dim: int, heads: int, channels: int = VisionTrunk.channels, grid_start: bool = False):
        super().__init__()
        self.proj = nn.Linear(4 * channels, dim)
        if grid_start:
            self.pos = nn.Parameter(grid_positions(dim))
        else:
            self.pos = nn.Parameter(torch.zeros(16, dim))
            nn.init.normal_(self.pos, std=0.02)
        self.block = Block(dim, heads, 2 * dim)
        self.ln = nn.LayerNorm(dim)

    def forward(self, grid):
        b, c = grid.shape[0], grid.shape[1]
        x = F.pixel_unshuffle(grid, 2)  # [B,4C,4,4]
        x = x.reshape(b, 4 * c, 16).transpose(1, 2)
        x = self.proj(x) + self.pos
        x, _ = self.block(x, None)
        return self.ln(x)


# ---- ITC -----------------------------------------------------------------------------------------------

class TextEncoder(nn.Module):
    """CLIP-like text tower: causal transformer, pooled at the last token whose attention_mask is 1
    (the `<|endoftext|>` marker of an unpadded or right-padded sequence), then projected."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, max_len: int, out_dim: int):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 2 * dim) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_dim, bias=False)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.01)

    def forward(self, input_ids, attention_mask):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos[:t]
        bias = padding_bias(attention_mask) + causal_bias(t, t)
        for blk in self.blocks:
            x, _ = blk(x, bias)
        x = self.ln(x)
        last = attention_mask.to(torch.int64).sum(1) - 1
        pick = (torch.arange(t)[None, :] == last[:, None]).to(x.dtype)
        return self.proj((x * pick[:, :, None]).sum(1))


class ImageHead(nn.Module):
    """Grid -> image_embeds: reduce channels, flatten (keeps where things are), MLP."""

    def __init__(self, out_dim: int, channels: int = VisionTrunk.channels):
        super().__init__()
        self.reduce = nn.Conv2d(channels, 16, 1)
        self.mlp = nn.Sequential(nn.Linear(16 * 64, 256), nn.GELU(), nn.Linear(256, out_dim))

    def forward(self, grid):
        return self.mlp(self.reduce(grid).flatten(1))


class ClipModel(nn.Module):
    def __init__(self, vocab: int, max_len: int, embed_dim: int = 128, text_dim: int = 128,
                 text_layers: int = 2, text_heads: int = 4):
        super().__init__()
        self.trunk = VisionTrunk()
        self.image_head = ImageHead(embed_dim)
        self.text = TextEncoder(vocab, text_dim, text_layers, text_heads, max_len, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(20.0)))

    def encode_image(self, pixel_values):
        return self.image_head(self.trunk(pixel_values))


class ClipVision(nn.Module):
    def __init__(self, clip: ClipModel):
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values):
        return self.clip.encode_image(pixel_values)


class ClipText(nn.Module):
    def __init__(self, clip: ClipModel):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids, attention_mask):
        return self.clip.text(input_ids, attention_mask)


# ---- ITM -----------------------------------------------------------------------------------------------

class ItmModel(nn.Module):
    def __init__(self, vocab: int, max_len: int, dim: int = 96, heads: int = 4, layers: int = 3):
        super().__init__()
        self.trunk = VisionTrunk()
        self.image = ImageTokens(dim, heads)
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 2 * dim, cross=True) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)
        # Training only (not in the exported graphs), per token of the final states (targets.py): at the shape
        # word of each "<size> <colour> <shape>" phrase, is that object in the image, and where; at the last
        # word of each relation phrase, does it hold, and where are its subject and object.
        self.phrase_head = nn.Linear(dim, 2)
        self.centre_head = nn.Linear(dim, 2)
        self.holds_head = nn.Linear(dim, 2)
        self.route_head = nn.Linear(dim, 4)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.01)

    def encode_image(self, pixel_values):
        return self.image(self.trunk(pixel_values))

    def fuse_states(self, image_embeds, input_ids, attention_mask, image_rows=None):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos[:t]
        bias = padding_bias(attention_mask)
        for blk in self.blocks:
            x, _ = blk(x, bias, image_embeds, None, image_rows)
        return self.ln(x)

    def fuse(self, image_embeds, input_ids, attention_mask):
        """Row i of the text batch is matched against row i of image_embeds; logits [B,2]."""
        return self.head(self.fuse_states(image_embeds, input_ids, attention_mask)[:, 0])

    def forward(self, pixel_values, input_ids, attention_mask):
        return self.fuse(self.encode_image(pixel_values), input_ids, attention_mask)


class ItmVision(nn.Module):
    def __init__(self, itm: ItmModel):
        super().__init__()
        self.itm = itm

    def forward(self, pixel_values):
        return self.itm.encode_image(pixel_values)


class ItmFusion(nn.Module):
    def __init__(self, itm: ItmModel):
        super().__init__()
        self.itm = itm

    def forward(self, image_embeds, input_ids, attention_mask):
        return self.itm.fuse(image_embeds, input_ids, attention_mask)


# ---- captioner -----------------------------------------------------------------------------------------

class Captioner(nn.Module):
    def __init__(self, vocab: int, max_len: int, dim: int = 96, heads: int = 4, layers: int = 2):
        super().__init__()
        self.heads, self.layers, self.dim = heads, layers, dim
        self.trunk = VisionTrunk()
        self.image = ImageTokens(dim, heads, grid_start=True)
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.zeros(max_len, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, 2 * dim, cross=True) for _ in range(layers)])
        self.ln = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        # Training only (not in the exported graphs): at the shape word of each object it has named, where
        # that object is; at the last word of a relation, where its subject and the object it is about to
        # name are (targets.py). Without them it chose relations at near chance (issue 17).
        self.centre_head = nn.Linear(dim, 2)
        self.route_head = nn.Linear(dim, 4)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos, std=0.01)

    def encode(self, pixel_values):
        return self.image(self.trunk(pixel_values))

    def decode_states(self, input_ids, encoder_hidden_states, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
                      encoder_rows=None):
        """The final (layer-normed) states [B,T,D] and the new cache (one (key, value) per layer,
        [B,heads,P+T,hd])."""
        t = input_ids.shape[1]
        p = past[0][0].shape[2] if past is not None else 0
        x = self.tok(input_ids) + self.pos[p:p + t]
        bias = causal_bias(t, p + t)
        presents = []
        for i, blk in enumerate(self.blocks):
            x, present = blk(x, bias, encoder_hidden_states, past[i] if past is not None else None, encoder_rows)
            presents.append(present)
        return self.ln(x), presents

    def decode(self, input_ids, encoder_hidden_states, past: list[tuple[torch.Tensor, torch.Tensor]] | None,
               encoder_rows=None):
        """logits [B,T,V] and the new cache."""
        states, presents = self.decode_states(input_ids, encoder_hidden_states, past, encoder_rows)
        return self.lm_head(states), presents


class CaptionEncoder(nn.Module):
    def __init__(self, cap: Captioner):
        super().__init__()
        self.cap = cap

    def forward(self, pixel_values):
        return self.cap.encode(pixel_values)


class CaptionDecoder(nn.Module):
    """decoder_model.onnx: no cache in, cache out."""

    def __init__(self, cap: Captioner):
        super().__init__()
        self.cap = cap

    def forward(self, input_ids, encoder_hidden_states):
        logits, presents = self.cap.decode(input_ids, encoder_hidden_states, None)
        return (logits, *[t for kv in presents for t in kv])


class CaptionDecoderWithPast(nn.Module):
    """decoder_with_past_model.onnx: cache in ([B,heads,P,hd], P may be 0), extended cache out."""

    def __init__(self, cap: Captioner):
        super().__init__()
        self.cap = cap

    def forward(self, input_ids, encoder_hidden_states, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(self.cap.layers)]
        logits, presents = self.cap.decode(input_ids, encoder_hidden_states, past)
        return (logits, *[t for kv in presents for t in kv])


class CaptionDecoderMerged(nn.Module):
    """decoder_model_merged.onnx: like the with-past graph plus `use_cache_branch` (bool [1]).

    When use_cache_branch is false the given cache is cut to length 0 (index_select with arange(0)), so
    step 0 works whether the caller feeds zero-length or dummy caches; when true the cache is used whole.
    Concatenating a zero-length cache is the same computation as having none, so one graph serves both.
    """

    def __init__(self, cap: Captioner):
        super().__init__()
        self.cap = cap

    def forward(self, input_ids, encoder_hidden_states, *rest):
        *past_flat, use_cache_branch = rest
        keep = use_cache_branch.to(torch.int64).reshape(())  # 0 or 1
        length = past_flat[0].shape[2] * keep
        idx = torch.arange(length)
        past = [(past_flat[2 * i].index_select(2, idx), past_flat[2 * i + 1].index_select(2, idx))
                for i in range(self.cap.layers)]
        logits, presents = self.cap.decode(input_ids, encoder_hidden_states, past)
        return (logits, *[t for kv in presents for t in kv])
