"""A GPT-style decoder: token embeddings, positions, a stack of blocks, and a language-model head.

Generation uses the KV cache: the prompt is processed once, then each new token costs one
forward over a single position that attends to the cached keys and values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from attnlab.functional.validation import check_length

from .blocks import FFN_KINDS, NORM_KINDS, NORM_POSITIONS, Block, make_norm
from .cache import KVCache, LinearStateCache
from .common import check_token_ids, init_weights
from .positions import LearnedPositions, SinusoidalPositions

GPT_POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")


@dataclass
class GPTConfig:
    """Every choice of the model as one flag (defaults: a small GPT-2-like character model)."""

    vocab_size: int = 256
    context: int = 256
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    n_kv_heads: int | None = None  # None: one key/value head per query head (MHA)
    d_ff: int | None = None  # None: 4 · d_model
    positions: str = "learned"  # learned | sinusoidal | rope | alibi | none
    norm: str = "pre"  # pre | post
    norm_kind: str = "layernorm"  # layernorm | rmsnorm
    ffn: str = "gelu"  # gelu | swiglu
    backend: str = "sdpa"
    dropout: float = 0.0
    bias: bool = True
    tie_embeddings: bool = True

    def __post_init__(self):
        for name in ("vocab_size", "context", "n_layers", "d_model", "n_heads"):
            check_length(name, getattr(self, name))
        choices = {
            "positions": GPT_POSITIONS,
            "norm": NORM_POSITIONS,
            "norm_kind": NORM_KINDS,
            "ffn": FFN_KINDS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {allowed}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class GPT(nn.Module):
    """Decoder-only language model.

    ``forward(idx, targets=None, *, cache=None, return_attention=False)`` maps token ids
    ``(batch, seq)`` to logits ``(batch, seq, vocab_size)``; with ``targets`` also the mean
    cross-entropy; with ``return_attention`` also a dict of attention patterns named
    ``blocks.{i}.attn.pattern``, each ``(batch, n_heads, seq, seq_k)``.
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.d_model)
        self.position_embedding: nn.Module | None = None
        if c.positions == "learned":
            self.position_embedding = LearnedPositions(c.context, c.d_model)
        elif c.positions == "sinusoidal":
            self.position_embedding = SinusoidalPositions(c.d_model, c.context)
        in_attention = c.positions if c.positions in ("rope", "alibi") else None
        self.dropout = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                c.n_heads,
                c.n_kv_heads,
                d_ff=c.d_ff,
                norm=c.norm,
                norm_kind=c.norm_kind,
                ffn=c.ffn,
                bias=c.bias,
                dropout=c.dropout,
                backend=c.backend,
                positions=in_attention,
            )
            for _ in range(c.n_layers)
        )
        # Post-norm blocks end in a norm already; pre-norm needs one before the head (GPT-2).
        self.final_norm = make_norm(c.norm_kind, c.d_model, c.bias) if c.norm == "pre" else None
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_weights(self, c.n_layers)
        if c.tie_embeddings:
            self.lm_head.weight = self.token_embedding.weight

    @property
    def head_dim(self) -> int:
        return self.config.d_model // self.config.n_heads

    def num_parameters(self) -> int:
        """Distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache | LinearStateCache:
        """An empty :class:`KVCache` sized for this model (running sums for linear attention)."""
        c = self.config
        if c.backend.startswith("linear:"):
            return LinearStateCache(c.n_layers)
        weight = self.token_embedding.weight
        return KVCache(
            c.n_layers,
            batch,
            c.n_kv_heads or c.n_heads,
            self.head_dim,
            max_len or c.context,
            dtype=weight.dtype,
            device=weight.device,
        )

    def _check_ids(self, idx, offset: int) -> None:
        check_token_ids("idx", idx, self.config.vocab_size, self.config.context, offset=offset)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        return_attention: bool = False,
    ):
        offset = cache.length if cache is not None else 0
        self._check_ids(idx, offset)
        x = self.token_embedding(idx)  # (B, T, d_model)
        if self.position_embedding is not None:
            x = x + self.position_embedding(idx.shape[1], offset=offset)
        x = self.dropout(x)
        patterns = {}
        for i, block in enumerate(self.blocks):
            layer_cache = cache[i] if cache is not None else None
            if return_attention:
                x, patterns[f"blocks.{i}.attn.pattern"] = block(
                    x, cache=layer_cache, need_weights=True
                )
            else:
                x = block(x, cache=layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        result = [logits]
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(
                    f"targets: expected shape {tuple(idx.shape)} like idx, "
                    f"got {tuple(targets.shape)}"
                )
            result.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        if return_attention:
            result.append(patterns)
        return result[0] if len(result) == 1 else tuple(result)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        *,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Extend ``idx`` ``(batch, seq)`` by ``max_new_tokens`` sampled tokens.

        ``temperature=0`` is greedy decoding. ``top_k`` keeps the k most likely tokens,
        ``top_p`` the smallest set whose probability reaches p (nucleus sampling, Holtzman et
        al., 2020). ``seed`` makes sampling reproducible. With ``use_cache=False`` every step
        recomputes the whole prefix (the O(T²) baseline the cache removes). The model sees at
        most its last ``context`` tokens: once the sequence is longer, every step recomputes that
        window (positions move with it, so cached keys no longer apply), with or without cache.
        """
        check_length("max_new_tokens", max_new_tokens)
        if temperature < 0:
            raise ValueError(f"temperature: expected ≥ 0, got {temperature}")
        if top_k is not None and (top_k < 1 or top_k > self.config.vocab_size):
            raise ValueError(f"top_k: expected 1 … {self.config.vocab_size}, got {top_k}")
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p: expected a number in (0, 1], got {top_p}")
        context = self.config.context
        self._check_ids(idx[:, -context:], 0)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        window = idx[:, -context:]
        total = window.shape[1] + max_new_tokens
        cache = self.new_cache(idx.shape[0], min(total, context)) if use_cache else None
        was_training = self.training
        self.eval()
        try:
            step_input = window
            for _ in range(max_new_tokens):
                if cache is not None and cache.length + step_input.shape[1] <= context:
                    logits = self(step_input, cache=cache)[:, -1, :]
                else:
                    logits = self(idx[:, -context:])[:, -1, :]
                next_id = _sample(logits, temperature, top_k, top_p, generator)
                idx = torch.cat([idx, next_id], dim=1)
                step_input = next_id
        finally:
            self.train(was_training)
        return idx


def _sample(logits, temperature, top_k, top_p, generator) -> torch.Tensor:
    """One token id per row ``(batch, 1)`` from ``(batch, vocab)`` logits."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, -1)
        # drop a token when the tokens ranked above it already reach top_p
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, -1)
    return torch.multinomial(probs, 1, generator=generator)
