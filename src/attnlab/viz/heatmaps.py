"""PNG figures of attention patterns, drawn from plain arrays with matplotlib's Agg canvas.

Each figure has a builder that returns a ``matplotlib.figure.Figure`` (for notebooks and tests)
and a ``plot_*`` twin that writes it to a file and returns the path. Figures are made with
``Figure`` directly, not ``pyplot``, so nothing is registered globally and no display is needed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from .arrays import (
    as_array,
    as_tokens,
    as_weights,
    causal_blank,
    check_index,
    is_record,
    unpack_record,
)

DPI = 120
LABEL_CHARS = 14  # longer tokens are cut with an ellipsis so labels do not eat the figure


def token_label(token: str, limit: int = LABEL_CHARS) -> str:
    """A token as a tick label: control characters shown, whitespace visible, long ones cut."""
    text = token.replace("\n", "↵").replace("\t", "⇥").replace("\r", "")
    if not text.strip():
        text = text.replace(" ", "␣") or "∅"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tick_plan(count: int, length_in: float, largest: float = 10.0) -> tuple[float, int]:
    """(font size in points, label every n-th) so ``count`` labels fit along ``length_in``."""
    space = length_in * 72 / count  # points available per label
    size = float(np.clip(space * 0.8, 5.0, largest))
    return size, max(1, math.ceil(size * 1.25 / space))


def _token_ticks(ax, axis: str, tokens: list[str], length_in: float, largest: float = 10.0):
    size, step = _tick_plan(len(tokens), length_in, largest)
    positions = list(range(0, len(tokens), step))
    labels = [token_label(tokens[i]) for i in positions]
    # parse_math=False: a token such as "$x$" is text, not a formula to typeset.
    if axis == "x":
        ax.set_xticks(positions, labels, rotation=90, fontsize=size, parse_math=False)
    else:
        ax.set_yticks(positions, labels, fontsize=size, parse_math=False)


def _colormap(cmap) -> Colormap:
    if isinstance(cmap, Colormap):
        return cmap
    try:
        return colormaps[cmap]
    except KeyError:
        raise ValueError(f"cmap: unknown matplotlib colormap {cmap!r}") from None


def _draw_pattern(ax, pattern: np.ndarray, causal: bool, vmax: float | None, cmap="Blues"):
    """Draw one ``(seq_q, seq_k)`` pattern; with ``causal``, what a query cannot see is blank."""
    data = np.ma.masked_array(pattern, mask=causal_blank(*pattern.shape)) if causal else pattern
    top = float(pattern.max()) if vmax is None else vmax
    return ax.imshow(
        data,
        cmap=_colormap(cmap).with_extremes(bad="white"),
        vmin=0.0,
        vmax=max(top, 1e-12),
        interpolation="nearest",
        aspect="auto",
    )


def _side(count: int, per_token: float, low: float, high: float) -> float:
    return float(np.clip(per_token * count, low, high))


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` (format from the suffix, PNG by default) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # Tokens in scripts DejaVu Sans lacks are drawn as boxes; a warning per glyph is noise.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        figure.savefig(path, dpi=DPI)
    return path


def head_figure(
    weights,
    tokens_q: Sequence[str],
    tokens_k: Sequence[str] | None = None,
    *,
    title: str = "",
    causal_mask_upper: bool = False,
    vmax: float | None = 1.0,
) -> Figure:
    """One head's ``(seq_q, seq_k)`` pattern, queries down the side and keys along the bottom.

    ``vmax=None`` stretches the colours to the pattern's largest weight (for diffuse heads).
    """
    pattern = as_array("weights", weights, 2)
    seq_q, seq_k = pattern.shape
    tokens_q = as_tokens("tokens_q", tokens_q, seq_q)
    if tokens_k is None and seq_k != seq_q:
        raise ValueError(f"tokens_k: required when seq_k ({seq_k}) differs from seq_q ({seq_q})")
    tokens_k = tokens_q if tokens_k is None else as_tokens("tokens_k", tokens_k, seq_k)
    width, height = _side(seq_k, 0.22, 3.0, 12.0), _side(seq_q, 0.22, 3.0, 12.0)
    figure = Figure(figsize=(width + 2.2, height + 1.6), layout="constrained")
    ax = figure.add_subplot()
    image = _draw_pattern(ax, pattern, causal_mask_upper, vmax)
    _token_ticks(ax, "x", tokens_k, width)
    _token_ticks(ax, "y", tokens_q, height)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title, parse_math=False)
    figure.colorbar(image, ax=ax, shrink=0.8, label="attention weight")
    return figure


def plot_head(
    weights,
    tokens_q: Sequence[str],
    tokens_k: Sequence[str] | None = None,
    *,
    path: str | Path,
    title: str = "",
    causal_mask_upper: bool = False,
    vmax: float | None = 1.0,
) -> Path:
    """Write :func:`head_figure` to ``path``."""
    figure = head_figure(
        weights, tokens_q, tokens_k, title=title, causal_mask_upper=causal_mask_upper, vmax=vmax
    )
    return save_figure(figure, path)


def layer_grid_figure(
    layer_weights,
    tokens: Sequence[str],
    *,
    title: str = "",
    causal_mask_upper: bool = False,
    vmax: float | None = 1.0,
) -> Figure:
    """Every head of one layer, ``(heads, seq, seq)``, in a near-square grid with one colour bar."""
    layer = as_array("layer_weights", layer_weights, 3)
    heads, seq_q, seq_k = layer.shape
    if seq_q != seq_k:
        raise ValueError(f"layer_weights: expected (heads, seq, seq), got shape {layer.shape}")
    tokens = as_tokens("tokens", tokens, seq_k)
    columns = math.ceil(math.sqrt(heads))
    rows = math.ceil(heads / columns)
    panel = _side(seq_k, 0.12, 2.0, 4.5)
    figure = Figure(figsize=(columns * panel + 2.5, rows * panel + 1.5), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    image = None
    for index, ax in enumerate(axes.flat):
        if index >= heads:
            ax.set_axis_off()
            continue
        image = _draw_pattern(ax, layer[index], causal_mask_upper, vmax)
        ax.set_title(f"head {index}", fontsize=9)
        # Token labels on the outer edges only: the left column and each column's lowest panel.
        if index % columns == 0:
            _token_ticks(ax, "y", tokens, panel, largest=8)
        else:
            ax.set_yticks([])
        if index + columns >= heads:
            _token_ticks(ax, "x", tokens, panel, largest=8)
        else:
            ax.set_xticks([])
    if title:
        figure.suptitle(title, parse_math=False)
    figure.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    return figure


def plot_layer_grid(
    layer_weights,
    tokens: Sequence[str],
    path: str | Path,
    *,
    title: str = "",
    causal_mask_upper: bool = False,
    vmax: float | None = 1.0,
) -> Path:
    """Write :func:`layer_grid_figure` to ``path``."""
    figure = layer_grid_figure(
        layer_weights, tokens, title=title, causal_mask_upper=causal_mask_upper, vmax=vmax
    )
    return save_figure(figure, path)


def score_map_figure(
    scores,
    *,
    title: str = "",
    cmap: str | Colormap = "viridis",
    label: str = "score",
    annotate: bool | None = None,
) -> Figure:
    """A ``(layers, heads)`` map of any per-head score; values are written in the cells when
    ``annotate`` is True, or by default when there are at most 144 cells."""
    scores = as_array("scores", scores, 2)
    layers, heads = scores.shape
    colormap = _colormap(cmap)
    width, height = _side(heads, 0.45, 3.0, 14.0), _side(layers, 0.35, 2.0, 12.0)
    figure = Figure(figsize=(width + 2.0, height + 1.4), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(scores, cmap=colormap, aspect="auto", interpolation="nearest")
    for axis, count, length in (("x", heads, width), ("y", layers, height)):
        size, step = _tick_plan(count, length)
        ticks = list(range(0, count, step))
        setter = ax.set_xticks if axis == "x" else ax.set_yticks
        setter(ticks, [str(t) for t in ticks], fontsize=size)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if annotate or (annotate is None and scores.size <= 144):
        for (row, column), value in np.ndenumerate(scores):
            red, green, blue, _ = colormap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # luma: pick a legible ink
            ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
    if title:
        ax.set_title(title, parse_math=False)
    figure.colorbar(image, ax=ax, shrink=0.8, label=label)
    return figure


def plot_score_map(
    scores,
    path: str | Path,
    title: str = "",
    cmap: str | Colormap = "viridis",
    *,
    label: str = "score",
    annotate: bool | None = None,
) -> Path:
    """Write :func:`score_map_figure` to ``path``."""
    figure = score_map_figure(scores, title=title, cmap=cmap, label=label, annotate=annotate)
    return save_figure(figure, path)


def cosine_similarity(a, b) -> float:
    """cos θ = a·b / (‖a‖ ‖b‖) of two vectors of one length."""
    a, b = as_array("vector_a", a, 1), as_array("vector_b", b, 1)
    if a.shape != b.shape:
        raise ValueError(f"vector_b: expected shape {a.shape} like vector_a, got {b.shape}")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        raise ValueError("vector_a, vector_b: the cosine of a zero vector is undefined")
    return float(a @ b) / norms


def two_contexts_figure(
    row_a,
    tokens_a: Sequence[str],
    row_b,
    tokens_b: Sequence[str],
    vector_a,
    vector_b,
    *,
    word: str = "",
    labels: tuple[str, str] = ("context A", "context B"),
    position_a: int | None = None,
    position_b: int | None = None,
    title: str = "",
) -> Figure:
    """One word in two contexts: its attention row in each (bars over that context's tokens,
    the word's own position in orange) and the cosine similarity of its two contextual vectors.

    A polysemous word ("bank" by a river, "bank" that loans money) should attend to different
    neighbours and end with vectors further apart than the same word in similar sentences.
    """
    cosine = cosine_similarity(vector_a, vector_b)
    panels = []
    for name, row, tokens, position in (
        ("row_a", row_a, tokens_a, position_a),
        ("row_b", row_b, tokens_b, position_b),
    ):
        row = as_array(name, row, 1)
        tokens = as_tokens(f"tokens_{name[-1]}", tokens, row.size)
        if position is not None:
            position = check_index(f"position_{name[-1]}", position, row.size)
        panels.append((row, tokens, position))
    longest = max(row.size for row, _, _ in panels)
    height = _side(longest, 0.26, 2.0, 12.0)
    figure = Figure(figsize=(10.0, height + 1.6), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    top = max(float(row.max()) for row, _, _ in panels)
    for ax, label, (row, tokens, position) in zip(axes, labels, panels, strict=True):
        colours = ["tab:blue"] * row.size
        if position is not None:
            colours[position] = "tab:orange"
        ax.barh(np.arange(row.size), row, color=colours)
        _token_ticks(ax, "y", tokens, height)
        ax.invert_yaxis()  # first token at the top, as the sentence reads
        ax.set_xlim(0.0, max(top, 1e-12) * 1.05)
        ax.set_xlabel("attention weight")
        ax.set_title(label, parse_math=False)
    heading = title or (f"“{word}” in two contexts" if word else "one word in two contexts")
    figure.suptitle(
        f"{heading}: cosine similarity of its contextual vectors = {cosine:.3f}", parse_math=False
    )
    return figure


def plot_two_contexts(
    row_a,
    tokens_a: Sequence[str],
    row_b,
    tokens_b: Sequence[str],
    vector_a,
    vector_b,
    path: str | Path,
    *,
    word: str = "",
    labels: tuple[str, str] = ("context A", "context B"),
    position_a: int | None = None,
    position_b: int | None = None,
    title: str = "",
) -> Path:
    """Write :func:`two_contexts_figure` to ``path``."""
    figure = two_contexts_figure(
        row_a, tokens_a, row_b, tokens_b, vector_a, vector_b, word=word, labels=labels,
        position_a=position_a, position_b=position_b, title=title,
    )  # fmt: skip
    return save_figure(figure, path)


def _panel(index: int, panel) -> tuple[list[str], np.ndarray, str, bool]:
    """(tokens, weights (L, H, T, T), title, causal) from a record-like object or a tuple."""
    if is_record(panel):
        tokens, weights, causal, name = unpack_record(panel)
        return tokens, weights, name or f"panel {index}", causal
    if isinstance(panel, (tuple, list)) and len(panel) in (3, 4):
        weights = as_weights(f"panels[{index}] weights", panel[1])
        tokens = as_tokens(f"panels[{index}] tokens", panel[0], weights.shape[-1])
        causal = bool(panel[3]) if len(panel) == 4 else False
        return tokens, weights, str(panel[2]), causal
    raise TypeError(
        f"panels[{index}]: expected a record (with .tokens and .weights) or a "
        f"(tokens, weights, title[, causal]) tuple, got {type(panel).__name__}"
    )


def side_by_side_figure(panels: Sequence, layer: int, head: int, *, title: str = "") -> Figure:
    """The same layer and head of several models (a GPT beside a BERT), one panel each.

    ``panels`` holds record-like objects or ``(tokens, weights (L, H, T, T), title[, causal])``
    tuples; causal panels draw their upper triangle blank.
    """
    if not isinstance(panels, Sequence) or isinstance(panels, str) or not panels:
        raise ValueError("panels: expected a non-empty list of records or tuples")
    items = [_panel(index, panel) for index, panel in enumerate(panels)]
    side = max(_side(len(tokens), 0.2, 3.0, 8.0) for tokens, _, _, _ in items)
    figure = Figure(figsize=(len(items) * (side + 1.6) + 1.2, side + 1.8), layout="constrained")
    axes = figure.subplots(1, len(items), squeeze=False)[0]
    image = None
    for index, (ax, (tokens, weights, name, causal)) in enumerate(zip(axes, items, strict=True)):
        layers, heads = weights.shape[:2]
        chosen_layer = check_index(f"layer (panels[{index}], {name})", layer, layers)
        chosen_head = check_index(f"head (panels[{index}], {name})", head, heads)
        image = _draw_pattern(ax, weights[chosen_layer, chosen_head], causal, 1.0)
        _token_ticks(ax, "x", tokens, side)
        _token_ticks(ax, "y", tokens, side)
        ax.set_title(f"{name}: layer {chosen_layer}, head {chosen_head}", parse_math=False)
        ax.set_xlabel("key")
    axes[0].set_ylabel("query")
    if title:
        figure.suptitle(title, parse_math=False)
    figure.colorbar(image, ax=list(axes), shrink=0.8, label="attention weight")
    return figure


def plot_side_by_side(
    panels: Sequence, layer: int, head: int, path: str | Path, *, title: str = ""
) -> Path:
    """Write :func:`side_by_side_figure` to ``path``."""
    return save_figure(side_by_side_figure(panels, layer, head, title=title), path)
