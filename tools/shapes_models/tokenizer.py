"""The word-level tokenizer shared by the three shapes demo models.

The shapes captions use a closed vocabulary of 37 words (commas included), so every word is one token.
The tokenizer is written as a Hugging Face `tokenizer.json` with a WordPiece model whose vocabulary holds
whole words only (no `##` pieces): any word outside the vocabulary becomes `<unk>`. WordPiece rather than
WordLevel because `@huggingface/tokenizers` (the JS library vlcurate uses) implements WordPiece, BPE and
Unigram but not WordLevel; with no `##` entries WordPiece behaves exactly like WordLevel.

Pipeline: Lowercase normaliser, Whitespace pre-tokenizer (`\\w+|[^\\w\\s]+`), WordPiece, TemplateProcessing
post-processor `<|startoftext|> $A <|endoftext|>` (CLIP's markers), WordPiece decoder.

Ids: 0 `<pad>`, 1 `<unk>`, 2..38 the words in sorted order, 39 `<|startoftext|>`, 40 `<|endoftext|>`.
The end marker has the highest id, as in CLIP, so "pool at argmax(input_ids)" and "pool at the last
position whose attention_mask is 1" pick the same token.

`encode` below reimplements that pipeline in Python for training; `tools/verify_shapes_onnx.mjs` checks
that the JS library gives the same ids.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

WORDS = sorted([
    ',', 'a', 'above', 'an', 'and', 'background', 'below', 'blue', 'circle', 'green', 'hexagon', 'image',
    'in', 'is', 'it', 'large', 'left', 'next', 'of', 'on', 'orange', 'photo', 'picture', 'plain', 'purple',
    'red', 'right', 'single', 'small', 'square', 'star', 'the', 'there', 'to', 'triangle', 'with', 'yellow',
])
PAD, UNK, BOS, EOS = '<pad>', '<unk>', '<|startoftext|>', '<|endoftext|>'
VOCAB: list[str] = [PAD, UNK, *WORDS, BOS, EOS]
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
PAD_ID, UNK_ID, BOS_ID, EOS_ID = TOKEN_ID[PAD], TOKEN_ID[UNK], TOKEN_ID[BOS], TOKEN_ID[EOS]
VOCAB_SIZE = len(VOCAB)
# Longest shapes caption: 24 words + 2 markers. 32 leaves room and is the position-embedding size.
MAX_LENGTH = 32

_PRETOKENIZE = re.compile(r'\w+|[^\w\s]+')


def words_of(text: str) -> list[str]:
    return _PRETOKENIZE.findall(text.lower())


def encode(text: str, max_length: int = MAX_LENGTH) -> list[int]:
    """Token ids with the markers; truncation keeps `<|endoftext|>` (as vlcurate's TypeScript side does)."""
    ids = [TOKEN_ID.get(w, UNK_ID) if len(w) <= 100 else UNK_ID for w in words_of(text)]
    return [BOS_ID, *ids[: max_length - 2], EOS_ID]


def batch(texts: list[str], max_length: int = MAX_LENGTH, pad_to: int | None = None):
    """Right-padded `(input_ids, attention_mask)` as lists of lists."""
    encoded = [encode(t, max_length) for t in texts]
    width = pad_to or max(len(e) for e in encoded)
    ids = [e + [PAD_ID] * (width - len(e)) for e in encoded]
    mask = [[1] * len(e) + [0] * (width - len(e)) for e in encoded]
    return ids, mask


def decode(ids: list[int]) -> str:
    """Words without special tokens, joined by spaces, with ' ,' closed up (like the WordPiece decoder)."""
    special = {PAD_ID, UNK_ID, BOS_ID, EOS_ID}
    return ' '.join(VOCAB[i] for i in ids if i not in special).replace(' ,', ',')


def _added(token_id: int) -> dict:
    return {
        'id': token_id, 'content': VOCAB[token_id], 'single_word': False, 'lstrip': False, 'rstrip': False,
        'normalized': False, 'special': True,
    }


def tokenizer_json() -> dict:
    marker = lambda t: {'SpecialToken': {'id': t, 'type_id': 0}}  # noqa: E731
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [_added(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)],
        'normalizer': {'type': 'Lowercase'},
        'pre_tokenizer': {'type': 'Whitespace'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [marker(BOS), {'Sequence': {'id': 'A', 'type_id': 0}}, marker(EOS)],
            'pair': [
                marker(BOS), {'Sequence': {'id': 'A', 'type_id': 0}}, marker(EOS),
                {'Sequence': {'id': 'B', 'type_id': 1}}, {'SpecialToken': {'id': EOS, 'type_id': 1}},
            ],
            'special_tokens': {t: {'id': t, 'ids': [TOKEN_ID[t]], 'tokens': [t]} for t in (BOS, EOS)},
        },
        'decoder': {'type': 'WordPiece', 'prefix': '##', 'cleanup': True},
        'model': {
            'type': 'WordPiece',
            'unk_token': UNK,
            'continuing_subword_prefix': '##',
            'max_input_chars_per_word': 100,
            'vocab': dict(TOKEN_ID),
        },
    }


def tokenizer_config() -> dict:
    added = {str(i): {k: v for k, v in _added(i).items() if k != 'id'} for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)}
    return {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'model_max_length': MAX_LENGTH,
        'bos_token': BOS,
        'eos_token': EOS,
        'pad_token': PAD,
        'unk_token': UNK,
        'do_lower_case': True,
        'clean_up_tokenization_spaces': True,
        'padding_side': 'right',
        'truncation_side': 'right',
        'added_tokens_decoder': added,
    }


def special_tokens_map() -> dict:
    return {'bos_token': BOS, 'eos_token': EOS, 'pad_token': PAD, 'unk_token': UNK}


def write_tokenizer_files(folder: Path) -> None:
    files = {
        'tokenizer.json': tokenizer_json(),
        'tokenizer_config.json': tokenizer_config(),
        'special_tokens_map.json': special_tokens_map(),
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + '\n')
