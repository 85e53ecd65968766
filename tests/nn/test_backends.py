"""The flash and linear backends of MultiHeadAttention and GPT: same math as their references,
cached decoding equal to the full forward, training, capture, and early errors."""

import pytest
import torch

from attnlab.functional.linear import kernel_attention
from attnlab.inspect import capture
from attnlab.nn import GPT, GPTConfig, KVCache, LinearStateCache, MultiHeadAttention
from helpers import max_abs, randn

# relu is left out: on random projections some queries have no positive coordinate, and the
# module refuses their 0/0 normaliser (tests/functional/test_linear.py covers that error).
LINEAR = ["linear:elu", "linear:poly2", "linear:favor+"]


def pair(backend, reference="sdpa", **kwargs):
    torch.manual_seed(0)
    mine = MultiHeadAttention(16, 4, backend=backend, **kwargs).double()
    ref = MultiHeadAttention(16, 4, backend=reference, **kwargs).double()
    ref.load_state_dict(mine.state_dict(), strict=False)
    return mine, ref


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
@pytest.mark.parametrize("positions", [None, "rope"])
@pytest.mark.parametrize("is_causal", [False, True])
def test_flash_backend_equals_sdpa(n_kv_heads, positions, is_causal):
    flash, sdpa = pair("flash", n_kv_heads=n_kv_heads, positions=positions)
    x = randn(2, 37, 16)
    assert max_abs(flash(x, is_causal=is_causal), sdpa(x, is_causal=is_causal)) <= 1e-10
    _, weights = flash(x, is_causal=is_causal, need_weights=True)
    _, expected = sdpa(x, is_causal=is_causal, need_weights=True)
    assert max_abs(weights, expected) <= 1e-12


@pytest.mark.parametrize("backend", ["flash", *LINEAR])
@pytest.mark.parametrize("n_kv_heads", [4, 1])
def test_cached_decoding_equals_full_forward(backend, n_kv_heads):
    torch.manual_seed(1)
    mha = MultiHeadAttention(16, 4, n_kv_heads, backend=backend, positions="rope").double()
    x = randn(2, 11, 16, seed=2)
    full = mha(x, is_causal=True)
    if backend == "flash":
        cache = KVCache(1, 2, n_kv_heads, 4, max_len=11, dtype=torch.float64)
    else:
        cache = LinearStateCache(1)
    steps, start = [], 0
    for size in (4, 1, 1, 3, 1, 1):
        steps.append(mha(x[:, start : start + size], is_causal=True, cache=cache[0]))
        start += size
    assert max_abs(torch.cat(steps, 1), full) <= 1e-10
    assert cache.length == 11


@pytest.mark.parametrize("backend", LINEAR)
@pytest.mark.parametrize("is_causal", [False, True])
def test_linear_backend_is_its_kernel_attention(backend, is_causal):
    mha, _ = pair(backend, n_kv_heads=2)
    x = randn(1, 9, 16, seed=3)
    out, weights = mha(x, is_causal=is_causal, need_weights=True)
    assert max_abs(mha(x, is_causal=is_causal), out) <= 1e-10
    assert max_abs(weights.sum(-1), torch.ones(1, 4, 9)) <= 1e-10
    if is_causal:
        assert torch.all(weights.triu(1) == 0)
    split = lambda t, h: t.view(1, 9, h, 4).transpose(1, 2)  # noqa: E731
    q, k, v = split(mha.q_proj(x), 4), split(mha.k_proj(x), 2), split(mha.v_proj(x), 2)
    expected = kernel_attention(q, k, v, mha.feature_map, causal=is_causal, enable_gqa=True)
    expected = mha.out_proj(expected.transpose(1, 2).reshape(1, 9, 16))
    assert max_abs(out, expected) <= 1e-10


def test_favor_features_travel_with_the_state_dict():
    torch.manual_seed(4)
    a = MultiHeadAttention(16, 4, backend="linear:favor+")
    b = MultiHeadAttention(16, 4, backend="linear:favor+")
    assert "omega" in a.state_dict()
    with torch.no_grad():
        b.omega.normal_()  # different random features …
    x = randn(1, 6, 16, dtype=torch.float32)
    assert max_abs(a(x), b(x)) > 1e-4
    b.load_state_dict(a.state_dict())  # … until the state dict brings a's
    assert max_abs(a(x), b(x)) == 0


@pytest.mark.parametrize("backend", ["flash", "linear:elu"])
def test_gpt_trains_and_generates_with_the_backend(backend):
    torch.manual_seed(5)
    model = GPT(
        GPTConfig(vocab_size=11, context=24, n_layers=2, d_model=32, n_heads=4, backend=backend)
    )
    data = torch.arange(48).remainder(11)[None, :].repeat(4, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(25):
        _, loss = model(data[:, :24], data[:, 1:25])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first
    model.eval()
    prompt = data[:1, :3]
    cached = model.generate(prompt, 15, temperature=0)
    assert torch.equal(cached, model.generate(prompt, 15, temperature=0, use_cache=False))


def test_capture_through_flash_equals_the_naive_path():
    torch.manual_seed(6)
    flash = GPT(
        GPTConfig(vocab_size=11, context=24, n_layers=2, d_model=32, n_heads=4, backend="flash")
    )
    naive = GPT(
        GPTConfig(vocab_size=11, context=24, n_layers=2, d_model=32, n_heads=4, backend="naive")
    )
    naive.load_state_dict(flash.state_dict())
    ids = list(range(11)) * 2
    a, b = capture(flash, ids), capture(naive, ids)
    assert a.weights.shape == (2, 4, 22, 22)
    assert max_abs(torch.from_numpy(a.weights), torch.from_numpy(b.weights)) <= 1e-6


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda: MultiHeadAttention(16, 4, backend="flash", positions="alibi"),
            ["positions", "'alibi'", "flash"],
        ),
        (
            lambda: MultiHeadAttention(16, 4, backend="linear:elu", positions="relative"),
            ["positions", "'relative'"],
        ),
        (lambda: MultiHeadAttention(16, 4, backend="flash", dropout=0.1), ["dropout", "flash"]),
        (
            lambda: MultiHeadAttention(16, 4, backend="linear:cosine"),
            ["backend", "linear:elu", "'linear:cosine'"],
        ),
    ],
)
def test_incompatible_choices_fail_at_construction(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_forward_errors():
    x = randn(1, 5, 16, dtype=torch.float32)
    with pytest.raises(ValueError, match="attn_mask: backend 'flash'"):
        MultiHeadAttention(16, 4, backend="flash")(x, attn_mask=torch.ones(5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="cache: backend 'linear:elu' needs a LayerLinearState"):
        MultiHeadAttention(16, 4, backend="linear:elu")(
            x, is_causal=True, cache=KVCache(1, 1, 4, 4, 8)[0]
        )


def test_capture_through_linear_is_the_normalised_kernel_matrix():
    """Layer 0's captured pattern, rebuilt by hand: rows of φ(q)·φ(k)ᵀ, causal, normalised."""
    torch.manual_seed(7)
    config = GPTConfig(
        vocab_size=11, context=24, n_layers=1, d_model=32, n_heads=4, backend="linear:elu"
    )
    model = GPT(config).eval()
    ids = list(range(11)) + list(range(5))
    record = capture(model, ids)
    with torch.no_grad():
        x = model.token_embedding(torch.tensor([ids])) + model.position_embedding(len(ids))
        h = model.blocks[0].norm1(x)
        attn = model.blocks[0].attn
        q = attn.q_proj(h).view(1, 16, 4, 8).transpose(1, 2)
        k = attn.k_proj(h).view(1, 16, 4, 8).transpose(1, 2)
        scores = (torch.nn.functional.elu(q) + 1) @ (torch.nn.functional.elu(k) + 1).transpose(
            -1, -2
        )
        scores = scores.tril()
        expected = scores / scores.sum(-1, keepdim=True)
    assert max_abs(torch.from_numpy(record.weights[0]), expected[0]) <= 1e-5
