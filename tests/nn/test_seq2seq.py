"""EncoderDecoder against torch.nn.Transformer with the same weights, its masks and its errors."""

import pytest
import torch
from torch import nn

from attnlab.nn import EncoderDecoder, EncoderDecoderConfig
from helpers import copy_attention, copy_norm_ffn, max_abs

CONFIG = dict(src_vocab_size=13, tgt_vocab_size=11, src_context=9, tgt_context=6, d_model=16)


def _model(**overrides) -> EncoderDecoder:
    torch.manual_seed(0)
    config = EncoderDecoderConfig(**{**CONFIG, "n_heads": 4, "d_ff": 24, **overrides})
    return EncoderDecoder(config).double().eval()


def _ids(vocab, batch, seq, seed):
    return torch.randint(vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def _torch_transformer(model: EncoderDecoder) -> nn.Transformer:
    """torch's own encoder–decoder (pre-norm, GELU, no dropout) carrying our weights."""
    c = model.config
    reference = nn.Transformer(
        c.d_model, c.n_heads, c.n_encoder_layers, c.n_decoder_layers, c.d_ff, dropout=0.0,
        activation="gelu", batch_first=True, norm_first=True,
    ).double().eval()  # fmt: skip
    with torch.no_grad():
        for ours, theirs in zip(model.encoder, reference.encoder.layers, strict=True):
            copy_attention(ours.attn, theirs.self_attn)
            copy_norm_ffn(ours, theirs, [(ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2)])
        for ours, theirs in zip(model.decoder, reference.decoder.layers, strict=True):
            copy_attention(ours.self_attn, theirs.self_attn)
            copy_attention(ours.cross_attn, theirs.multihead_attn)
            norms = [
                (ours.norm1, theirs.norm1),
                (ours.norm2, theirs.norm2),
                (ours.norm3, theirs.norm3),
            ]
            copy_norm_ffn(ours, theirs, norms)
        for mine, torchs in [(model.encoder_norm, reference.encoder.norm),
                             (model.decoder_norm, reference.decoder.norm)]:  # fmt: skip
            torchs.weight.copy_(mine.weight)
            torchs.bias.copy_(mine.bias)
    return reference


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("layers", [(1, 1), (2, 3)])
def test_equals_torch_transformer_with_the_same_weights(layers):
    model = _model(n_encoder_layers=layers[0], n_decoder_layers=layers[1])
    reference = _torch_transformer(model)
    src, tgt = _ids(13, 3, 9, 1), _ids(11, 3, 6, 2)
    src_x = model.src_embedding(src) + model.src_positions(9)
    tgt_x = model.tgt_embedding(tgt) + model.tgt_positions(6)
    mask = nn.Transformer.generate_square_subsequent_mask(6, dtype=torch.float64)
    with torch.no_grad():
        expected = model.head(reference(src_x, tgt_x, tgt_mask=mask, tgt_is_causal=True))
        assert max_abs(model(src, tgt), expected) < 1e-10
        assert max_abs(model.encode(src), reference.encoder(src_x)) < 1e-10


def test_patterns_have_the_self_and_cross_shapes():
    model = _model(n_encoder_layers=2)
    src, tgt = _ids(13, 2, 7, 3), _ids(11, 2, 5, 4)
    with torch.no_grad():
        logits, patterns = model(src, tgt, return_attention=True)
    assert logits.shape == (2, 5, 11)
    assert set(patterns) == {"encoder.0.attn.pattern", "encoder.1.attn.pattern",
                             "decoder.0.attn.pattern", "decoder.0.cross.pattern"}  # fmt: skip
    assert patterns["encoder.0.attn.pattern"].shape == (2, 4, 7, 7)
    assert patterns["decoder.0.attn.pattern"].shape == (2, 4, 5, 5)
    assert patterns["decoder.0.cross.pattern"].shape == (2, 4, 5, 7)  # seq_tgt × seq_src
    for pattern in patterns.values():
        assert max_abs(pattern.sum(-1), torch.ones(pattern.shape[:-1])) < 1e-12
    own = patterns["decoder.0.attn.pattern"]
    assert float(own.triu(diagonal=1).abs().max()) == 0.0  # the decoder looks back only
    above = torch.ones(7, 7).triu(diagonal=1).bool()
    assert float(patterns["encoder.0.attn.pattern"][..., above].min()) > 0  # the encoder: both ways
    assert max_abs(model(src, tgt), logits) < 1e-12  # the fused path, same numbers


def test_encoder_sees_both_ways_decoder_only_back():
    model = _model()
    src, tgt = _ids(13, 1, 8, 5), _ids(11, 1, 6, 6)
    with torch.no_grad():
        memory = model.encode(src)
        later_src = src.clone()
        later_src[0, -1] = (src[0, -1] + 1) % 13
        assert float((model.encode(later_src)[0, 0] - memory[0, 0]).abs().max()) > 1e-6
        logits = model(src, tgt)
        later_tgt = tgt.clone()
        later_tgt[0, -1] = (tgt[0, -1] + 1) % 11
        changed = model(src, later_tgt)
    assert max_abs(changed[:, :-1], logits[:, :-1]) < 1e-12
    assert float((changed[:, -1] - logits[:, -1]).abs().max()) > 1e-6


def test_greedy_translation_is_the_argmax_of_the_forward_pass():
    model = _model()
    src = _ids(13, 4, 9, 7)
    out = model.translate(src, 5, start=0)
    assert out.shape == (4, 5) and out.dtype == torch.long
    decoder_input = torch.cat([torch.zeros(4, 1, dtype=torch.long), out[:, :-1]], dim=1)
    with torch.no_grad():
        assert torch.equal(model(src, decoder_input).argmax(-1), out)


def test_targets_give_the_cross_entropy():
    model = _model()
    src, tgt, targets = _ids(13, 2, 9, 8), _ids(11, 2, 6, 9), _ids(11, 2, 6, 10)
    with torch.no_grad():
        logits, loss = model(src, tgt, targets)
    expected = nn.functional.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    assert abs(float(loss) - float(expected)) < 1e-12


def _z(*shape):
    return torch.zeros(*shape, dtype=torch.long)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda m: m(torch.zeros(2, 3), _z(2, 3)), "src: expected a torch.long tensor"),
        (lambda m: m(torch.full((2, 3), 13), _z(2, 3)), r"src: expected ids in \[0, 13\)"),
        (lambda m: m(_z(2, 10), _z(2, 3)), "src: 10 tokens exceed the context 9"),
        (lambda m: m(_z(2, 3), torch.full((2, 3), -1)), r"tgt: expected ids in \[0, 11\)"),
        (lambda m: m(_z(2, 3), _z(2, 7)), "tgt: 7 tokens exceed the context 6"),
        (lambda m: m(_z(2, 3), _z(2, 3), _z(2, 4)), r"targets: expected shape \(2, 3\)"),
        (lambda m: m.decode(torch.zeros(3, 4, 16), _z(2, 3)), r"memory: expected \(batch=2"),
        (
            lambda m: m.decode(torch.zeros(2, 4, 8), _z(2, 3)),
            r"memory: expected .*, 16\), got \(2, 4, 8\)",
        ),
        (lambda m: m.translate(_z(2, 3), 7, start=0), "length: expected at most tgt_context=6"),
        (lambda m: m.translate(_z(2, 3), 2, start=11), r"start: expected an id in \[0, 11\)"),
    ],
)
def test_bad_input_names_the_argument(make, words):
    with pytest.raises((TypeError, ValueError), match=words):
        make(_model().float())


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"n_decoder_layers": 0}, "n_decoder_layers: expected ≥ 1"),
        ({"n_encoder_layers": -1}, "n_encoder_layers: expected a whole number ≥ 0"),
        ({"n_heads": 5}, "n_heads: expected a divisor of d_model=16"),
        ({"src_vocab_size": 0}, "src_vocab_size"),
        ({"dropout": 1.0}, r"dropout: expected a number in \[0, 1\)"),
    ],
)
def test_config_errors(overrides, words):
    with pytest.raises(ValueError, match=words):
        EncoderDecoderConfig(**{**CONFIG, **overrides})
    with pytest.raises(TypeError, match="config: expected an EncoderDecoderConfig"):
        EncoderDecoder(CONFIG)
