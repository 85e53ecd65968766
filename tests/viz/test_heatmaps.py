"""PNG figures: every builder writes a readable PNG, labels the tokens and refuses bad input."""

from dataclasses import dataclass

import matplotlib.image
import numpy as np
import pytest

from attnlab.viz import (
    cosine_similarity,
    head_figure,
    layer_grid_figure,
    plot_head,
    plot_layer_grid,
    plot_score_map,
    plot_side_by_side,
    plot_two_contexts,
    score_map_figure,
    side_by_side_figure,
    two_contexts_figure,
)
from attnlab.viz.heatmaps import token_label

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOKENS = ["The", "river", "bank", "was", "muddy", "."]


def softmax_weights(layers, heads, seq, *, causal, seed=0) -> np.ndarray:
    scores = np.random.default_rng(seed).normal(size=(layers, heads, seq, seq)) * 2
    if causal:
        scores = np.where(np.triu(np.ones((seq, seq), bool), 1), -np.inf, scores)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    return (scores / scores.sum(-1, keepdims=True)).astype(np.float32)


@dataclass
class Record:
    tokens: list
    weights: np.ndarray
    model_name: str
    causal: bool


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10  # not a blank canvas


def tick_texts(labels) -> list[str]:
    return [label.get_text() for label in labels]


def test_plot_head_writes_png_with_token_labels(tmp_path):
    weights = softmax_weights(1, 1, 6, causal=True)[0, 0]
    path = plot_head(weights, TOKENS, path=tmp_path / "head.png", title="layer 0, head 0")
    assert path == tmp_path / "head.png"
    assert_png(path)
    ax = head_figure(weights, TOKENS, causal_mask_upper=True).axes[0]
    assert tick_texts(ax.get_xticklabels()) == TOKENS
    assert tick_texts(ax.get_yticklabels()) == TOKENS


def test_causal_mask_blanks_exactly_the_upper_triangle():
    weights = softmax_weights(1, 1, 6, causal=True)[0, 0]
    image = head_figure(weights, TOKENS, causal_mask_upper=True).axes[0].images[0]
    mask = np.ma.getmaskarray(image.get_array())
    assert (mask == np.triu(np.ones((6, 6), bool), 1)).all()
    plain = head_figure(weights, TOKENS).axes[0].images[0]
    assert not np.ma.getmaskarray(plain.get_array()).any()


def test_cross_attention_labels_keys_separately():
    keys = ["a", "b", "c", "d"]
    weights = np.full((2, 4), 0.25)
    ax = head_figure(weights, ["q0", "q1"], keys).axes[0]
    assert tick_texts(ax.get_xticklabels()) == keys
    with pytest.raises(ValueError, match="tokens_k"):
        head_figure(weights, ["q0", "q1"])


def test_long_token_lists_are_thinned_and_shrunk():
    tokens = [f"token{i}" for i in range(300)]
    weights = np.full((300, 300), 1 / 300)
    ax = head_figure(weights, tokens).axes[0]
    shown = tick_texts(ax.get_yticklabels())
    assert 10 < len(shown) < 300
    step = int(ax.get_yticks()[1])
    assert shown == [tokens[i] for i in range(0, 300, step)]
    assert ax.get_yticklabels()[0].get_fontsize() < 10


def test_token_labels_show_whitespace_and_are_not_parsed_as_math(tmp_path):
    assert token_label("\n") == "↵"
    assert token_label("  ") == "␣␣"
    assert token_label("x" * 40).endswith("…") and len(token_label("x" * 40)) == 14
    tokens = ["$", "$x$", "a$b$c", "\\frac", "_{", "^"]
    weights = np.full((6, 6), 1 / 6)
    assert_png(plot_head(weights, tokens, path=tmp_path / "math.png", title="$not math$"))
    ax = head_figure(weights, tokens).axes[0]
    assert tick_texts(ax.get_xticklabels()) == tokens


def test_plot_layer_grid_labels_outer_edges(tmp_path):
    layer = softmax_weights(1, 5, 6, causal=False)[0]
    assert_png(plot_layer_grid(layer, TOKENS, tmp_path / "layer.png", title="layer 0"))
    figure = layer_grid_figure(layer, TOKENS)
    axes = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
    panels = [ax for ax in axes if ax.axison]
    assert [ax.get_title() for ax in panels] == [f"head {h}" for h in range(5)]
    assert tick_texts(panels[0].get_yticklabels()) == TOKENS  # left column
    assert tick_texts(panels[1].get_yticklabels()) == []  # inner panel
    assert tick_texts(panels[4].get_xticklabels()) == TOKENS  # lowest in its column


def test_plot_score_map_annotates_small_maps(tmp_path):
    scores = np.arange(12.0).reshape(3, 4) / 12
    assert_png(plot_score_map(scores, tmp_path / "scores.png", "previous-token", "magma"))
    ax = score_map_figure(scores).axes[0]
    assert len(ax.texts) == 12 and ax.texts[5].get_text() == f"{5 / 12:.2f}"
    assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
    assert not score_map_figure(np.zeros((30, 12))).axes[0].texts  # too many cells to label
    with pytest.raises(ValueError, match="cmap"):
        score_map_figure(scores, cmap="no-such-map")


def test_plot_two_contexts_shows_both_rows_and_the_cosine(tmp_path):
    river = ["we", "sat", "on", "the", "bank", "of", "the", "river"]
    money = ["the", "bank", "loaned", "money"]
    row_a = np.full(8, 1 / 8)
    row_b = np.array([0.1, 0.2, 0.3, 0.4])
    vector_a, vector_b = np.array([1.0, 2.0, 0.0]), np.array([2.0, 1.0, 1.0])
    path = plot_two_contexts(
        row_a, river, row_b, money, vector_a, vector_b, tmp_path / "two.png",
        word="bank", position_a=4, position_b=1,
    )  # fmt: skip
    assert_png(path)
    expected = vector_a @ vector_b / (np.linalg.norm(vector_a) * np.linalg.norm(vector_b))
    assert cosine_similarity(vector_a, vector_b) == pytest.approx(expected)
    figure = two_contexts_figure(row_a, river, row_b, money, vector_a, vector_b, word="bank")
    assert f"{expected:.3f}" in figure.get_suptitle() and "bank" in figure.get_suptitle()
    left, right = figure.axes[:2]
    assert tick_texts(left.get_yticklabels()) == river
    assert tick_texts(right.get_yticklabels()) == money
    assert [bar.get_width() for bar in right.patches] == pytest.approx(row_b)
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity(np.zeros(3), vector_b)
    with pytest.raises(ValueError, match="tokens_b"):
        two_contexts_figure(row_a, river, row_b, money[:3], vector_a, vector_b)


def test_plot_side_by_side_takes_records_and_tuples(tmp_path):
    gpt = Record(TOKENS, softmax_weights(2, 3, 6, causal=True), "gpt-toy", True)
    bert_tokens = ["[CLS]", "the", "bank", "[SEP]"]
    bert = (bert_tokens, softmax_weights(4, 2, 4, causal=False, seed=1), "bert-toy")
    assert_png(plot_side_by_side([gpt, bert], 1, -1, tmp_path / "side.png", title="GPT vs BERT"))
    figure = side_by_side_figure([gpt, bert], 1, 1)
    left, right = figure.axes[:2]
    assert left.get_title() == "gpt-toy: layer 1, head 1"
    assert right.get_title() == "bert-toy: layer 1, head 1"
    assert tick_texts(right.get_xticklabels()) == bert_tokens
    assert np.ma.getmaskarray(left.images[0].get_array())[0, 1]  # causal panel masked
    assert not np.ma.getmaskarray(right.images[0].get_array()).any()
    with pytest.raises(ValueError, match=r"head \(panels\[1\], bert-toy\)"):
        side_by_side_figure([gpt, bert], 0, 2)  # bert-toy has two heads
    with pytest.raises(TypeError, match="panels"):
        side_by_side_figure([gpt, "not a panel"], 0, 0)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match=r"weights: expected 2 dimensions"):
        head_figure(np.zeros((2, 3, 3)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="tokens_q: expected 3 tokens"):
        head_figure(np.eye(3), ["a", "b"])
    with pytest.raises(TypeError, match="tokens_q"):
        head_figure(np.eye(3), "abc")
    with pytest.raises(ValueError, match="finite"):
        head_figure(np.full((2, 2), np.nan), ["a", "b"])
    with pytest.raises(ValueError, match="layer_weights"):
        layer_grid_figure(np.eye(3), ["a", "b", "c"])
