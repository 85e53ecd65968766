"""Helpers for tests: random inputs, differences, copying weights into torch's modules."""

import torch


def randn(*shape, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def max_abs(a, b) -> float:
    a = torch.as_tensor(a).detach().to(torch.float64)
    b = torch.as_tensor(b).detach().to(torch.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max()) if a.numel() else 0.0


def copy_attention(ours, theirs) -> None:
    """attnlab MultiHeadAttention weights into torch.nn.MultiheadAttention."""
    theirs.in_proj_weight.copy_(
        torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight])
    )
    theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
    theirs.out_proj.weight.copy_(ours.out_proj.weight)
    theirs.out_proj.bias.copy_(ours.out_proj.bias)


def copy_norm_ffn(ours, theirs, norms) -> None:
    """Norm pairs and an attnlab block's GELU feed-forward into a torch Transformer layer."""
    for mine, torchs in norms:
        torchs.weight.copy_(mine.weight)
        torchs.bias.copy_(mine.bias)
    theirs.linear1.weight.copy_(ours.ffn.up.weight)
    theirs.linear1.bias.copy_(ours.ffn.up.bias)
    theirs.linear2.weight.copy_(ours.ffn.down.weight)
    theirs.linear2.bias.copy_(ours.ffn.down.bias)
