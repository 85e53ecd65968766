"""Parameter counts against real modules: transformers' GPT-2 and Llama, and attnlab.nn."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from attnlab.calc import Architecture, attention_params, count_params, rule_of_thumb_params
from attnlab.nn import GPT, GPTConfig, MultiHeadAttention


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())  # shared (tied) tensors once


def test_gpt2_small_closed_form():
    count = count_params()  # the defaults are GPT-2 small
    assert count.total_params == 124_439_808
    assert count.total_params == sum(part.value for part in count.parts)
    assert count.per_layer_params == 7_087_872
    # the tied rule 12·L·d² + V·d is within 1 %; the untied 2·V·d rule over-counts by 30 %
    assert count.rule_of_thumb_params == 12 * 12 * 768**2 + 50257 * 768
    assert -0.01 < count.rule_relative_error < 0
    untied_rule = rule_of_thumb_params(12, 768, 50257, tie_embeddings=False)
    assert 0.29 < untied_rule / count.total_params - 1 < 0.31


@pytest.mark.parametrize(
    ("layers", "width", "heads", "inner", "tied"),
    [(1, 32, 1, None, True), (2, 64, 4, None, True), (3, 48, 6, 80, False), (2, 64, 16, 200, True)],
)
def test_matches_transformers_gpt2(layers, width, heads, inner, tied):
    config = GPT2Config(
        n_layer=layers, n_embd=width, n_head=heads, n_inner=inner, vocab_size=101,
        n_positions=40, tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    arch = Architecture(
        n_layers=layers, d_model=width, n_heads=heads, d_ff=inner, vocab_size=101, context=40,
        tie_embeddings=tied,
    )  # fmt: skip
    assert count_params(arch).total_params == numel(GPT2LMHeadModel(config))


LLAMA_CASES = [
    # heads, kv heads, head_dim, tied, biases
    (4, 4, None, False, False),
    (8, 2, None, False, False),  # GQA
    (8, 1, None, True, False),  # MQA, tied
    (4, 2, 32, False, False),  # head_dim ≠ d_model / heads
    (4, 2, None, True, True),  # biases on every linear; RMSNorm still has none
]


@pytest.mark.parametrize(("heads", "kv", "head_dim", "tied", "bias"), LLAMA_CASES)
def test_matches_transformers_llama(heads, kv, head_dim, tied, bias):
    config = LlamaConfig(
        vocab_size=97, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
        max_position_embeddings=64, tie_word_embeddings=tied, attention_bias=bias, mlp_bias=bias,
    )  # fmt: skip
    arch = Architecture(
        n_layers=2, d_model=64, n_heads=heads, n_kv_heads=kv, head_dim=head_dim, d_ff=176,
        vocab_size=97, context=64, ffn="swiglu", norm_kind="rmsnorm", positions="rope",
        bias=bias, tie_embeddings=tied,
    )  # fmt: skip
    assert count_params(arch).total_params == numel(LlamaForCausalLM(config))


@given(
    heads_kv=st.sampled_from([(4, 4), (4, 2), (4, 1), (2, 1), (1, 1)]),
    layers=st.integers(1, 3),
    d_ff=st.sampled_from([None, 24, 100]),
    positions=st.sampled_from(["learned", "sinusoidal", "rope", "alibi", "none"]),
    norm=st.sampled_from(["pre", "post"]),
    norm_kind=st.sampled_from(["layernorm", "rmsnorm"]),
    ffn=st.sampled_from(["gelu", "swiglu"]),
    bias=st.booleans(),
    tied=st.booleans(),
)
def test_matches_attnlab_gpt(heads_kv, layers, d_ff, positions, norm, norm_kind, ffn, bias, tied):
    heads, kv = heads_kv
    model = GPT(
        GPTConfig(
            vocab_size=37, context=16, n_layers=layers, d_model=32, n_heads=heads,
            n_kv_heads=kv, d_ff=d_ff, positions=positions, norm=norm, norm_kind=norm_kind,
            ffn=ffn, bias=bias, tie_embeddings=tied,
        )
    )  # fmt: skip
    arch = Architecture(
        n_layers=layers, d_model=32, n_heads=heads, n_kv_heads=kv, d_ff=d_ff, vocab_size=37,
        context=16, ffn=ffn, positions=positions, norm_kind=norm_kind, bias=bias,
        tie_embeddings=tied, final_norm=norm == "pre",  # post-norm blocks end in a norm
    )  # fmt: skip
    count = count_params(arch)
    assert count.total_params == numel(model) == model.num_parameters()
    assert count.total_params == count.embedding_params + count.non_embedding_params


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("d_model", [8, 24, 48])
def test_attention_is_4d2_for_any_head_count(d_model, bias):
    """Exercise 13.30: 4·d² (+ 4·d biases) whatever the number of heads."""
    for heads in (h for h in range(1, d_model + 1) if d_model % h == 0):
        count = attention_params(d_model, heads, bias=bias)
        expected = 4 * d_model**2 + (4 * d_model if bias else 0)
        assert (
            count.total_params == expected == numel(MultiHeadAttention(d_model, heads, bias=bias))
        )
        assert count.mha_rule_params == 4 * d_model**2
        # per head: d × d/h slices of W_q, W_k, W_v (plus W_o) sum back to the whole
        per_head = count.per_query_head_params + count.per_kv_head_params
        assert heads * per_head + d_model * d_model + (d_model if bias else 0) == expected


@pytest.mark.parametrize(("heads", "kv"), [(8, 8), (8, 4), (8, 2), (8, 1), (6, 3)])
def test_gqa_shrinks_key_and_value_projections(heads, kv):
    d = 48
    count = attention_params(d, heads, kv)
    assert count.total_params == numel(MultiHeadAttention(d, heads, kv))
    key = next(p for p in count.parts if p.name == "key_projection")
    assert key.value == d * (d // heads) * kv + (d // heads) * kv


def test_exercise_13_12_rule():
    """L = 24, d = 1024, V = 50000 with the 12·L·d² + 2·V·d rule: about 404 million."""
    assert rule_of_thumb_params(24, 1024, 50000) == 404_389_888
    assert rule_of_thumb_params(24, 1024, 50000, tie_embeddings=True) == 353_189_888


def test_exercise_13_17_llama_7b_within_5_percent():
    """V = 32000, d = 4096, L = 32: Llama 7B, 6,738,415,616 parameters."""
    llama = count_params(
        n_layers=32, d_model=4096, n_heads=32, vocab_size=32000, d_ff=11008, ffn="swiglu",
        norm_kind="rmsnorm", bias=False, positions="none", tie_embeddings=False,
    )  # fmt: skip
    assert llama.total_params == 6_738_415_616
    assert llama.rule_of_thumb_params == rule_of_thumb_params(32, 4096, 32000)
    assert abs(llama.rule_relative_error) < 0.05


def test_ff_mult_and_breakdown_names_are_snake_case():
    count = count_params(ff_mult=8 / 3, d_model=768, ffn="swiglu")
    assert count.architecture.d_ff == 2048
    data = count.to_dict()
    for key in (*data, *data["breakdown"]):
        assert key == key.lower() and " " not in key and "-" not in key
