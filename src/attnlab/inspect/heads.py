"""Head-type scores: how much of a head's attention lands on a plain (T, T) target pattern.

Each mass score is the average, over a set of query rows ``i``, of the attention mass
``Σ_j A[i, j] · target[i, j]`` that row ``i`` puts on a boolean target pattern, as in
TransformerLens's head detector. Row 0 is never averaged: in a causal model it can only attend
to itself, which says nothing about the head. The kinds follow the interpretability
literature: previous-token, duplicate-token and induction heads (Olsson et al., 2022, "In-context
Learning and Induction Heads"; Elhage et al., 2021), attention to [CLS]/[SEP] and punctuation
(Clark et al., 2019, "What Does BERT Look At?"), and first-token "attention sinks" (Xiao et al.,
2023). Induction and duplicate heads are measured on random tokens repeated twice, where only
a copying mechanism can predict the second half.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

import numpy as np

from .capture import capture, resolve_model
from .record import AttentionRecord

MASS_SCORES = (
    "previous_token",
    "next_token",
    "duplicate",
    "induction",
    "sink",
    "delimiter",
    "self",
    "local",
)
SCORES = (*MASS_SCORES, "distance", "entropy")
# A head is a clear specialist when this share of its attention (averaged over queries) goes
# to the target. Induction 0.4 and previous-token 0.5 are far above what a spread-out head
# gives (1/i per key in a causal row) and far above randomly initialised models (see
# BENCHMARKS.md); a sink needs most of the mass, because most decoder heads rest partly there.
DEFAULT_THRESHOLDS = {
    "previous_token": 0.5,
    "next_token": 0.5,
    "duplicate": 0.4,
    "induction": 0.4,
    "sink": 0.8,
    "delimiter": 0.5,
    "self": 0.5,
    "local": 0.8,
}
_SPECIAL = re.compile(r"^(\[[A-Z]+\]|<\|?[^<>\s]*\|?>)$")
_PUNCTUATION = set(string.punctuation) | set("…—–“”‘’")


def is_delimiter(token: str) -> bool:
    """Special tokens ([CLS], [SEP], <|im_start|>, </s> …) and tokens of punctuation only."""
    stripped = token.strip()
    if _SPECIAL.match(stripped):
        return True
    return bool(stripped) and all(c in _PUNCTUATION for c in stripped)


def target_patterns(
    seq_len: int, *, token_ids: list[int] | None = None, tokens: list[str] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each mass score, ``(target, queries)``: a bool ``(T, T)`` target pattern and the bool
    ``(T,)`` query rows averaged over.

    With ``r`` the query rows and ``i`` one of them (always ``i ≥ 1``):

    - ``previous_token``: key ``i − 1``; all rows.
    - ``next_token``: key ``i + 1``; rows ``i ≤ T − 2`` (zero in a causal model; BERT has such
      heads, Clark et al., 2019).
    - ``self``: key ``i`` (the diagonal); all rows.
    - ``sink``: key 0 (the first token: [CLS] or the first word); all rows.
    - ``local``: keys with ``1 ≤ |i − j| ≤ 2`` (the band around the diagonal, self excluded).
    - ``delimiter``: keys ``j ≥ 1``, ``j ≠ i``, whose token :func:`is_delimiter`; all rows
      (key 0 belongs to ``sink``). Needs ``tokens``.
    - ``duplicate``: keys ``j < i`` holding the same token as ``i``; rows whose token occurred
      before.
    - ``induction``: keys ``j + 1 < i`` right after an earlier occurrence ``j`` of ``i``'s token
      (the token that followed it last time); rows that have such a key.

    Repeats are found by ``token_ids`` (or ``tokens`` when no ids are given).
    """
    T = seq_len
    i, j = np.indices((T, T))
    rows = np.arange(T) >= 1
    patterns = {
        "previous_token": (j == i - 1, rows),
        "next_token": (j == i + 1, rows & (np.arange(T) <= T - 2)),
        "self": (i == j, rows),
        "sink": (j == 0, rows),
        "local": ((np.abs(i - j) >= 1) & (np.abs(i - j) <= 2), rows),
    }
    if tokens is not None:
        delimiter = np.array([is_delimiter(t) for t in tokens])
        target = delimiter[None, :] & (j >= 1) & (i != j)
        patterns["delimiter"] = (target, rows & target.any(1))
    keys = token_ids if token_ids is not None else tokens
    if keys is not None:
        keys = np.asarray(list(keys))
        same = keys[:, None] == keys[None, :]  # same[i, j]: token i equals token j
        duplicate = same & (j < i)
        induction = np.zeros((T, T), dtype=bool)
        # key j+1 is a target of row i when token j equals token i and j + 1 < i
        induction[:, 1:] = duplicate[:, :-1] & (j[:, 1:] < i[:, 1:])
        patterns["duplicate"] = (duplicate, rows & duplicate.any(1))
        patterns["induction"] = (induction, rows & induction.any(1))
    return patterns


def pattern_scores(
    weights, *, token_ids: list[int] | None = None, tokens: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Every score for ``weights`` ``(..., T, T)`` (rows = queries); each value has shape
    ``(...)``. A score without eligible rows (no repeats, no delimiters) is NaN.

    ``distance`` is the mean attention distance ``Σ_j A[i, j] |i − j|`` in tokens; ``entropy``
    is ``−Σ_j A[i, j] ln A[i, j]`` in nats; both averaged over rows ``i ≥ 1``.
    """
    W = np.asarray(weights, dtype=np.float64)
    if W.ndim < 2 or W.shape[-1] != W.shape[-2] or W.shape[-1] < 2:
        raise ValueError(f"weights: expected shape (..., T, T) with T ≥ 2, got {W.shape}")
    T = W.shape[-1]
    scores = {}
    for name, (target, queries) in target_patterns(T, token_ids=token_ids, tokens=tokens).items():
        if not queries.any():
            scores[name] = np.full(W.shape[:-2], np.nan)
            continue
        mass = (W * target).sum(-1)  # (..., T): mass each query row puts on the target
        scores[name] = mass[..., queries].mean(-1)
    i, j = np.indices((T, T))
    scores["distance"] = (W * np.abs(i - j)).sum(-1)[..., 1:].mean(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(W > 0, W * np.log(W), 0.0)
    scores["entropy"] = (-plogp.sum(-1))[..., 1:].mean(-1)
    return {name: scores[name] for name in SCORES if name in scores}


@dataclass
class HeadScores:
    """Scores per layer and head: ``values[name]`` is ``(layers, heads)``."""

    model_name: str
    values: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.values.values())).shape

    def best(self, name: str) -> tuple[int, int, float]:
        """``(layer, head, score)`` of the highest-scoring head for ``name``."""
        values = self._get(name)
        if np.isnan(values).all():
            raise ValueError(f"score {name!r}: not defined for this input (no eligible rows)")
        layer, head = np.unravel_index(np.nanargmax(values), values.shape)
        return int(layer), int(head), float(values[layer, head])

    def table(self, sort_by: str = "induction", top: int | None = None) -> list[dict]:
        """One row per head (``layer``, ``head`` and every score), highest ``sort_by`` first."""
        values = self._get(sort_by)
        if top is not None and top < 1:
            raise ValueError(f"top: expected a positive number of rows, got {top}")
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf), axis=None, kind="stable")
        rows = []
        for flat in order[:top]:
            layer, head = np.unravel_index(flat, values.shape)
            row = {"layer": int(layer), "head": int(head)}
            row.update({name: _plain(v[layer, head]) for name, v in self.values.items()})
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        return {
            "model_name": self.model_name,
            "scores": {
                name: [[_plain(x) for x in row] for row in v] for name, v in self.values.items()
            },
            "notes": list(self.notes),
        }

    def _get(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise ValueError(f"score: expected one of {tuple(self.values)}, got {name!r}")
        return self.values[name]


def _plain(x) -> float | None:
    """A float for JSON (NaN → None)."""
    return None if np.isnan(x) else round(float(x), 6)


def head_scores(record: AttentionRecord) -> HeadScores:
    """:func:`pattern_scores` for every layer and head of ``record``."""
    if not isinstance(record, AttentionRecord):
        raise TypeError(f"record: expected an AttentionRecord, got {type(record).__name__}")
    if record.weights.shape[-2] != record.weights.shape[-1]:
        raise ValueError(f"record: scores need self-attention (T, T), got {record.weights.shape}")
    per_layer = [
        pattern_scores(record.layer(i), token_ids=record.token_ids, tokens=record.tokens)
        for i in range(record.n_layers)
    ]
    values = {name: np.stack([s[name] for s in per_layer]) for name in per_layer[0]}
    return HeadScores(record.model_name, values, list(record.notes))


@dataclass(frozen=True)
class Specialist:
    """A head whose ``kind`` score reaches the threshold."""

    layer: int
    head: int
    kind: str
    score: float


def classify(scores: HeadScores, threshold: float | dict[str, float] | None = None):
    """Clear specialists, strongest first: heads whose mass score reaches the threshold.

    ``threshold`` is one number for every kind, or a dict per kind (missing kinds use
    :data:`DEFAULT_THRESHOLDS`). ``local`` is reported only for heads that are neither
    previous-token, next-token nor self heads, since its band contains those targets.
    """
    limits = dict(DEFAULT_THRESHOLDS)
    if isinstance(threshold, dict):
        unknown = set(threshold) - set(MASS_SCORES)
        if unknown:
            raise ValueError(f"threshold: unknown kinds {sorted(unknown)}; known {MASS_SCORES}")
        limits.update(threshold)
    elif threshold is not None:
        if not 0.0 < float(threshold) <= 1.0:
            raise ValueError(f"threshold: expected a number in (0, 1], got {threshold}")
        limits = dict.fromkeys(MASS_SCORES, float(threshold))
    found = []
    for kind in MASS_SCORES:
        values = scores.values.get(kind)
        if values is None:
            continue
        for layer, head in zip(*np.nonzero(np.nan_to_num(values) >= limits[kind]), strict=True):
            if kind == "local" and any(
                np.nan_to_num(scores.values[k][layer, head]) >= limits[k]
                for k in ("previous_token", "next_token", "self")
            ):
                continue
            found.append(Specialist(int(layer), int(head), kind, float(values[layer, head])))
    return sorted(found, key=lambda s: -s.score)


def repeated_random_tokens(
    vocab_size: int, length: int, seed: int, *, candidates=None
) -> np.ndarray:
    """``2 · length`` ids: ``length`` random tokens, then the same tokens again.

    Tokens are drawn without replacement when the vocabulary allows, so each token of the
    second half has exactly one earlier occurrence. ``candidates`` restricts the draw (e.g. to
    ids that are not special tokens).
    """
    if not isinstance(length, int) or length < 2:
        raise ValueError(f"length: expected an int ≥ 2, got {length!r}")
    pool = np.arange(vocab_size) if candidates is None else np.asarray(list(candidates))
    if pool.size == 0:
        raise ValueError("candidates: expected at least one token id to draw from")
    rng = np.random.default_rng(seed)
    first = rng.choice(pool, size=length, replace=length > pool.size)
    return np.concatenate([first, first]).astype(np.int64)


def _hf_ordinary_ids(tokenizer) -> np.ndarray:
    """Ids of a Hugging Face tokenizer that are not special, unused or added tokens."""
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    return np.array(
        [i for i, p in enumerate(pieces) if i not in special and p and not _SPECIAL.match(p)]
    )


def induction_record(model, *, length: int = 50, seed: int = 0, tokenizer=None) -> AttentionRecord:
    """Capture ``model`` on :func:`repeated_random_tokens`, framed by the special tokens the
    model's tokenizer adds to any input ([CLS] … [SEP] for BERT; none for SmolLM2, whose
    tokenizer adds no BOS). ``model`` is anything :func:`capture` accepts."""
    model, tokenizer, name = resolve_model(model, tokenizer, seed=seed)
    if hasattr(tokenizer, "build_inputs_with_special_tokens"):
        body = repeated_random_tokens(0, length, seed, candidates=_hf_ordinary_ids(tokenizer))
        ids = tokenizer.build_inputs_with_special_tokens(body.tolist())
    else:
        vocab = model.config.vocab_size if tokenizer is None else tokenizer.vocab_size
        ids = repeated_random_tokens(vocab, length, seed).tolist()
    record = capture(model, ids, tokenizer=tokenizer, strict=True)
    record.model_name = name
    record.notes.append(f"input: {length} random tokens repeated twice (seed {seed})")
    return record


def compare_trained_random(name: str, *, length: int = 50, seed: int = 0) -> dict[str, HeadScores]:
    """Scores of the pretrained ``name`` and of the same architecture randomly initialised,
    on the same repeated random tokens: ``{"trained": …, "random": …}``."""
    return {
        "trained": head_scores(induction_record(name, length=length, seed=seed)),
        "random": head_scores(induction_record(f"random:{name}", length=length, seed=seed)),
    }


__all__ = [
    "DEFAULT_THRESHOLDS",
    "MASS_SCORES",
    "SCORES",
    "HeadScores",
    "Specialist",
    "classify",
    "compare_trained_random",
    "head_scores",
    "induction_record",
    "is_delimiter",
    "pattern_scores",
    "repeated_random_tokens",
    "target_patterns",
]
