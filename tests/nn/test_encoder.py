"""Encoder against torch.nn.TransformerEncoder with the same weights and padding, its heads and
its errors."""

import pytest
import torch
from torch import nn

from attnlab.nn import Encoder, EncoderConfig
from helpers import copy_attention, copy_norm_ffn, max_abs


def _model(**overrides) -> Encoder:
    torch.manual_seed(0)
    config = dict(vocab_size=11, context=8, n_layers=2, d_model=16, n_heads=4, d_ff=24)
    return Encoder(EncoderConfig(**{**config, **overrides})).double().eval()


def _batch():
    ids = torch.randint(11, (3, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[True] * 8, [True] * 5 + [False] * 3, [True] * 2 + [False] * 6])
    return ids, mask


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
def test_equals_torch_transformer_encoder_with_padding():
    model = _model()
    c = model.config
    layer = nn.TransformerEncoderLayer(
        c.d_model, c.n_heads, c.d_ff, 0.0, "gelu", batch_first=True, norm_first=True
    )
    reference = nn.TransformerEncoder(
        layer, c.n_layers, norm=nn.LayerNorm(c.d_model), enable_nested_tensor=False
    )
    reference = reference.double().eval()
    with torch.no_grad():
        for ours, theirs in zip(model.blocks, reference.layers, strict=True):
            copy_attention(ours.attn, theirs.self_attn)
            copy_norm_ffn(ours, theirs, [(ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2)])
        reference.norm.weight.copy_(model.final_norm.weight)
        reference.norm.bias.copy_(model.final_norm.bias)
        ids, mask = _batch()
        x = model.token_embedding(ids) + model.positions(8)
        expected = reference(x, src_key_padding_mask=~mask)  # torch: True = padding
        ours = model(ids, mask)
    assert max_abs(ours[mask], expected[mask]) < 1e-10
    with torch.no_grad():  # padding changes nothing at the real positions
        other = ids.masked_fill(~mask, 3)
        assert max_abs(model(other, mask)[mask], ours[mask]) < 1e-12


def test_attention_sees_both_ways_and_never_padding():
    model = _model()
    ids, mask = _batch()
    with torch.no_grad():
        _, patterns = model(ids, mask, return_attention=True)
    assert set(patterns) == {"blocks.0.attn.pattern", "blocks.1.attn.pattern"}
    for pattern in patterns.values():
        assert pattern.shape == (3, 4, 8, 8)
        assert float(pattern[1, :, :, 5:].abs().max()) == 0  # padded keys get no weight
        assert float(pattern[0].triu(diagonal=1).sum()) > 0  # later tokens are seen
        assert max_abs(pattern.sum(-1), torch.ones(3, 4, 8)) < 1e-12


def test_heads():
    model = _model()
    ids, mask = _batch()
    with torch.no_grad():
        states = model(ids, mask)
        logits = model.mlm_logits(states)
        assert logits.shape == (3, 8, 11)
        expected = states @ model.token_embedding.weight.T + model.mlm_bias  # tied decoder
        assert max_abs(logits, expected) == 0
        classes = model.classify(ids, mask)
        assert classes.shape == (3, 2)
        assert max_abs(classes, model.classifier(states[:, 0])) < 1e-12


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda m: m(torch.zeros(2, 3)), TypeError, "ids: expected a torch.long tensor"),
        (lambda m: m(torch.zeros(2, 9, dtype=torch.long)), ValueError, "ids: 9 tokens exceed"),
        (lambda m: m(torch.full((2, 3), 11)), ValueError, r"ids: expected ids in \[0, 11\)"),
        (lambda m: m(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3)), TypeError,
         "mask: expected a bool tensor"),
        (lambda m: m(torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.bool)),
         ValueError, r"mask: expected shape \(2, 3\)"),
        (lambda m: m(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.bool)),
         ValueError, "every sequence needs at least one real token"),
    ],
)  # fmt: skip
def test_errors(call, error, words):
    with pytest.raises(error, match=words):
        call(_model())
    with pytest.raises(ValueError, match="n_heads: expected a divisor of d_model=16"):
        EncoderConfig(vocab_size=5, context=4, d_model=16, n_heads=3)
    with pytest.raises(TypeError, match="config: expected an EncoderConfig"):
        Encoder({"vocab_size": 5})
