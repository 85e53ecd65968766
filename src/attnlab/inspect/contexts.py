"""One word in two contexts: its attention and its contextual vector in each.

Self-attention makes a token's output depend on its neighbours (seed 000 Ex 12; seed 003 P5:
"bank" by the river vs "bank" that lends money). For each sentence this finds the word's
position, captures the attention rows of that position and the model's last hidden state there,
and compares the two vectors by cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from attnlab.nn import GPT

from .capture import capture, resolve_model
from .record import AttentionRecord


@dataclass
class WordInContext:
    """A word's position, attention rows ``(layers, heads, seq)`` and contextual vector."""

    text: str
    word: str
    position: int
    record: AttentionRecord
    vector: np.ndarray

    @property
    def attention(self) -> np.ndarray:
        return self.record.weights[:, :, self.position, :]


def find_word(tokens: list[str], word: str) -> int:
    """Index of the first token that is ``word`` (case and surrounding spaces ignored)."""
    wanted = word.strip().lower()
    for i, token in enumerate(tokens):
        if token.strip().lower().removeprefix("##") == wanted:
            return i
    raise ValueError(f"word: {word!r} is not a single token of this text; tokens are {tokens}")


def _last_hidden(model, ids: list[int]) -> np.ndarray:
    """``(seq, d_model)`` output of the last layer for ``ids``."""
    idx = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        if isinstance(model, GPT):
            seen = {}
            last = model.final_norm if model.final_norm is not None else model.blocks[-1]
            handle = last.register_forward_hook(lambda m, i, out: seen.setdefault("h", out))
            try:
                model(idx)
            finally:
                handle.remove()
            return seen["h"][0].float().numpy()
        out = model(input_ids=idx, attention_mask=torch.ones_like(idx), output_hidden_states=True)
        return out.hidden_states[-1][0].float().numpy()


def word_in_context(model, text: str, word: str, *, tokenizer=None, seed: int = 0) -> WordInContext:
    """Capture ``text`` with ``model`` and pick out ``word``'s attention and vector."""
    model, tokenizer, _ = resolve_model(model, tokenizer, seed=seed)
    record = capture(model, text, tokenizer=tokenizer)
    position = find_word(record.tokens, word)
    was_training = model.training
    model.eval()
    try:
        vector = _last_hidden(model, record.token_ids)[position]
    finally:
        model.train(was_training)
    return WordInContext(text, word, position, record, vector)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare_contexts(
    model, word: str, text_a: str, text_b: str, *, tokenizer=None, seed: int = 0
) -> tuple[WordInContext, WordInContext, float]:
    """The word in both texts, and the cosine similarity of its two contextual vectors."""
    model, tokenizer, _ = resolve_model(model, tokenizer, seed=seed)
    a = word_in_context(model, text_a, word, tokenizer=tokenizer)
    b = word_in_context(model, text_b, word, tokenizer=tokenizer)
    return a, b, cosine(a.vector, b.vector)
