"""Head-type scores of one model on the lab's two inputs, reduced to what the report shows.

Induction and duplicate-token scores need repeats, so they come from random tokens repeated
twice (where only copying predicts the second half); every other score comes from the
sentence, which is the text people read the heatmaps on.
"""

from __future__ import annotations

import numpy as np

from attnlab.inspect import (
    DEFAULT_THRESHOLDS,
    AttentionRecord,
    HeadScores,
    classify,
    head_scores,
)

FROM_REPEATS = ("induction", "duplicate")
# The columns of the report's score tables, in the order a reader meets them.
TABLE_SCORES = ("previous_token", "induction", "duplicate", "sink", "self", "local", "entropy")
SHOWN_KINDS = ("previous_token", "induction", "duplicate", "next_token", "sink", "delimiter")


def label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def merged_scores(text: AttentionRecord, repeats: AttentionRecord) -> HeadScores:
    """Scores per head: induction and duplicate from ``repeats``, the rest from ``text``."""
    on_text, on_repeats = head_scores(text), head_scores(repeats)
    values = {
        name: (on_repeats if name in FROM_REPEATS else on_text).values[name]
        for name in on_text.values
    }
    return HeadScores(text.model_name, values, list(on_text.notes))


def _best(scores: HeadScores, name: str) -> dict | None:
    values = scores.values.get(name)
    if values is None or np.isnan(values).all():
        return None
    layer, head, score = scores.best(name)
    return {"layer": layer, "head": head, "score": score, "label": label(layer, head)}


def summarise(scores: HeadScores, *, top: int = 6) -> dict:
    """JSON-ready: the best head per kind, the specialists (strongest first, ``top`` per kind
    listed, all counted) and the whole per-head table."""
    found = classify(scores)
    specialists: dict[str, dict] = {}
    for kind in DEFAULT_THRESHOLDS:
        of_kind = [s for s in found if s.kind == kind]
        if of_kind:
            specialists[kind] = {
                "count": len(of_kind),
                "threshold": DEFAULT_THRESHOLDS[kind],
                "heads": [
                    {"label": label(s.layer, s.head), "score": s.score} for s in of_kind[:top]
                ],
            }
    layers, heads = scores.shape
    table = [
        {"layer": row["layer"], "head": row["head"], **{k: row.get(k) for k in TABLE_SCORES}}
        for row in scores.table(sort_by="induction")
    ]
    return {
        "layers": layers,
        "heads": heads,
        "head_count": layers * heads,
        "best": {kind: _best(scores, kind) for kind in SHOWN_KINDS},
        "specialists": specialists,
        "specialist_count": len(found),
        "table": table,
    }
