"""Tokenizers: characters, or byte-level BPE trained locally with the ``tokenizers`` library.

Both turn text into a list of ids and back, and serialise to a JSON-ready dict so that a
checkpoint carries the tokenizer it was trained with.
"""

from __future__ import annotations

import json

KINDS = ("char", "bpe")


class CharTokenizer:
    """One id per distinct character of the training text (ids in sorted character order)."""

    kind = "char"

    def __init__(self, chars: str):
        if not chars:
            raise ValueError("text: expected a non-empty text to build a character vocabulary")
        self.chars = "".join(sorted(set(chars)))
        self._index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self._index[c] for c in text]
        except KeyError as error:
            raise ValueError(
                f"text: character {error.args[0]!r} is not in this tokenizer's vocabulary"
            ) from None

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": "char", "chars": self.chars}


class BPETokenizer:
    """Byte-level BPE (as in GPT-2): any text round-trips, merges learned from the corpus."""

    kind = "bpe"

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise ValueError(
                f"--vocab-size: byte-level BPE needs at least 257 (256 bytes + 1 merge), got "
                f"{vocab_size}"
            )
        if not text:
            raise ValueError("text: expected a non-empty text to train BPE on")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(_chunks(text), trainer=trainer)
        return cls(tokenizer)

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def decode(self, ids) -> str:
        return self._tokenizer.decode(list(ids))

    def to_dict(self) -> dict:
        return {"kind": "bpe", "tokenizer": json.loads(self._tokenizer.to_str())}


def _chunks(text: str, size: int = 1 << 16):
    for start in range(0, len(text), size):
        yield text[start : start + size]


def build_tokenizer(kind: str, text: str, vocab_size: int | None = None):
    """A tokenizer of ``kind`` (``"char"`` or ``"bpe"``) fitted to ``text``."""
    if kind == "char":
        return CharTokenizer(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size or 1024)
    raise ValueError(f"--tokenizer: expected one of {KINDS}, got {kind!r}")


def tokenizer_from_dict(data: dict):
    """Rebuild a tokenizer saved with ``to_dict``."""
    kind = data.get("kind")
    if kind == "char":
        return CharTokenizer(data["chars"])
    if kind == "bpe":
        from tokenizers import Tokenizer

        return BPETokenizer(Tokenizer.from_str(json.dumps(data["tokenizer"])))
    raise ValueError(f"tokenizer: unknown kind {kind!r} in checkpoint (expected one of {KINDS})")
