"""attnlab.nn.MultiHeadAttention: parity with torch, head layouts, positions and the KV cache."""

import pytest
import torch

from attnlab.functional import relative_attention, scaled_dot_product_attention
from attnlab.nn import KVCache, MultiHeadAttention
from helpers import max_abs, randn


def copy_from_torch(theirs: torch.nn.MultiheadAttention, mine: MultiHeadAttention) -> None:
    d = theirs.embed_dim
    with torch.no_grad():
        if theirs.in_proj_weight is not None:
            w_q, w_k, w_v = theirs.in_proj_weight.split(d)
        else:
            w_q, w_k, w_v = theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight
        b_q, b_k, b_v = theirs.in_proj_bias.split(d)
        for linear, w, b in (
            (mine.q_proj, w_q, b_q),
            (mine.k_proj, w_k, b_k),
            (mine.v_proj, w_v, b_v),
        ):
            linear.weight.copy_(w)
            linear.bias.copy_(b)
        mine.out_proj.weight.copy_(theirs.out_proj.weight)
        mine.out_proj.bias.copy_(theirs.out_proj.bias)


@pytest.mark.parametrize("n_heads", [1, 2, 4])
@pytest.mark.parametrize("backend", ["sdpa", "naive"])
def test_parity_with_torch_multihead_attention(n_heads, backend):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(16, n_heads, batch_first=True).double().eval()
    mine = MultiHeadAttention(16, n_heads, backend=backend).double().eval()
    copy_from_torch(theirs, mine)
    x = randn(3, 7, 16)
    blocked = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1)  # torch: True = may NOT attend
    expected, expected_w = theirs(x, x, x, attn_mask=blocked, average_attn_weights=False)
    out, weights = mine(x, attn_mask=~blocked, need_weights=True)
    assert max_abs(out, expected) <= 1e-12 and max_abs(weights, expected_w) <= 1e-12
    out_causal = mine(x, is_causal=True)
    assert max_abs(out_causal, expected) <= 1e-12


def test_parity_cross_attention_with_other_context_width():
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(12, 3, kdim=5, vdim=5, batch_first=True).double()
    mine = MultiHeadAttention(12, 3, d_context=5).double()
    copy_from_torch(theirs, mine)
    x, context = randn(2, 10, 12), randn(2, 15, 5, seed=1)
    expected, expected_w = theirs(x, context, context, average_attn_weights=False)
    out, weights = mine(x, context, need_weights=True)
    assert weights.shape == (2, 3, 10, 15)  # self would be 10×10, cross is 10×15
    assert max_abs(out, expected) <= 1e-12 and max_abs(weights, expected_w) <= 1e-12


def test_gqa_equals_mha_with_repeated_kv_heads():
    torch.manual_seed(2)
    gqa = MultiHeadAttention(24, 6, n_kv_heads=2).double()
    mha = MultiHeadAttention(24, 6).double()
    with torch.no_grad():
        for name in ("k_proj", "v_proj"):
            small, big = getattr(gqa, name), getattr(mha, name)
            # kv head g serves query heads 3g … 3g+2: repeat its rows for each of them
            big.weight.copy_(small.weight.view(2, 4, 24).repeat_interleave(3, 0).reshape(24, 24))
            big.bias.copy_(small.bias.view(2, 4).repeat_interleave(3, 0).reshape(24))
        mha.q_proj.load_state_dict(gqa.q_proj.state_dict())
        mha.out_proj.load_state_dict(gqa.out_proj.state_dict())
    x = randn(2, 5, 24)
    assert max_abs(gqa(x, is_causal=True), mha(x, is_causal=True)) <= 1e-12


@pytest.mark.parametrize("n_heads", [1, 2, 4, 8])
def test_parameter_count_is_4d2_plus_biases_for_any_head_count(n_heads):
    d = 64
    mha = MultiHeadAttention(d, n_heads)
    assert sum(p.numel() for p in mha.parameters()) == 4 * d * d + 4 * d
    assert (
        sum(p.numel() for p in MultiHeadAttention(d, n_heads, bias=False).parameters()) == 4 * d * d
    )


def test_wider_values_map_back_to_d_model():
    """Seed 003 problem 3b: W_v maps d_model → 2·d_model and W_o brings it back for the residual."""
    mha = MultiHeadAttention(32, 4, d_value=64)
    assert mha.v_proj.weight.shape == (64, 32) and mha.out_proj.weight.shape == (32, 64)
    x = randn(2, 6, 32, dtype=torch.float32)
    assert (x + mha(x)).shape == (2, 6, 32)


@pytest.mark.parametrize("positions", [None, "rope", "alibi", "relative"])
def test_naive_backend_equals_sdpa_backend(positions):
    torch.manual_seed(3)
    fused = MultiHeadAttention(16, 4, n_kv_heads=2, positions=positions).double()
    naive = MultiHeadAttention(16, 4, n_kv_heads=2, positions=positions, backend="naive").double()
    naive.load_state_dict(fused.state_dict())
    x = randn(2, 9, 16)
    assert max_abs(fused(x, is_causal=True), naive(x, is_causal=True)) <= 1e-12


LAYOUTS = [(4, 4), (4, 2), (4, 1)]  # MHA, GQA, MQA


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), LAYOUTS)
@pytest.mark.parametrize("positions", [None, "rope", "alibi", "relative"])
@pytest.mark.parametrize("chunks", [[1] * 10, [4, 1, 1, 3, 1]])
def test_cached_decoding_equals_full_causal_forward(n_heads, n_kv_heads, positions, chunks):
    torch.manual_seed(4)
    mha = MultiHeadAttention(32, n_heads, n_kv_heads=n_kv_heads, positions=positions).eval()
    if mha.relative is not None:
        with torch.no_grad():  # make the learned biases matter
            mha.relative.bias_u.normal_()
            mha.relative.bias_v.normal_()
    x = randn(2, sum(chunks), 32, dtype=torch.float32)
    full = mha(x, is_causal=True)
    cache = KVCache(1, 2, n_kv_heads, mha.head_dim, max_len=16)
    start = 0
    for size in chunks:
        step = mha(x[:, start : start + size], is_causal=True, cache=cache[0])
        assert max_abs(step, full[:, start : start + size]) <= 1e-5
        start += size
    assert cache.length == sum(chunks)
    # the cache holds exactly the keys the full forward computed: (batch, n_kv_heads, seq, head_dim)
    assert cache[0].keys.shape == (2, n_kv_heads, 16, mha.head_dim)


def test_relative_positions_match_the_functional_transformer_xl():
    torch.manual_seed(5)
    mha = MultiHeadAttention(16, 2, positions="relative", bias=False).double()
    with torch.no_grad():
        mha.relative.bias_u.normal_()
        mha.relative.bias_v.normal_()
    x = randn(1, 6, 16)
    split = lambda t: t.view(1, 6, 2, 8).transpose(1, 2)  # noqa: E731
    q, k, v = split(mha.q_proj(x)), split(mha.k_proj(x)), split(mha.v_proj(x))
    pos_embed = mha.relative(6)
    expected = relative_attention(q, k, v, pos_embed, mha.relative.bias_u, mha.relative.bias_v)
    expected = mha.out_proj(expected.transpose(1, 2).reshape(1, 6, 16))
    assert max_abs(mha(x, is_causal=True), expected) <= 1e-12


def test_alibi_weights_are_the_biased_softmax():
    torch.manual_seed(6)
    mha = MultiHeadAttention(16, 4, positions="alibi").double()
    x = randn(1, 5, 16)
    _, weights = mha(x, is_causal=True, need_weights=True)
    q = mha.q_proj(x).view(1, 5, 4, 4).transpose(1, 2)
    k = mha.k_proj(x).view(1, 5, 4, 4).transpose(1, 2)
    slopes = mha.alibi.slopes.double()
    distance = torch.arange(5)[:, None] - torch.arange(5)[None, :]  # i − j
    scores = q @ k.transpose(-1, -2) / 2 - slopes[:, None, None] * distance
    scores = scores.masked_fill(distance < 0, float("-inf"))
    assert max_abs(weights, torch.softmax(scores, -1)) <= 1e-12


def test_weights_and_dropout():
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = randn(2, 5, 16, dtype=torch.float32)
    mha.eval()
    out, weights = mha(x, need_weights=True)
    assert weights.shape == (2, 4, 5, 5) and max_abs(weights.sum(-1), torch.ones(2, 4, 5)) < 1e-6
    assert max_abs(out, mha(x)) < 1e-6  # no dropout in eval mode (fused vs explicit path)
    assert torch.equal(mha(x), mha(x))
    mha.train()
    assert not torch.equal(mha(x), mha(x))


def test_recorder_sees_every_step():
    mha = MultiHeadAttention(512, 8, backend="naive")
    seen = {}
    mha.recorder = lambda name, t: seen.__setitem__(name, tuple(t.shape))
    mha(torch.randn(2, 16, 512))
    assert seen["q split into heads"] == (2, 8, 16, 64)
    assert seen["weights"] == (2, 8, 16, 16)
    assert seen["output = merged W_o"] == (2, 16, 512)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: MultiHeadAttention(10, 3), ["n_heads", "d_model=10", "3"]),
        (lambda: MultiHeadAttention(12, 4, n_kv_heads=3), ["n_kv_heads", "n_heads=4", "3"]),
        (lambda: MultiHeadAttention(12, 4, d_value=10), ["d_value", "10"]),
        (lambda: MultiHeadAttention(12, 4, backend="fast"), ["backend", "'fast'"]),
        (lambda: MultiHeadAttention(12, 4, positions="learned"), ["positions", "'learned'"]),
        (lambda: MultiHeadAttention(12, 4, positions="rope"), ["rope", "even", "3"]),
        (
            lambda: MultiHeadAttention(12, 4, positions="relative", d_context=6),
            ["relative", "d_context=6"],
        ),
        (lambda: MultiHeadAttention(12, 0), ["n_heads", "0"]),
    ],
)
def test_bad_construction(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_bad_forward_input():
    mha = MultiHeadAttention(12, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, seq, 12\), got \(2, 3, 10\)"):
        mha(torch.randn(2, 3, 10))
    cross = MultiHeadAttention(12, 4, d_context=6)
    with pytest.raises(
        ValueError, match=r"context: expected shape \(batch, seq, 6\), got \(2, 5, 7\)"
    ):
        cross(torch.randn(2, 3, 12), torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="context: required"):
        cross(torch.randn(2, 3, 12))
    cache = KVCache(1, 1, 4, 3, max_len=4)
    mha(torch.randn(1, 3, 12), is_causal=True, cache=cache[0])
    with pytest.raises(ValueError, match="past the maximum length 4"):
        mha(torch.randn(1, 2, 12), is_causal=True, cache=cache[0])
    with pytest.raises(ValueError, match="attn_mask"):
        mha(torch.randn(1, 3, 12), attn_mask=torch.ones(3, 4, dtype=torch.bool))


def test_kv_cache_bytes_reset_and_layout():
    cache = KVCache(4, 2, 3, 16, max_len=100, dtype=torch.float16)
    assert (
        cache.nbytes == 2 * 4 * 2 * 3 * 100 * 16 * 2
    )  # K and V · layers · batch · heads · len · dim · bytes
    k, _ = cache[0].append(
        torch.ones(2, 3, 5, 16, dtype=torch.float16), torch.ones(2, 3, 5, 16, dtype=torch.float16)
    )
    assert k.shape == (2, 3, 5, 16) and cache[0].length == 5
    assert cache.used_bytes == 2 * 2 * 3 * 5 * 16 * 2
    cache.reset()
    assert cache.length == 0 and cache.used_bytes == 0
    with pytest.raises(ValueError, match="key/value: expected shapes"):
        cache[0].append(torch.ones(2, 2, 1, 16), torch.ones(2, 2, 1, 16))
    with pytest.raises(ValueError, match="max_len"):
        KVCache(1, 1, 1, 8, max_len=0)


def test_module_matches_functional_on_its_projections():
    mha = MultiHeadAttention(8, 2, n_kv_heads=1).double()
    x = randn(1, 4, 8)
    q = mha.q_proj(x).view(1, 4, 2, 4).transpose(1, 2)
    k = mha.k_proj(x).view(1, 4, 1, 4).transpose(1, 2)
    v = mha.v_proj(x).view(1, 4, 1, 4).transpose(1, 2)
    expected = scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = mha.out_proj(expected.transpose(1, 2).reshape(1, 4, 8))
    assert max_abs(mha(x, is_causal=True), expected) <= 1e-12
