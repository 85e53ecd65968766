"""One decoding step: FLOPs and bytes against a real cached step of MultiHeadAttention."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from attnlab.calc import decode_layouts, decode_step
from attnlab.nn import KVCache, MultiHeadAttention


@pytest.mark.parametrize(("heads", "kv"), [(4, 4), (4, 2), (4, 1)])
def test_flops_and_bytes_of_a_cached_step(heads, kv):
    batch, d, cached = 3, 32, 9
    module = MultiHeadAttention(d, heads, kv, bias=False, backend="naive")
    cache = KVCache(1, batch, kv, d // heads, cached + 1)
    with torch.no_grad():
        module(torch.randn(batch, cached, d), is_causal=True, cache=cache[0])  # the prompt
        with FlopCounterMode(display=False) as counter:
            module(torch.randn(batch, 1, d), is_causal=True, cache=cache[0])  # one new token
    step = decode_step(batch, cached + 1, d, heads, kv, dtype="fp32")
    assert counter.get_total_flops() == step.flops
    parts = {part.name: part.value for part in step.parts}
    assert parts["cache_bytes"] == cache.used_bytes  # keys and values read for n positions
    assert parts["weight_bytes"] == 4 * sum(p.numel() for p in module.parameters())


def test_big_o_terms_of_seed_003_problem_4():
    mha, gqa, mqa = decode_layouts(8, 4096, 4096, 32)
    assert mha.compute_big_o == mqa.compute_big_o == "O(b·d² + b·n·d)"  # (f)
    assert mha.memory_big_o == "O(d² + b·d + b·n·d)"
    assert mqa.memory_big_o == "O(d² + b·d + b·n·d/h)"  # (g)
    assert gqa.layout == "gqa" and gqa.n_kv_heads == 8


def test_mqa_cuts_cache_traffic_by_h_and_raises_intensity():
    batch, n, d, h = 8, 4096, 4096, 32
    mha, gqa, mqa = decode_layouts(batch, n, d, h)
    cache = {
        s.layout: next(p.value for p in s.parts if p.name == "cache_bytes") for s in (mha, gqa, mqa)
    }
    assert cache["mha"] == h * cache["mqa"] == 2 * batch * n * d * 2  # K and V, fp16
    assert mha.arithmetic_intensity < gqa.arithmetic_intensity < mqa.arithmetic_intensity
    # attention compute does not shrink: every query head still meets every key
    attention = {
        s.layout: next(p.value for p in s.parts if p.name == "attention_flops") for s in (mha, mqa)
    }
    assert attention["mha"] == attention["mqa"] == 4 * batch * h * (d // h) * n


def test_layers_scale_everything():
    one = decode_step(2, 64, 64, 4)
    six = decode_step(2, 64, 64, 4, n_layers=6)
    assert six.flops == 6 * one.flops and six.memory_bytes == 6 * one.memory_bytes
    assert six.arithmetic_intensity == pytest.approx(one.arithmetic_intensity)
