"""A BERT WordPiece tokenizer with the interface BLIP's model code uses (transformers' slow BertTokenizer
rules: clean text, split CJK characters, lowercase and strip accents, split on whitespace and
punctuation, greedy longest-match WordPiece with `##` continuations; added special tokens are never
split). `from_pretrained` reads a `vocab.txt` (a path, a folder holding one, or a name registered with
`register_vocab`)."""

from __future__ import annotations

import os
import unicodedata
from typing import Any, Iterable

import torch

_VOCABS: dict[str, str] = {}


def register_vocab(name: str, vocab_file: str) -> None:
    """Make `BertTokenizer.from_pretrained(name)` read `vocab_file` (BLIP asks for 'bert-base-uncased')."""
    _VOCABS[name] = vocab_file


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_control(ch: str) -> bool:
    if ch in ("\t", "\n", "\r"):
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_whitespace(ch: str) -> bool:
    return ch in (" ", "\t", "\n", "\r") or unicodedata.category(ch) == "Zs"


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


class Encoding(dict):
    """`input_ids` / `attention_mask` as attributes and keys, with `.to(device)` like BatchEncoding."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err

    def to(self, device: Any) -> "Encoding":
        return Encoding({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


class BertTokenizer:
    def __init__(self, vocab_file: str, do_lower_case: bool = True) -> None:
        with open(vocab_file, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
        self.vocab: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            self.vocab.setdefault(tok, i)
        self.ids_to_tokens = {i: t for t, i in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.unk_token, self.sep_token, self.pad_token, self.cls_token, self.mask_token = "[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"
        self.bos_token: str | None = None
        self.additional_special_tokens: list[str] = []

    @classmethod
    def from_pretrained(cls, name: str, **_kwargs: Any) -> "BertTokenizer":
        path = _VOCABS.get(name, name)
        if os.path.isdir(path):
            path = os.path.join(path, "vocab.txt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no vocab.txt for {name!r}: pass a vocab file (register_vocab) or a folder holding vocab.txt")
        return cls(path)

    # -- special tokens ----------------------------------------------------------------------------
    def _add_token(self, token: str) -> None:
        if token not in self.vocab:
            self.vocab[token] = len(self.vocab)
            self.ids_to_tokens[self.vocab[token]] = token

    def add_special_tokens(self, mapping: dict[str, Any]) -> int:
        added = 0
        for key, value in mapping.items():
            values = value if isinstance(value, list) else [value]
            for tok in values:
                added += tok not in self.vocab
                self._add_token(tok)
            if key == "additional_special_tokens":
                self.additional_special_tokens = list(values)
            else:
                setattr(self, key, value)
        return added

    @property
    def all_special_tokens(self) -> list[str]:
        base = [self.unk_token, self.sep_token, self.pad_token, self.cls_token, self.mask_token]
        return base + ([self.bos_token] if self.bos_token else []) + self.additional_special_tokens

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> Any:
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.vocab[self.unk_token])
        return [self.vocab.get(t, self.vocab[self.unk_token]) for t in tokens]

    def __len__(self) -> int:
        return len(self.vocab)

    def __getattr__(self, name: str) -> Any:
        # bos_token_id, sep_token_id, pad_token_id, cls_token_id, unk_token_id, mask_token_id
        if name.endswith("_token_id"):
            token = self.__dict__.get(name[: -len("_id")])
            return None if token is None else self.vocab[token]
        raise AttributeError(name)

    @property
    def additional_special_tokens_ids(self) -> list[int]:
        return [self.vocab[t] for t in self.additional_special_tokens]

    # -- tokenizing ----------------------------------------------------------------------------------
    def _basic(self, text: str) -> list[str]:
        cleaned = "".join(" " if _is_whitespace(c) else c for c in text if not (ord(c) in (0, 0xFFFD) or _is_control(c)))
        spaced = "".join(f" {c} " if _is_cjk(ord(c)) else c for c in cleaned)
        out: list[str] = []
        for word in spaced.split():
            if self.do_lower_case:
                word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
            piece = ""
            for c in word:
                if _is_punctuation(c):
                    if piece:
                        out.append(piece)
                    out.append(c)
                    piece = ""
                else:
                    piece += c
            if piece:
                out.append(piece)
        return out

    def _wordpiece(self, word: str) -> list[str]:
        if len(word) > 100:
            return [self.unk_token]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    found = sub
                    break
                end -= 1
            if found is None:
                return [self.unk_token]
            pieces.append(found)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        specials = sorted(set(self.all_special_tokens), key=len, reverse=True)
        segments: list[tuple[str, bool]] = [(text, False)]
        for sp in specials:
            nxt: list[tuple[str, bool]] = []
            for seg, is_special in segments:
                if is_special:
                    nxt.append((seg, True))
                    continue
                parts = seg.split(sp)
                for i, part in enumerate(parts):
                    if i > 0:
                        nxt.append((sp, True))
                    nxt.append((part, False))
            segments = nxt
        tokens: list[str] = []
        for seg, is_special in segments:
            if is_special:
                tokens.append(seg)
            else:
                for word in self._basic(seg):
                    tokens.extend(self._wordpiece(word))
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        return [self.vocab[self.cls_token], *ids, self.vocab[self.sep_token]] if add_special_tokens else ids

    def __call__(self, texts: str | Iterable[str], padding: Any = False, truncation: bool = False, max_length: int | None = None, return_tensors: str | None = None, **_kwargs: Any) -> Encoding:
        single = isinstance(texts, str)
        rows = [self.encode(t) for t in ([texts] if single else list(texts))]
        if truncation and max_length is not None:
            rows = [r if len(r) <= max_length else [*r[: max_length - 1], r[-1]] for r in rows]
        width = max_length if padding == "max_length" else max(len(r) for r in rows) if padding in (True, "longest") else None
        masks = [[1] * len(r) for r in rows]
        if width is not None:
            pad = self.vocab[self.pad_token]
            masks = [m + [0] * (width - len(r)) for r, m in zip(rows, masks)]
            rows = [r + [pad] * (width - len(r)) for r in rows]
        if return_tensors == "pt":
            return Encoding(input_ids=torch.tensor(rows, dtype=torch.long), attention_mask=torch.tensor(masks, dtype=torch.long))
        if single:
            return Encoding(input_ids=rows[0], attention_mask=masks[0])
        return Encoding(input_ids=rows, attention_mask=masks)

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        specials = set(self.all_special_tokens)
        tokens = [self.ids_to_tokens[int(i)] for i in ids]
        if skip_special_tokens:
            tokens = [t for t in tokens if t not in specials]
        text = " ".join(tokens).replace(" ##", "").strip()
        for p in (" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"):
            text = text.replace(p, p.lstrip(" ") if p != " ' " else "'")
        return text
