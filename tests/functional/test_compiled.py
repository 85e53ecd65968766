"""The compiled, fused elu kernels against the eager path and the float64 quadratic reference."""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from attnlab.functional import compiled, memory
from attnlab.functional.feature_maps import feature_map
from attnlab.functional.linear import (
    kernel_attention,
    linear_attend,
    linear_attention,
    linear_attention_decode,
)
from attnlab.functional.memory import cached_output_bytes, clear_output_cache, empty_output
from helpers import max_abs, randn


def test_kernels_build_wherever_there_is_a_compiler():
    if os.environ.get("CI") or shutil.which("cc") or shutil.which("gcc"):
        assert compiled.library() is not None, compiled.status()
        assert compiled.status().startswith("compiled kernels: on")


def _lib():
    if compiled.library() is None:
        pytest.fail(compiled.status())


def _qkv(batch, heads, kv_heads, seq, head_dim, d_value, seed=0):
    q = randn(batch, heads, seq, head_dim, seed=seed, dtype=torch.float32)
    k = randn(batch, kv_heads, seq, head_dim, seed=seed + 1, dtype=torch.float32)
    v = randn(batch, kv_heads, seq, d_value, seed=seed + 2, dtype=torch.float32)
    return q, k, v


def _fused_calls():
    return compiled.calls["noncausal"] + compiled.calls["causal"]


def test_features_equal_elu_plus_one_to_rounding():
    _lib()
    x = torch.cat([torch.linspace(-100, 60, 200_003), torch.tensor([0.0, -0.0, 1e-30, -1e-30])])
    ours, finite = compiled.elu_features(x)
    assert finite
    xd = x.double()
    reference = torch.where(xd > 0, xd + 1, xd.exp())  # elu(x) + 1 without cancellation
    kept = x >= -86  # below it exp(x) < 5e-38 and the kernel returns 0, never a subnormal
    rel = ((ours.double() - reference).abs() / reference)[kept]
    assert float(rel.max()) < 3e-7  # 2.5 ulp of float32
    assert bool((ours[~kept] == 0).all()) and float(reference[~kept].max()) < 5e-38
    # a length that is not a multiple of 16 takes the scalar tail
    tail, _ = compiled.elu_features(x[:37])
    assert max_abs(tail, ours[:37]) < 1e-6


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", [3, 16 * 50 + 5, 16 * 64 + 1])  # vector body and tail
def test_features_flag_every_non_finite_input(bad, where):
    _lib()
    x = torch.zeros(16 * 64 + 3)
    x[where] = bad
    assert not compiled.elu_features(x)[1]


SHAPES = [
    # batch, heads, kv_heads, seq, head_dim, d_value
    (1, 8, 8, 1000, 64, 64),  # tiles of 4 × 64, a last block of 1000 − 7·128 rows
    (2, 3, 3, 333, 24, 40),  # head_dim and d_value not multiples of 16 or 64
    (2, 4, 2, 257, 64, 64),  # grouped-query attention
    (1, 4, 1, 130, 16, 80),  # multi-query attention, d_value of 64 + 16
    (1, 1, 1, 5, 3, 2),  # smaller than every tile
]


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_equals_float64_reference_and_eager_path(shape, causal):
    _lib()
    q, k, v = _qkv(*shape)
    gqa = shape[1] != shape[2]
    reference = kernel_attention(
        q.double(), k.double(), v.double(), "elu", causal=causal, enable_gqa=gqa
    )
    before = _fused_calls()
    with torch.inference_mode():
        fused = linear_attention(q, k, v, "elu", causal=causal, enable_gqa=gqa)
    assert _fused_calls() == before + 1
    with torch.inference_mode(), compiled.use_compiled(False):
        eager = linear_attention(q, k, v, "elu", causal=causal, enable_gqa=gqa)
    assert _fused_calls() == before + 1
    scale = float(reference.abs().max())
    assert max_abs(fused, reference) < 2e-6 * scale
    assert max_abs(fused, eager) < 2e-6 * scale
    assert fused.shape == eager.shape and fused.dtype == torch.float32


@pytest.mark.parametrize("chunk", [1, 7, 64, 200])
def test_fused_causal_any_chunk_size(chunk):
    _lib()
    q, k, v = _qkv(1, 2, 2, 150, 32, 16, seed=3)
    reference = kernel_attention(q.double(), k.double(), v.double(), "elu", causal=True)
    with torch.no_grad():
        fused = linear_attention(q, k, v, "elu", causal=True, chunk_size=chunk)
    assert max_abs(fused, reference) < 2e-6 * float(reference.abs().max())


def test_fused_decode_in_pieces_equals_whole_and_carries_the_state():
    _lib()
    q, k, v = _qkv(2, 4, 2, 100, 16, 8, seed=5)
    with torch.inference_mode():
        whole = linear_attention(q, k, v, "elu", causal=True, enable_gqa=True)
        state, outs = None, []
        for a, b in [(0, 37), (37, 38), (38, 100)]:
            out, state = linear_attention_decode(
                q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], "elu", state, enable_gqa=True
            )
            outs.append(out)
        with compiled.use_compiled(False):
            _, eager_state = linear_attention_decode(q, k, v, "elu", enable_gqa=True)
    assert max_abs(torch.cat(outs, dim=2), whole) < 1e-5
    assert state.length == 100
    assert max_abs(state.sums, eager_state.sums) < 1e-5 * float(eager_state.sums.abs().max())


def test_one_thread_and_many_agree():
    _lib()
    q, k, v = _qkv(1, 1, 1, 2000, 64, 64, seed=7)  # one head: keys split between threads
    threads = torch.get_num_threads()
    try:
        with torch.inference_mode():
            torch.set_num_threads(1)
            one = [linear_attention(q, k, v, "elu", causal=c) for c in (False, True)]
            torch.set_num_threads(max(2, threads))
            many = [linear_attention(q, k, v, "elu", causal=c) for c in (False, True)]
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, many, strict=True):
        assert max_abs(a, b) < 1e-6


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", ["query", "key", "value"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_late_in_a_long_sequence_is_named(name, bad, causal):
    _lib()
    tensors = dict(zip(("query", "key", "value"), _qkv(1, 2, 2, 700, 32, 32), strict=True))
    tensors[name][0, 1, 650, 5] = bad
    before = _fused_calls()
    with torch.inference_mode(), pytest.raises(ValueError, match=f"^{name}: contains NaN"):
        linear_attention(*tensors.values(), "elu", causal=causal)
    assert _fused_calls() == before + 1  # the kernel ran, flagged it, and the eager path named it


@pytest.mark.parametrize("causal", [False, True])
def test_underflowing_normaliser_is_refused_with_the_eager_message(causal):
    _lib()
    q, k, v = _qkv(1, 2, 2, 300, 16, 16)
    q[0, 1, 250] = -200.0  # every feature of this query underflows to 0
    with torch.inference_mode(), pytest.raises(ValueError, match=r"normaliser.*\(0, 1, 250\)"):
        linear_attention(q, k, v, "elu", causal=causal)
    with torch.inference_mode(), pytest.raises(ValueError, match=r"normaliser.*\(0, 1, 250\)"):
        linear_attend(q, k, v, feature_map("elu"), causal=causal)


def test_autograd_float64_and_other_maps_stay_eager():
    _lib()
    q, k, v = _qkv(1, 2, 2, 40, 8, 8)
    before = _fused_calls()
    q.requires_grad_(True)
    linear_attention(q, k, v, "elu").sum().backward()
    assert q.grad is not None and bool(q.grad.abs().sum() > 0)
    with torch.no_grad():
        linear_attention(q.double(), k.double(), v.double(), "elu")
        linear_attention(q, k, v, "favor+")
        with compiled.use_compiled(False):
            linear_attention(q, k, v, "elu")
    assert _fused_calls() == before


def test_half_inputs_are_fused_in_float32():
    _lib()
    q, k, v = (x.half() for x in _qkv(1, 2, 2, 64, 16, 16))
    with torch.no_grad():
        out = linear_attention(q, k, v, "elu", causal=True)
    reference = kernel_attention(q.double(), k.double(), v.double(), "elu", causal=True)
    assert out.dtype == torch.float16 and max_abs(out, reference) < 2e-3


def test_use_compiled_needs_a_bool():
    with pytest.raises(TypeError, match="enabled: expected a bool"):
        compiled.use_compiled(1).__enter__()


def test_without_a_compiler_everything_runs_eagerly(tmp_path):
    script = (
        "import torch\n"
        "from attnlab.functional import compiled\n"
        "from attnlab.functional.linear import linear_attention\n"
        "q = torch.randn(1, 2, 50, 8)\n"
        "with torch.no_grad():\n"
        "    out = linear_attention(q, q, q, 'elu', causal=True)\n"
        "assert compiled.library() is None and out.shape == (1, 2, 50, 8)\n"
        "print(compiled.status())\n"
    )
    env = {**os.environ, "ATTNLAB_CACHE": str(tmp_path), "CC": "/bin/false"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "compiled kernels: unavailable (/bin/false failed on linear_elu.c" in run.stdout
    assert not list(tmp_path.glob("*.so"))


def test_a_fresh_cache_builds_the_library(tmp_path):
    _lib()
    script = (
        "from attnlab.functional import compiled\n"
        "assert compiled.library() is not None, compiled.status()\n"
    )
    env = {**os.environ, "ATTNLAB_CACHE": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert len(list(tmp_path.glob("linear_elu-*.so"))) == 1


def _fill_and_forget(shape, value):
    out = empty_output(*shape, like=torch.zeros(1))
    out.fill_(value)
    return out.data_ptr()


def test_a_freed_large_output_is_handed_out_again():
    clear_output_cache()
    shape = (3, 1024, 1024)  # 12 MiB: above MIN_BYTES
    address = _fill_and_forget(shape, 7.0)
    again = empty_output(*shape, like=torch.zeros(1))
    # fresh pages would read 0: the 7s prove the memory is the earlier output's
    assert again.data_ptr() == address and bool((again == 7.0).all())
    assert cached_output_bytes() == again.numel() * 4
    clear_output_cache()


@pytest.mark.parametrize("holder", ["tensor", "view", "numpy"])
def test_memory_still_held_is_never_handed_out(holder):
    clear_output_cache()
    shape = (3, 1024, 1024)
    first = empty_output(*shape, like=torch.zeros(1))
    first.fill_(1.0)
    if holder == "tensor":
        kept = first
    elif holder == "view":
        kept = first[1]
    else:
        kept = first.numpy()
    address = first.data_ptr()
    del first
    second = empty_output(*shape, like=torch.zeros(1))
    assert second.data_ptr() != address
    second.fill_(2.0)
    assert float(torch.as_tensor(kept).min()) == 1.0  # untouched by the new output
    freed = {address, second.data_ptr()}
    del kept, second
    third = empty_output(*shape, like=torch.zeros(1))
    assert third.data_ptr() in freed  # both are free now: one of them is reused
    clear_output_cache()


def test_the_cache_stays_within_its_limit_and_skips_small_outputs():
    clear_output_cache()
    like = torch.zeros(1)
    held = [empty_output(16, 1024, 1024, like=like) for _ in range(20)]  # 20 × 64 MiB, all held
    assert cached_output_bytes() <= memory.LIMIT_BYTES
    del held
    for _ in range(3):
        empty_output(16, 1024, 1024, like=like)
    assert cached_output_bytes() <= memory.LIMIT_BYTES
    clear_output_cache()
    empty_output(1024, like=like)  # 4 KiB: from the heap, not cached
    empty_output(96, 1024, 1024, like=like)  # 384 MiB: above the limit, not cached
    assert cached_output_bytes() == 0


def test_the_cache_can_be_turned_off(monkeypatch):
    clear_output_cache()
    monkeypatch.setenv("ATTNLAB_OUTPUT_CACHE", "0")
    _fill_and_forget((3, 1024, 1024), 7.0)
    assert cached_output_bytes() == 0


def test_consecutive_fused_calls_on_reused_memory_are_each_right():
    _lib()
    clear_output_cache()
    q, k, v = _qkv(1, 8, 8, 4096, 64, 64, seed=11)  # 8 MiB outputs: cached
    with torch.inference_mode():
        first = linear_attention(q, k, v, "elu")
        kept = first.clone()
        address = first.data_ptr()
        del first
        second = linear_attention(k, q, v, "elu")  # on the first one's memory
        with compiled.use_compiled(False):
            expected = linear_attention(k, q, v, "elu")
    assert second.data_ptr() == address
    assert max_abs(second, expected) < 1e-5 and max_abs(kept, second) > 1e-2
    clear_output_cache()
