"""Speculative decoding: greedy output equal to the target's, sampled tokens with the target's
distribution (chi-square tests with fixed seeds), the cache cut back, and clear errors."""

import itertools

import pytest
import torch

from attnlab.nn import GPT, GPTConfig, KVCache, speculative_generate, verify_proposals

# chi-square quantiles at p = 1e-4 (tables): a correct sampler fails a test 1 time in 10,000
CHI2_1E4 = {5: 25.74, 24: 55.48}


def _gpt(layers, seed, vocab=7, scale=1.0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab, context=64, n_layers=layers, d_model=16, n_heads=2))
    with torch.no_grad():  # sharper, more varied predictions than the 0.02-scale initialisation
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    keep = expected > 0
    assert float(counts[~keep].sum()) == 0  # nothing where the target gives probability 0
    return float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())


@pytest.mark.parametrize("k", [1, 2, 4, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_equals_the_targets_greedy_decoding(k, seed):
    target, draft = _gpt(2, seed, scale=20.0), _gpt(1, seed + 10, scale=20.0)
    prompt = torch.tensor([[1, 2, 3, 4]])
    expected = target.generate(prompt, 30, temperature=0)
    out, stats = speculative_generate(target, draft, prompt, 30, k=k)
    assert torch.equal(out, expected)
    assert stats.new_tokens == 30 and stats.accepted <= stats.proposed
    assert stats.accepted + stats.rounds == 30  # each round: its accepted guesses and one more
    assert stats.acceptance_rate < 0.9  # the draft disagrees: the rejection path ran


def test_a_perfect_draft_is_always_accepted():
    target = _gpt(2, 3, scale=20.0)
    out, stats = speculative_generate(target, target, torch.tensor([[5]]), 25, k=4)
    assert torch.equal(out, target.generate(torch.tensor([[5]]), 25, temperature=0))
    assert stats.acceptance_rate == 1.0 and stats.rounds == 5 and stats.tokens_per_round == 5.0


def test_verify_proposals_gives_the_target_distribution():
    """Draw x ~ q, verify it against p: the emitted token is distributed as p."""
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.40, 0.05, 0.25, 0.10, 0.15, 0.05], [1 / 6] * 6], dtype=torch.float64)
    q = torch.tensor([[0.05, 0.40, 0.10, 0.25, 0.05, 0.15]], dtype=torch.float64)
    counts = torch.zeros(6, dtype=torch.float64)
    trials = 20000
    for _ in range(trials):
        x = torch.multinomial(q[0], 1, generator=g)
        n, token = verify_proposals(p, q, x, g)
        counts[int(x) if n == 1 else token] += 1
    assert _chi2(counts, p[0]) < CHI2_1E4[5]
    assert _chi2(counts, q[0]) > 10 * CHI2_1E4[5]  # the test tells p from the draft's q


def test_sampled_tokens_have_the_targets_joint_distribution():
    """The first two new tokens over 3000 runs against the target's exact joint distribution,
    enumerated over the 5 × 5 pairs; a draft that was simply trusted would fail."""
    target, draft = _gpt(2, 4, vocab=5, scale=8.0), _gpt(1, 5, vocab=5, scale=8.0)
    prompt = torch.tensor([[0, 1]])
    with torch.no_grad():

        def joint(model):
            first = torch.softmax(model(prompt)[0, -1].double(), -1)
            table = torch.zeros(5, 5, dtype=torch.float64)
            for a, b in itertools.product(range(5), repeat=2):
                seq = torch.tensor([[0, 1, a]])
                table[a, b] = first[a] * torch.softmax(model(seq)[0, -1].double(), -1)[b]
            return table.flatten()

        p, q = joint(target), joint(draft)
    counts = torch.zeros(25, dtype=torch.float64)
    for run in range(3000):
        out, _ = speculative_generate(target, draft, prompt, 2, k=1, temperature=1.0, seed=run)
        counts[int(out[0, 2]) * 5 + int(out[0, 3])] += 1
    assert _chi2(counts, p) < CHI2_1E4[24]
    assert _chi2(counts, q) > 4 * CHI2_1E4[24]


def test_kv_cache_truncate():
    cache = KVCache(2, 1, 2, 4, 10)
    key = torch.randn(1, 2, 6, 4)
    cache[0].append(key, key)
    cache[1].append(key, key)
    cache.truncate(4)
    assert cache.length == 4 and cache[1].length == 4
    keys, _ = cache[0].append(key[:, :, :1] * 0, key[:, :, :1] * 0)
    assert torch.equal(keys[:, :, :4], key[:, :, :4]) and float(keys[:, :, 4].abs().max()) == 0
    with pytest.raises(ValueError, match=r"length: expected a whole number in \[0, 5\], got 6"):
        cache.truncate(6)


def test_errors_name_the_argument():
    target, draft = _gpt(2, 0), _gpt(1, 1)
    prompt = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match=r"idx: expected one sequence of ids, shape \(1, seq\)"):
        speculative_generate(target, draft, torch.tensor([[1], [2]]), 4)
    with pytest.raises(ValueError, match="draft: expected the target's vocabulary of 7 tokens"):
        speculative_generate(target, _gpt(1, 1, vocab=9), prompt, 4)
    with pytest.raises(ValueError, match="exceeds the target's context of 64 tokens"):
        speculative_generate(target, draft, prompt, 60, k=4)
    with pytest.raises(ValueError, match="temperature: expected a number ≥ 0"):
        speculative_generate(target, draft, prompt, 4, temperature=-1.0)
    with pytest.raises(ValueError, match="k"):
        speculative_generate(target, draft, prompt, 4, k=0)
    linear = GPT(GPTConfig(vocab_size=7, context=64, n_layers=1, d_model=16, n_heads=2,
                           backend="linear:elu"))  # fmt: skip
    with pytest.raises(ValueError, match="draft: backend 'linear:elu' keeps running sums"):
        speculative_generate(target, linear, prompt, 4)
    with pytest.raises(TypeError, match="target: expected an attnlab GPT"):
        speculative_generate(object(), draft, prompt, 4)
    with pytest.raises(ValueError, match=r"p, q: expected \(k \+ 1, vocab\) and \(k, vocab\)"):
        verify_proposals(torch.ones(2, 3), torch.ones(2, 3), torch.tensor([0]))
