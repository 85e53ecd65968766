"""An interactive head view: one self-contained HTML file (or notebook cell) per captured pattern.

The page works offline. Its CSS and JavaScript are read from this package's ``assets`` folder
and inlined; the data is embedded as JSON; a Content-Security-Policy allows exactly those two
inline blocks (by hash) and nothing else, so neither a network request nor an injected script
can run. Tokens reach the page only inside that JSON, escaped so that no token can end the
script block, and the script writes them with ``textContent``, never as markup.

Weights are stored quantised to uint16 (step 1/65535) and base64-encoded: 2⅔ bytes per weight,
so a 30-layer, 9-head capture of 100 tokens is about 7 MB.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from .arrays import as_tokens, as_weights, check_index, is_record, unpack_record

SCALE = 65535  # weights are stored as round(weight · SCALE) in uint16
ROOT_CLASS = "attnlab-head-view"


@cache
def _asset(name: str) -> str:
    text = resources.files("attnlab.viz").joinpath("assets", name).read_text(encoding="utf-8")
    # Inlined verbatim, so the asset itself must not be able to close its own element.
    if "</script" in text.lower() or "</style" in text.lower():
        raise RuntimeError(f"viz asset {name} contains a closing tag and cannot be inlined")
    return text


def _quantise(weights: np.ndarray) -> np.ndarray:
    return np.rint(weights * SCALE).astype("<u2")


def _fnv1a(values: np.ndarray) -> str:
    digest = 0x811C9DC5
    for value in values.ravel().tolist():
        digest = ((digest ^ value) * 0x01000193) & 0xFFFFFFFF
    return f"{digest:08x}"


def pattern_checksum(weights, layer: int, head: int) -> str:
    """The checksum the page shows for ``weights[layer, head]`` (FNV-1a over its stored values).

    Lets a test (or a reader) check that the pattern on screen is the one asked for.
    """
    weights = as_weights("weights", weights)
    layer = check_index("layer", layer, weights.shape[0])
    head = check_index("head", head, weights.shape[1])
    return _fnv1a(_quantise(weights[layer, head]))


def script_json(data) -> str:
    """``data`` as JSON that is safe inside an HTML ``<script>`` element.

    ``<``, ``>`` and ``&`` become ``\\u003c`` … so no string can spell ``</script>`` or ``<!--``;
    ``ensure_ascii`` writes U+2028/U+2029 (and all non-ASCII) as ``\\uXXXX`` escapes.
    """
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _checked(tokens, weights) -> tuple[list[str], np.ndarray]:
    weights = as_weights("weights", weights)
    if weights.shape[-2] != weights.shape[-1]:
        raise ValueError(
            f"weights: expected (layers, heads, seq, seq) self-attention, got shape {weights.shape}"
        )
    return as_tokens("tokens", tokens, weights.shape[-1]), weights


def _root(tokens: list[str], weights: np.ndarray, causal: bool, title: str, model_name: str):
    """The view's root element: escaped heading, the JSON block; the script builds the rest."""
    layers, heads, seq, _ = weights.shape
    data = {
        "format": 1,
        "tokens": tokens,
        "layers": layers,
        "heads": heads,
        "seq": seq,
        "causal": bool(causal),
        "scale": SCALE,
        "weights": base64.b64encode(_quantise(weights).tobytes()).decode("ascii"),
    }
    description = f"{layers} layers × {heads} heads × {seq} tokens" + (
        ", causal (masked cells hatched)" if causal else ""
    )
    heading = f'<h1 class="hv-title">{html.escape(title)}</h1>\n' if title else ""
    model = f"{html.escape(model_name)} · " if model_name else ""
    return (
        f'<div class="{ROOT_CLASS}">\n{heading}'
        f'<p class="hv-model">{model}{html.escape(description)}</p>\n'
        f'<script type="application/json" class="hv-data">{script_json(data)}</script>\n'
        "<noscript>This view needs JavaScript.</noscript>\n</div>"
    )


def _csp_hash(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def _document(root: str, title: str) -> str:
    css, js = _asset("head_view.css"), _asset("head_view.js")
    policy = (
        f"default-src 'none'; script-src {_csp_hash(js)}; style-src {_csp_hash(css)}; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
        f"{root}\n<script>{js}</script>\n</body>\n</html>\n"
    )


def head_view_html(
    tokens: Sequence[str],
    weights,
    *,
    causal: bool = False,
    title: str = "",
    model_name: str = "",
) -> str:
    """A self-contained HTML page showing every layer and head of ``weights``.

    Args:
        tokens: the ``seq`` tokens, shown exactly as given (as text, never as markup).
        weights: ``(layers, heads, seq, seq)`` attention probabilities, or a list of per-layer
            ``(heads, seq, seq)`` / ``(1, heads, seq, seq)`` arrays as Hugging Face returns them.
        causal: draw the positions above the diagonal as masked (hatched), not as zeros.
        title, model_name: shown above the view (escaped).
    """
    tokens, weights = _checked(tokens, weights)
    root = _root(tokens, weights, causal, title, model_name)
    return _document(root, title or model_name or "attention head view")


def write_head_view(
    path: str | Path,
    tokens: Sequence[str],
    weights,
    *,
    causal: bool = False,
    title: str = "",
    model_name: str = "",
) -> Path:
    """Write :func:`head_view_html` to ``path`` (UTF-8) and return the path."""
    page = head_view_html(tokens, weights, causal=causal, title=title, model_name=model_name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


class HeadView:
    """The head view for a notebook (``_repr_html_``) or a file (:meth:`save`).

    ``HeadView(record)`` takes any object with ``.tokens`` and ``.weights`` (and optionally
    ``.causal`` and ``.model_name``); ``HeadView(tokens, weights, causal=...)`` takes arrays.
    Keyword arguments override what the record says.
    """

    def __init__(
        self,
        tokens_or_record,
        weights=None,
        *,
        causal: bool | None = None,
        title: str = "",
        model_name: str | None = None,
    ):
        if weights is None:
            if not is_record(tokens_or_record):
                raise TypeError(
                    "weights: required unless the first argument is a record with "
                    ".tokens and .weights"
                )
            tokens, weights, record_causal, record_name = unpack_record(tokens_or_record)
        else:
            tokens, weights = _checked(tokens_or_record, weights)
            record_causal, record_name = False, ""
        self.tokens = tokens
        self.weights = weights
        self.causal = record_causal if causal is None else bool(causal)
        self.model_name = record_name if model_name is None else model_name
        self.title = title

    def __repr__(self) -> str:
        layers, heads, seq, _ = self.weights.shape
        name = f"{self.model_name!r}, " if self.model_name else ""
        return f"HeadView({name}layers={layers}, heads={heads}, seq={seq}, causal={self.causal})"

    def _repr_html_(self) -> str:
        # A fragment, not a document: notebooks insert it into their own page. Without the
        # document's policy it still never treats a token as markup.
        root = _root(self.tokens, self.weights, self.causal, self.title, self.model_name)
        css, js = _asset("head_view.css"), _asset("head_view.js")
        return f"<style>{css}</style>\n{root}\n<script>{js}</script>"

    def html(self) -> str:
        """The full self-contained page."""
        return head_view_html(
            self.tokens,
            self.weights,
            causal=self.causal,
            title=self.title,
            model_name=self.model_name,
        )

    def save(self, path: str | Path) -> Path:
        """Write :meth:`html` to ``path`` and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
        return path
