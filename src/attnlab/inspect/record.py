"""The attention record: every layer's and head's weights of one forward pass, with tokens.

A plain container (NumPy arrays, strings) so that figures, reports and scores never need the
model again. Saved as a ``.npz`` (weights) beside a ``.json`` (everything else).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "attnlab-attention-record"


@dataclass
class AttentionRecord:
    """Attention weights of one forward pass.

    Attributes:
        tokens: a readable string per position (BPE space markers shown as a leading space).
        weights: float32 ``(layers, heads, seq_q, seq_k)``; row ``[l, h, i]`` is the
            distribution of query ``i`` over the keys (self-attention: ``seq_q == seq_k``).
            With grouped-query attention there is one pattern per *query* head.
        model_name: what produced it (a pretrained name, a path, or a class name).
        causal: whether each query sees only keys at or before its own position.
        token_ids: the ids that were fed to the model (``None`` when unknown).
        n_kv_heads: key/value heads per layer (fewer than ``heads`` for GQA/MQA).
        notes: what the capture did that a reader should know (truncation, backends, GQA).
    """

    tokens: list[str]
    weights: np.ndarray
    model_name: str
    causal: bool
    token_ids: list[int] | None = None
    n_kv_heads: int | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.weights = np.asarray(self.weights, dtype=np.float32)
        if self.weights.ndim != 4:
            raise ValueError(
                f"weights: expected shape (layers, heads, seq_q, seq_k), got {self.weights.shape}"
            )
        if len(self.tokens) != self.weights.shape[-1]:
            raise ValueError(
                f"tokens: expected {self.weights.shape[-1]} (seq_k), got {len(self.tokens)}"
            )
        if self.token_ids is not None and len(self.token_ids) != len(self.tokens):
            raise ValueError(
                f"token_ids: expected {len(self.tokens)} like tokens, got {len(self.token_ids)}"
            )

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]

    @property
    def seq_len(self) -> int:
        return self.weights.shape[-1]

    def layer(self, i: int) -> np.ndarray:
        """Layer ``i``'s patterns ``(heads, seq_q, seq_k)``."""
        if not -self.n_layers <= i < self.n_layers:
            raise ValueError(f"layer: expected 0 … {self.n_layers - 1}, got {i}")
        return self.weights[i]

    def head(self, layer: int, head: int) -> np.ndarray:
        """One head's pattern ``(seq_q, seq_k)``."""
        if not -self.n_heads <= head < self.n_heads:
            raise ValueError(f"head: expected 0 … {self.n_heads - 1}, got {head}")
        return self.layer(layer)[head]

    def metadata(self) -> dict:
        """Everything but the weights, JSON-ready."""
        return {
            "format": FORMAT,
            "model_name": self.model_name,
            "causal": self.causal,
            "shape": list(self.weights.shape),
            "tokens": list(self.tokens),
            "token_ids": self.token_ids,
            "n_kv_heads": self.n_kv_heads,
            "notes": list(self.notes),
        }

    def to_dict(self, *, include_weights: bool = True) -> dict:
        """JSON-ready dict; ``weights`` as nested lists ``[layer][head][query][key]``."""
        data = self.metadata()
        if include_weights:
            data["weights"] = self.weights.tolist()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> AttentionRecord:
        if data.get("format") != FORMAT or "weights" not in data:
            raise ValueError("record: expected a dict written by AttentionRecord.to_dict()")
        return cls(
            tokens=list(data["tokens"]),
            weights=np.asarray(data["weights"], dtype=np.float32),
            model_name=data["model_name"],
            causal=bool(data["causal"]),
            token_ids=data.get("token_ids"),
            n_kv_heads=data.get("n_kv_heads"),
            notes=list(data.get("notes", [])),
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``PATH.json`` (tokens, notes, shape) and ``PATH.npz`` (weights); returns the
        JSON path. A ``.json`` or ``.npz`` suffix on ``path`` is replaced."""
        stem = _stem(path)
        stem.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(stem.with_suffix(".npz"), weights=self.weights)
        json_path = stem.with_suffix(".json")
        json_path.write_text(json.dumps(self.metadata(), indent=1, ensure_ascii=False))
        return json_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> AttentionRecord:
        """Read a record written by :meth:`save` (either file's path, or the common stem)."""
        stem = _stem(path)
        json_path, npz_path = stem.with_suffix(".json"), stem.with_suffix(".npz")
        for p in (json_path, npz_path):
            if not p.is_file():
                raise FileNotFoundError(f"record: {p} is missing")
        meta = json.loads(json_path.read_text())
        with np.load(npz_path) as arrays:
            meta["weights"] = arrays["weights"]
        return cls.from_dict(meta)


def _stem(path) -> Path:
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".npz") else path
