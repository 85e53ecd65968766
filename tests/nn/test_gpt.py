"""The GPT decoder: cached generation equals recomputation, blocks, norms, errors."""

import pytest
import torch
import torch.nn.functional as F

from attnlab.nn import GPT, Block, FeedForward, GPTConfig, RMSNorm
from helpers import max_abs, randn


def tiny(**overrides) -> GPT:
    config = dict(vocab_size=23, context=40, n_layers=2, d_model=32, n_heads=4)
    config.update(overrides)
    torch.manual_seed(0)
    return GPT(GPTConfig(**config)).eval()


SCHEMES = ["learned", "sinusoidal", "rope", "alibi", "none"]
LAYOUTS = [None, 2, 1]  # MHA, GQA, MQA


@pytest.mark.parametrize("positions", SCHEMES)
@pytest.mark.parametrize("n_kv_heads", LAYOUTS)
def test_cached_logits_equal_the_full_forward_and_greedy_tokens_agree(positions, n_kv_heads):
    model = tiny(positions=positions, n_kv_heads=n_kv_heads)
    idx = torch.randint(0, 23, (2, 12), generator=torch.Generator().manual_seed(1))
    full = model(idx)
    cache = model.new_cache(2)
    steps = [model(idx[:, :5], cache=cache)]  # a prompt, then single tokens
    steps += [model(idx[:, t : t + 1], cache=cache) for t in range(5, 12)]
    assert max_abs(torch.cat(steps, dim=1), full) <= 1e-5
    prompt = idx[:, :4]
    with_cache = model.generate(prompt, 20, temperature=0)
    without = model.generate(prompt, 20, temperature=0, use_cache=False)
    assert torch.equal(with_cache, without)
    assert with_cache.shape == (2, 24) and torch.equal(with_cache[:, :4], prompt)


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_generation_past_the_context_slides_a_window(positions):
    model = tiny(positions=positions)
    prompt = torch.randint(0, 23, (1, 30), generator=torch.Generator().manual_seed(3))
    out = model.generate(prompt, 25, temperature=0)  # 55 tokens > context 40
    assert out.shape == (1, 55)
    assert torch.equal(out, model.generate(prompt, 25, temperature=0, use_cache=False))
    # the last token is the greedy choice given exactly the last 40 tokens before it
    window = out[:, -41:-1]
    assert out[0, -1] == model(window)[0, -1].argmax()


def test_sampling_is_reproducible_and_filters_work():
    model = tiny()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    a = model.generate(prompt, 15, temperature=1.0, seed=3)
    assert torch.equal(a, model.generate(prompt, 15, temperature=1.0, seed=3))
    assert torch.equal(a, model.generate(prompt, 15, temperature=1.0, seed=3, use_cache=False))
    top1 = model.generate(prompt, 10, top_k=1, seed=4)
    assert torch.equal(top1, model.generate(prompt, 10, temperature=0))
    nucleus = model.generate(prompt, 10, top_p=1e-6, seed=5)  # keeps only the top token
    assert torch.equal(nucleus, top1)


def test_loss_is_cross_entropy_and_attention_is_captured():
    model = tiny()
    idx = torch.randint(0, 23, (2, 9), generator=torch.Generator().manual_seed(2))
    targets = torch.roll(idx, -1, 1)
    logits, loss, patterns = model(idx, targets, return_attention=True)
    assert loss.item() == pytest.approx(
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item()
    )
    assert sorted(patterns) == ["blocks.0.attn.pattern", "blocks.1.attn.pattern"]
    pattern = patterns["blocks.1.attn.pattern"]
    assert pattern.shape == (2, 4, 9, 9)
    assert torch.all(pattern.triu(1) == 0)  # causal
    assert max_abs(pattern.sum(-1), torch.ones(2, 4, 9)) < 1e-6


def test_tied_embeddings_and_parameter_counts():
    model = tiny()
    assert model.lm_head.weight is model.token_embedding.weight
    untied = tiny(tie_embeddings=False)
    assert untied.num_parameters() == model.num_parameters() + 23 * 32
    gpt2_small = dict(vocab_size=50257, context=1024, n_layers=12, d_model=768, n_heads=12)
    d, V, C, L = 768, 50257, 1024, 12
    # per block: attention 4d² + 4d, MLP 8d² + 5d, two LayerNorms 4d; final LayerNorm 2d
    expected = L * (12 * d * d + 13 * d) + 2 * d + V * d + C * d
    with torch.device("meta"):
        assert GPT(GPTConfig(**gpt2_small)).num_parameters() == expected == 124_439_808


def test_swiglu_has_three_matrices_and_rmsnorm_matches_its_formula():
    ffn = FeedForward(8, 16, "swiglu", bias=False)
    assert sum(p.numel() for p in ffn.parameters()) == 3 * 8 * 16
    x = randn(2, 3, 8, dtype=torch.float32)
    expected = (F.silu(x @ ffn.gate.weight.T) * (x @ ffn.up.weight.T)) @ ffn.down.weight.T
    assert max_abs(ffn(x), expected) < 1e-6
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.uniform_()
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    assert max_abs(norm(x), expected) < 1e-6
    assert max_abs(norm(x), F.rms_norm(x, (8,), norm.weight, eps=1e-6)) < 1e-6


def test_pre_and_post_norm_differ_with_the_same_weights():
    torch.manual_seed(0)
    pre = Block(16, 4, norm="pre")
    post = Block(16, 4, norm="post")
    post.load_state_dict(pre.state_dict())
    x = randn(1, 5, 16, dtype=torch.float32)
    assert max_abs(pre(x), post(x)) > 1e-2
    # post-norm output is normalised per position; pre-norm output is not
    assert max_abs(post(x).mean(-1), torch.zeros(1, 5)) < 1e-5


def test_a_few_steps_of_training_lower_the_loss():
    model = tiny().train()
    data = torch.arange(40).remainder(23)[None, :].repeat(4, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        _, loss = model(data[:, :-1], data[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda m: m(torch.tensor([[1, 99]])), ValueError, ["idx", "[0, 23)", "99"]),
        (lambda m: m(torch.zeros(1, 41, dtype=torch.long)), ValueError, ["idx", "context 40"]),
        (lambda m: m(torch.zeros(1, 3)), TypeError, ["idx", "torch.long", "float32"]),
        (
            lambda m: m.generate(torch.zeros(1, 3, dtype=torch.long), 2, top_p=0),
            ValueError,
            ["top_p"],
        ),
        (
            lambda m: m.generate(torch.zeros(1, 3, dtype=torch.long), 2, top_k=0),
            ValueError,
            ["top_k"],
        ),
        (lambda m: GPTConfig(positions="rotary"), ValueError, ["positions", "'rotary'"]),
        (lambda m: GPTConfig(norm_kind="batchnorm"), ValueError, ["norm_kind"]),
    ],
)
def test_bad_input(call, error, words):
    with pytest.raises(error) as info:
        call(tiny())
    for word in words:
        assert word in str(info.value), (word, str(info.value))
