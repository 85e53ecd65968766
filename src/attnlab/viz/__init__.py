"""Pictures of attention from plain arrays: PNG heatmaps and an offline interactive head view.

Everything here takes NumPy-like arrays and token lists (or any record-like object with
``.tokens``, ``.weights``, ``.causal`` and ``.model_name``); nothing here runs a model.
"""

from .head_view import HeadView, head_view_html, pattern_checksum, write_head_view
from .heatmaps import (
    cosine_similarity,
    head_figure,
    layer_grid_figure,
    plot_head,
    plot_layer_grid,
    plot_score_map,
    plot_side_by_side,
    plot_two_contexts,
    save_figure,
    score_map_figure,
    side_by_side_figure,
    two_contexts_figure,
)

__all__ = [
    "HeadView",
    "cosine_similarity",
    "head_figure",
    "head_view_html",
    "layer_grid_figure",
    "pattern_checksum",
    "plot_head",
    "plot_layer_grid",
    "plot_score_map",
    "plot_side_by_side",
    "plot_two_contexts",
    "save_figure",
    "score_map_figure",
    "side_by_side_figure",
    "two_contexts_figure",
    "write_head_view",
]
