"""FLOP counts against torch's FlopCounterMode on real forward and backward passes.

FlopCounterMode counts 2 FLOPs per multiply-add of matrix products (mm, addmm, bmm) and
nothing else, the convention of attnlab.calc.flops, so the counts must agree exactly. The
attention paths are the explicit ones (transformers' "eager", attnlab's "naive"): the fused
CPU kernel is not registered with the counter.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from attnlab.calc import Architecture, flops, flops_from_params, training_flops
from attnlab.nn import GPT, GPTConfig, MultiHeadAttention

SEQ = 12


def counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def ids(vocab: int, seq: int = SEQ) -> torch.Tensor:
    return torch.randint(0, vocab, (2, seq), generator=torch.Generator().manual_seed(0))


def by_part(count) -> dict:
    return {part.name: part.value for part in count.parts}


def test_gpt2_forward_and_training():
    config = GPT2Config(
        n_layer=2, n_embd=64, n_head=4, vocab_size=101, n_positions=32, bos_token_id=0,
        eos_token_id=0, attn_implementation="eager",
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    arch = Architecture(n_layers=2, d_model=64, n_heads=4, vocab_size=101, context=32)
    x = ids(101)
    tokens = x.numel()
    count = flops(arch, tokens, context=SEQ)  # every query meets SEQ keys in the dense kernel
    assert counted(lambda: model(x)) == count.forward_flops

    def train_step():
        model(x).logits.sum().backward()

    assert counted(train_step) == count.training_flops  # backward = 2 × forward, exactly


@pytest.mark.parametrize(("heads", "kv"), [(4, 4), (4, 2), (4, 1)])
def test_llama_forward_with_gqa_and_swiglu(heads, kv):
    config = LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=32,
        attn_implementation="eager",
    )  # fmt: skip
    arch = Architecture(
        n_layers=2, d_model=64, n_heads=heads, n_kv_heads=kv, d_ff=176, vocab_size=97,
        context=32, ffn="swiglu", norm_kind="rmsnorm", positions="rope", bias=False,
        tie_embeddings=False,
    )  # fmt: skip
    x = ids(97)
    assert (
        counted(lambda: LlamaForCausalLM(config)(x))
        == flops(arch, x.numel(), context=SEQ).forward_flops
    )


def test_attnlab_gpt_forward():
    model = GPT(
        GPTConfig(
            vocab_size=50, context=32, n_layers=3, d_model=48, n_heads=6, n_kv_heads=2,
            ffn="swiglu", d_ff=80, backend="naive",
        )
    )  # fmt: skip
    arch = Architecture(
        n_layers=3, d_model=48, n_heads=6, n_kv_heads=2, ffn="swiglu", d_ff=80, vocab_size=50,
        context=32,
    )  # fmt: skip
    x = ids(50)
    assert counted(lambda: model(x)) == flops(arch, x.numel(), context=SEQ).forward_flops


def test_attention_parts_match_multi_head_attention():
    d, heads, kv = 32, 4, 2
    module = MultiHeadAttention(d, heads, kv, backend="naive")
    x = torch.randn(2, SEQ, d)
    count = by_part(
        flops(Architecture(n_layers=1, d_model=d, n_heads=heads, n_kv_heads=kv), 1, context=SEQ)
    )
    per_token = sum(
        count[k]
        for k in ("qkv_projections", "attention_scores", "weighted_values", "output_projection")
    )
    assert counted(lambda: module(x)) == per_token * x.shape[0] * SEQ


def test_two_n_per_token_rule():
    """Exercise 13.29: each weight does one multiply-add per token, so the forward pass ≈ 2·N.

    Exactly, for GPT-2 small: 2·N less the parameters that multiply nothing (learned
    positions, biases and norm gains and shifts), plus the attention term.
    """
    count = flops(Architecture(), context=1)  # GPT-2 small, attention over a single key
    parts = by_part(count)
    matmuls = count.flops_per_token - parts["attention_scores"] - parts["weighted_values"]
    d, layers, d_ff = 768, 12, 3072
    positions = 1024 * d
    biases = layers * (3 * d + d + d_ff + d)
    norms = (2 * layers + 1) * 2 * d
    assert matmuls == 2 * (count.params - positions - biases - norms)
    assert abs(matmuls / (2 * count.params) - 1) < 0.01
    assert count.rule_flops_per_token == 2 * count.params + 2 * layers * 1 * d


def test_exercise_13_13_training_compute():
    """13B parameters on 2T tokens: 6·N·D = 1.56e23 FLOPs."""
    assert training_flops(13 * 10**9, 2 * 10**12) == 156 * 10**21
    count = flops_from_params(13 * 10**9, 2 * 10**12)
    assert count.rule_training_flops == count.training_flops == 156 * 10**21
    assert count.training_flops_checkpointed == 4 * count.training_flops // 3


def test_from_params_adds_the_attention_term_when_the_shape_is_known():
    count = flops_from_params(10**9, 1, n_layers=24, d_model=2048, context=2048)
    assert count.flops_per_token == 2 * 10**9 + 2 * 24 * 2048 * 2048
    assert flops_from_params(10**9, 1, n_layers=24).flops_per_token == 2 * 10**9
