"""KV cache bytes against the tensors of a filled attnlab.nn.KVCache."""

import pytest
import torch

from attnlab.calc import dtype_bytes, kv_cache, kv_cache_layouts
from attnlab.nn import GPT, GPTConfig, KVCache

TORCH_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LAYOUTS = [(8, 8), (8, 2), (8, 1)]  # MHA, GQA, MQA


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize(("heads", "kv"), LAYOUTS)
def test_matches_a_filled_cache(heads, kv, dtype):
    layers, batch, head_dim, max_len, filled = 3, 2, 16, 20, 7
    cache = KVCache(layers, batch, kv, head_dim, max_len, dtype=TORCH_DTYPES[dtype])
    for layer in cache.layers:
        k = torch.randn(batch, kv, filled, head_dim).to(TORCH_DTYPES[dtype])
        layer.append(k, torch.randn_like(k))
    size = kv_cache(layers, heads, head_dim, kv, context=filled, batch=batch, dtype=dtype)
    assert size.total_bytes == cache.used_bytes
    assert size.bytes_per_token * batch * max_len == cache.nbytes
    assert size.layout == {8: "mha", 2: "gqa", 1: "mqa"}[kv]


@pytest.mark.parametrize(("heads", "kv"), LAYOUTS)
def test_matches_the_cache_a_gpt_fills(heads, kv):
    model = GPT(
        GPTConfig(vocab_size=30, context=24, n_layers=2, d_model=32, n_heads=heads, n_kv_heads=kv)
    )
    cache = model.new_cache(batch=3)
    model(torch.zeros(3, 9, dtype=torch.long), cache=cache)
    size = kv_cache(2, heads, 32 // heads, kv, context=9, batch=3, dtype="fp32")
    assert size.total_bytes == cache.used_bytes
    assert sum(part.value for part in size.parts) == size.total_bytes


def test_exercise_13_14_70b_in_fp16():
    """L = 80, h = 64, d_k = 128, fp16: 2.62 MB per token, 85.9 GB (80 GiB) at 32K tokens."""
    size = kv_cache(80, 64, 128, context=32768, dtype="fp16")
    assert size.bytes_per_token == 2 * 80 * 64 * 128 * 2 == 2_621_440
    assert size.bytes_per_token / 1e6 == pytest.approx(2.62, abs=0.005)
    assert size.total_bytes == 85_899_345_920 == 80 * 2**30


def test_exercise_13_23_mqa_saving_for_12_layers_12_heads():
    mha, gqa, mqa = kv_cache_layouts(12, 12, 64, context=1024)
    assert (mha.layout, gqa.layout, mqa.layout) == ("mha", "gqa", "mqa")
    assert mha.total_bytes == 12 * mqa.total_bytes
    assert mqa.fraction_of_mha == pytest.approx(1 / 12)
    assert gqa.n_kv_heads == 3  # groups of four query heads


def test_given_gqa_is_used_and_single_head_has_one_row():
    assert [s.n_kv_heads for s in kv_cache_layouts(2, 64, 128, 8)] == [64, 8, 1]
    assert [s.layout for s in kv_cache_layouts(2, 1, 64)] == ["mha"]
    assert [s.layout for s in kv_cache_layouts(2, 2, 64)] == ["mha", "mqa"]


def test_dtype_sizes():
    assert [dtype_bytes(n) for n in ("fp32", "fp16", "bf16", "int8", "fp8")] == [4, 2, 2, 1, 1]
    assert dtype_bytes("BFloat16") == 2
    with pytest.raises(ValueError, match=r"dtype: expected one of .* got 'fp4'"):
        dtype_bytes("fp4")
