"""Speculative decoding: a small draft model guesses k tokens, the target model checks them in
one forward pass (Leviathan et al., 2023; Chen et al., 2023; seed 004 exercise 13.25).

Each round the draft proposes ``x_1 … x_k`` one token at a time, each from its distribution
``q_i``. The target then reads all k at once, through its KV cache, which gives its
distributions ``p_1 … p_{k+1}`` for the same positions and one past them. Proposal i is
accepted with probability ``min(1, p_i(x_i) / q_i(x_i))``; at the first rejection the token is
drawn instead from ``norm(max(0, p_i − q_i))`` and the round ends, and if all k are accepted
a (k+1)-th token comes from ``p_{k+1}``. Every emitted token then has exactly the target's
distribution (Leviathan et al., Appendix A.1): the draft changes the speed, never the text's
distribution. With ``temperature=0`` both models are greedy, a proposal is accepted when it is
the target's argmax, and the output equals ``target.generate(..., temperature=0)`` token for
token. A round costs k draft steps and one target pass over k + 1 tokens, and emits between 1
and k + 1 tokens; the target's caches drop the rejected guesses (:meth:`KVCache.truncate`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from attnlab.functional.validation import check_length

from .cache import KVCache
from .gpt import GPT


@dataclass
class SpeculativeStats:
    """What a :func:`speculative_generate` call did."""

    new_tokens: int = 0
    rounds: int = 0  # target passes, one per round
    proposed: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens the target accepted
    draft_steps: int = 0  # draft forward passes

    @property
    def acceptance_rate(self) -> float:
        """Accepted over proposed draft tokens."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def tokens_per_round(self) -> float:
        """New tokens per target pass (1 without a draft)."""
        return self.new_tokens / self.rounds if self.rounds else 0.0

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "acceptance_rate": self.acceptance_rate,
            "tokens_per_round": self.tokens_per_round,
        }


def _probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Next-token distributions ``(..., vocab)`` at ``temperature`` > 0."""
    return torch.softmax(logits / temperature, dim=-1)


def verify_proposals(
    p: torch.Tensor,
    q: torch.Tensor,
    proposals: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[int, int]:
    """The acceptance step of speculative sampling for one sequence.

    Args:
        p: the target's distributions ``(k + 1, vocab)`` at the k proposal positions and one
            past them.
        q: the draft's distributions ``(k, vocab)`` the proposals were drawn from.
        proposals: ``(k,)`` token ids.
        generator: for the uniform draws and the resampling.

    Returns:
        ``(n, token)``: the first n proposals are accepted and ``token`` follows them (drawn
        from ``norm(max(0, p_{n+1} − q_{n+1}))`` after a rejection, from ``p_{k+1}`` when all
        are accepted).
    """
    k = proposals.shape[0]
    if p.dim() != 2 or q.dim() != 2 or p.shape != (k + 1, q.shape[1]) or q.shape[0] != k:
        raise ValueError(
            f"p, q: expected (k + 1, vocab) and (k, vocab) for k = {k} proposals, got "
            f"{tuple(p.shape)} and {tuple(q.shape)}"
        )
    rows = torch.arange(k)
    draft = q[rows, proposals]
    if bool((draft <= 0).any()):
        i = int((draft <= 0).nonzero()[0])
        raise ValueError(
            f"q: proposal {i} (token {int(proposals[i])}) has probability 0 under the draft"
        )
    uniform = torch.rand(k, generator=generator, dtype=p.dtype)
    rejected = (uniform >= p[rows, proposals] / draft).nonzero()  # accept: u < min(1, p/q)
    if rejected.numel() == 0:
        return k, int(torch.multinomial(p[k], 1, generator=generator))
    i = int(rejected[0])
    residual = (p[i] - q[i]).clamp_min(0)
    if float(residual.sum()) <= 0:  # p ≤ q everywhere means p = q: a rejection cannot happen
        residual = p[i]
    return i, int(torch.multinomial(residual / residual.sum(), 1, generator=generator))


def _step(model: GPT, tokens: list[int], cache: KVCache) -> torch.Tensor:
    """Feed the tokens the cache lacks; the logits ``(new, vocab)`` of those positions."""
    new = torch.tensor([tokens[cache.length :]], device=model.token_embedding.weight.device)
    return model(new, cache=cache)[0]


def _greedy_check(logits: torch.Tensor, proposals: list[int]) -> tuple[int, int]:
    """:func:`verify_proposals` when both models are greedy: accept while the guess is the
    target's argmax; the token after is the target's argmax there."""
    best = logits.argmax(-1).tolist()
    n = next((i for i, (x, y) in enumerate(zip(proposals, best, strict=False)) if x != y), None)
    n = len(proposals) if n is None else n
    return n, best[n]


@torch.no_grad()
def speculative_generate(
    target: GPT,
    draft: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    k: int = 4,
    temperature: float = 0.0,
    seed: int | None = None,
) -> tuple[torch.Tensor, SpeculativeStats]:
    """Extend ``idx`` ``(1, seq)`` by ``max_new_tokens`` tokens of ``target``, ``k`` draft
    guesses per round (see the module's note).

    ``temperature=0`` gives the target's greedy continuation exactly; above 0 each token has the
    target's distribution at that temperature (no top-k/top-p here). Both models need softmax
    attention (their KV caches are cut back after a rejection), the same vocabulary, and a
    context that holds the prompt, the new tokens and one round's guesses.

    Returns:
        The extended ids ``(1, seq + max_new_tokens)`` and the :class:`SpeculativeStats`.
    """
    for name, model in (("target", target), ("draft", draft)):
        if not isinstance(model, GPT):
            raise TypeError(f"{name}: expected an attnlab GPT, got {type(model).__name__}")
        if model.config.backend.startswith("linear:"):
            raise ValueError(
                f"{name}: backend {model.config.backend!r} keeps running sums that cannot drop "
                "rejected guesses; speculative decoding needs a KV cache (sdpa, naive, flash)"
            )
    if draft.config.vocab_size != target.config.vocab_size:
        raise ValueError(
            f"draft: expected the target's vocabulary of {target.config.vocab_size} tokens, got "
            f"{draft.config.vocab_size}"
        )
    check_length("max_new_tokens", max_new_tokens)
    check_length("k", k)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or temperature < 0:
        raise ValueError(f"temperature: expected a number ≥ 0, got {temperature!r}")
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.shape[0] != 1:
        got = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise ValueError(f"idx: expected one sequence of ids, shape (1, seq), got {got}")
    needed = idx.shape[1] + max_new_tokens + k
    for name, model in (("target", target), ("draft", draft)):
        model._check_ids(idx, 0)
        if needed > model.config.context:
            raise ValueError(
                f"max_new_tokens: prompt {idx.shape[1]} + {max_new_tokens} new + k = {k} "
                f"guesses exceeds the {name}'s context of {model.config.context} tokens"
            )
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    stats = SpeculativeStats()
    modes = (target.training, draft.training)
    target.eval()
    draft.eval()
    try:
        target_cache, draft_cache = target.new_cache(1, needed), draft.new_cache(1, needed)
        tokens, end = idx[0].tolist(), idx.shape[1] + max_new_tokens
        while len(tokens) < end:
            start = len(tokens)
            guesses = min(k, end - start - 1)  # the round's own token comes on top
            q = []
            for _ in range(guesses):
                logits = _step(draft, tokens, draft_cache)[-1]
                if temperature:
                    q.append(_probs(logits, temperature))
                    tokens.append(int(torch.multinomial(q[-1], 1, generator=generator)))
                else:
                    tokens.append(int(logits.argmax()))
            proposals = tokens[start:]
            stats.draft_steps += guesses
            logits = _step(target, tokens, target_cache)[-(guesses + 1) :]
            if not temperature:
                n, token = _greedy_check(logits, proposals)
            elif guesses:
                p, guessed = _probs(logits, temperature), torch.tensor(proposals)
                n, token = verify_proposals(p, torch.stack(q), guessed, generator)
            else:  # the last token: nothing to verify
                p = _probs(logits[0], temperature)
                n, token = 0, int(torch.multinomial(p, 1, generator=generator))
            tokens[start + n :] = [token]
            target_cache.truncate(min(target_cache.length, start + n))
            draft_cache.truncate(min(draft_cache.length, start + n))
            stats.rounds += 1
            stats.proposed += guesses
            stats.accepted += n
        stats.new_tokens = max_new_tokens
    finally:
        target.train(modes[0])
        draft.train(modes[1])
    return idx.new_tensor([tokens]), stats


__all__ = ["SpeculativeStats", "speculative_generate", "verify_proposals"]
