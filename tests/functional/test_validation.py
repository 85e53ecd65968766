"""Bad input to the attention functions: errors that name the argument and what was seen."""

import pytest
import torch

from attnlab.functional import (
    argmax_attention,
    attention_scores,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from helpers import randn

Q, K, V = randn(2, 4, 5, 8), randn(2, 4, 6, 8, seed=1), randn(2, 4, 6, 3, seed=2)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (
            (Q, randn(2, 4, 6, 7), V),
            {},
            ValueError,
            ["query and key", "head_dim", "(2, 4, 5, 8)", "(2, 4, 6, 7)"],
        ),
        (
            (Q, K, randn(2, 4, 5, 3)),
            {},
            ValueError,
            ["key and value", "(2, 4, 6, 8)", "(2, 4, 5, 3)"],
        ),
        ((Q, randn(3, 4, 6, 8), randn(3, 4, 6, 3)), {}, ValueError, ["batch", "(3, 4, 6, 8)"]),
        ((Q.long(), K, V), {}, TypeError, ["query", "floating-point", "torch.int64"]),
        ((Q, K.float(), V), {}, TypeError, ["one dtype", "torch.float32"]),
        (([[1.0]], K, V), {}, TypeError, ["query", "torch.Tensor", "list"]),
        ((Q, K, V.masked_fill(V > 1, float("nan"))), {}, ValueError, ["value", "NaN"]),
        (
            (Q, K, V),
            {"attn_mask": torch.ones(5, 5, dtype=torch.bool)},
            ValueError,
            ["attn_mask", "(2, 4, 5, 6)", "(5, 5)"],
        ),
        (
            (Q, K, V),
            {"attn_mask": torch.ones(3, 1, 5, 6, dtype=torch.bool)},
            ValueError,
            ["attn_mask", "(3, 1, 5, 6)"],
        ),
        (
            (Q, K, V),
            {"attn_mask": torch.ones(5, 6, dtype=torch.int64)},
            TypeError,
            ["attn_mask", "torch.bool", "torch.int64"],
        ),
        (
            (Q, K, V),
            {"attn_mask": torch.zeros(5, 6, dtype=torch.float32)},
            TypeError,
            ["attn_mask", "torch.float64", "torch.float32"],
        ),
        (
            (Q, K, V),
            {"attn_mask": torch.full((5, 6), float("nan"), dtype=torch.float64)},
            ValueError,
            ["attn_mask", "NaN"],
        ),
        (
            (Q, K, V),
            {"attn_mask": causal_mask(5, 6), "is_causal": True},
            ValueError,
            ["attn_mask", "is_causal"],
        ),
        ((Q, K[:, :3], V[:, :3]), {}, ValueError, ["enable_gqa=True"]),
        (
            (randn(2, 6, 5, 8), K, V),
            {"enable_gqa": True},
            ValueError,
            ["divide", "6", "4 key/value heads"],
        ),
        ((Q, K, V), {"dropout_p": 1.0}, ValueError, ["dropout_p", "[0, 1)", "1.0"]),
        ((Q, K, V), {"scale": float("nan")}, ValueError, ["scale", "finite"]),
        ((Q, K, V), {"dropout_p": 0.1, "generator": 3}, TypeError, ["generator", "int"]),
        ((randn(5), K, V), {}, ValueError, ["query", "at least 2 dims", "(5,)"]),
    ],
)
def test_errors_name_the_argument_and_the_shapes(args, kwargs, error, words):
    with pytest.raises(error) as info:
        scaled_dot_product_attention(*args, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_every_entry_point_validates():
    bad_key = randn(2, 4, 6, 7)
    for call in (
        lambda: attention_scores(Q, bad_key),
        lambda: argmax_attention(Q, bad_key, V),
        lambda: scaled_dot_product_attention(Q, bad_key, V, return_weights=True),
    ):
        with pytest.raises(ValueError, match="head_dim"):
            call()


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: causal_mask(0), ["seq_q", "positive integer", "0"]),
        (lambda: causal_mask(3, 2.5), ["seq_k", "2.5"]),
        (lambda: causal_mask(3, align="left"), ["align", "bottom_right", "'left'"]),
        (lambda: padding_mask([1, 7], 5), ["lengths", "[0, 5]", "[1, 7]"]),
        (lambda: padding_mask([1.5], 5), ["lengths", "integers"]),
        (lambda: padding_mask(torch.tensor([[1]]), 5), ["lengths", "(batch,)", "(1, 1)"]),
        (lambda: padding_mask([1], 0), ["seq_len"]),
    ],
)
def test_mask_builders_reject_bad_input(call, words):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
