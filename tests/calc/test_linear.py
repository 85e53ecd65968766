"""Matmul FLOPs of linear attention: the closed forms against FlopCounterMode on real calls."""

import inspect

import pytest
import torch

from attnlab.calc import attention_ops, linear_attention_ops
from attnlab.experiments.linear_attention import flop_counter
from attnlab.functional.feature_maps import FavorPlusFeatureMap, feature_map
from attnlab.functional.linear import CHUNK, linear_attention


def counted(fm, seq, head_dim, d_value, causal, heads=2):
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, heads, seq, head_dim, generator=g) for _ in range(2))
    v = torch.randn(1, heads, seq, d_value, generator=g)
    counter = flop_counter()  # FlopCounterMode, counting in-place products too
    with torch.inference_mode(), counter:
        linear_attention(q, k, v, fm, causal=causal)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", ["elu", "poly2", "favor+"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("seq", "d_value"), [(128, 8), (200, 12), (40, 8)])
def test_closed_form_equals_flop_counter(name, causal, seq, d_value):
    # 200 = 3 chunks of 64 and a last one of 8; 40 < CHUNK is one chunk of 40
    head_dim = 8
    fm = FavorPlusFeatureMap(16, head_dim=head_dim) if name == "favor+" else feature_map(name)
    ops = linear_attention_ops(
        seq,
        head_dim,
        fm.output_dim(head_dim),
        d_value=d_value,
        causal=causal,
        projection=name == "favor+",
        n_heads=2,
    )
    assert ops.matmul_flops == counted(fm, seq, head_dim, d_value, causal)
    assert ops.matmul_flops == sum(part.value for part in ops.parts)


def test_default_chunk_is_the_implementation_s():
    assert inspect.signature(linear_attention_ops).parameters["chunk"].default == CHUNK


def test_softmax_side_and_the_linear_growth():
    plain = linear_attention_ops(1024, 64, 64, n_heads=8)
    assert plain.softmax_matmul_flops == attention_ops(1024, 1024, 64, n_heads=8).matmul_flops
    assert plain.matmul_flops == 8 * 2 * 1024 * 64 * (2 * 64 + 1)  # 2·T·r·(2·d_v + 1)
    causal = linear_attention_ops(1024, 64, 64, causal=True, n_heads=8)
    assert causal.softmax_matmul_flops == 8 * 1024 * 1025 * 128  # the pairs j ≤ i
    # doubling T doubles the linear count (whole chunks) and quadruples the softmax one
    twice = linear_attention_ops(2048, 64, 64, causal=True, n_heads=8)
    assert twice.matmul_flops == 2 * causal.matmul_flops
    assert twice.softmax_matmul_flops / causal.softmax_matmul_flops == pytest.approx(4, rel=1e-3)
    assert twice.flop_ratio == pytest.approx(2 * causal.flop_ratio, rel=1e-3)
    data = causal.to_dict()
    assert data["breakdown"]["chunk_scores"] == 8 * 2 * 64 * 64 * 1024


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq": 0}, "seq: expected a positive integer, got 0"),
        ({"n_features": -1}, "n_features: expected a positive integer, got -1"),
        ({"chunk": 0}, "chunk: expected a positive integer, got 0"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    args = {"seq": 16, "head_dim": 8, "n_features": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        linear_attention_ops(**args)
    with pytest.raises(TypeError, match="causal: expected True or False"):
        linear_attention_ops(16, 8, 8, causal=1)


@pytest.mark.parametrize("name", ["elu", "relu", "poly2", "favor+"])
@pytest.mark.parametrize("head_dim", [4, 64])
def test_feature_dim_is_the_maps_output_dim(name, head_dim):
    from attnlab.calc import feature_dim

    fm = FavorPlusFeatureMap(48, head_dim=head_dim) if name == "favor+" else feature_map(name)
    assert feature_dim(name, head_dim, 48) == (fm.output_dim(head_dim), name == "favor+")


def test_feature_dim_names_the_known_maps():
    from attnlab.calc import feature_dim

    with pytest.raises(ValueError, match=r"feature_map: expected one of .*'poly2'.*got 'poly3'"):
        feature_dim("poly3", 8)
