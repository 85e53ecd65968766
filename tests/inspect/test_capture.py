"""Capturing attnlab models: backends agree, causal patterns, records round-trip, bad input."""

import numpy as np
import pytest
import torch

from attnlab.data import CharTokenizer
from attnlab.inspect import AttentionRecord, capture, head_scores, induction_record
from attnlab.nn import GPT, GPTConfig
from attnlab.train.checkpoint import save_checkpoint
from helpers import max_abs

TEXT = "to be, or not to be"


def tiny(**overrides) -> tuple[GPT, CharTokenizer]:
    tokenizer = CharTokenizer("abcdefghijklmnopqrstuvwxyz ,.")
    config = dict(vocab_size=tokenizer.vocab_size, context=32, n_layers=2, d_model=32, n_heads=4)
    config.update(overrides)
    torch.manual_seed(0)
    return GPT(GPTConfig(**config)), tokenizer


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_sdpa_backend_weights_equal_the_naive_backend(n_kv_heads):
    naive, tokenizer = tiny(backend="naive", n_kv_heads=n_kv_heads, positions="rope")
    sdpa, _ = tiny(backend="sdpa", n_kv_heads=n_kv_heads, positions="rope")
    sdpa.load_state_dict(naive.state_dict())
    a = capture(naive, TEXT, tokenizer=tokenizer)
    b = capture(sdpa, TEXT, tokenizer=tokenizer)
    assert a.weights.shape == (2, 4, len(TEXT), len(TEXT))
    assert max_abs(a.weights, b.weights) <= 1e-6
    assert any("explicit softmax path" in note for note in b.notes)
    assert a.tokens == list(TEXT) and a.token_ids == tokenizer.encode(TEXT)
    if n_kv_heads:
        assert a.n_kv_heads == 2 and any("grouped-query" in note for note in a.notes)


def test_causal_rows_sum_to_one_and_the_upper_triangle_is_exactly_zero():
    model, tokenizer = tiny()
    model.train()  # capture switches dropout off and restores the mode afterwards
    record = capture(model, TEXT, tokenizer=tokenizer)
    assert model.training
    assert record.causal and record.weights.dtype == np.float32
    assert np.abs(record.weights.sum(-1) - 1).max() <= 1e-5
    assert not np.triu(record.weights, k=1).any()
    assert record.layer(1).shape == (4, len(TEXT), len(TEXT))
    assert (record.head(1, 2) == record.weights[1, 2]).all()
    with pytest.raises(ValueError, match="layer"):
        record.layer(2)


def test_ids_are_captured_as_given_and_match_the_model_forward():
    model, tokenizer = tiny(backend="naive")
    ids = tokenizer.encode("abc abc")
    record = capture(model, torch.tensor(ids), tokenizer=tokenizer)
    _, patterns = model.eval()(torch.tensor([ids]), return_attention=True)
    assert max_abs(record.weights[0], patterns["blocks.0.attn.pattern"][0]) == 0.0
    assert capture(model, ids).tokens == [str(i) for i in ids]  # no tokenizer: ids shown


def test_text_longer_than_the_context_is_truncated_with_a_note_or_refused():
    model, tokenizer = tiny()
    long_text = "a quick brown fox jumps over the lazy dog"  # 41 characters > context 32
    record = capture(model, long_text, tokenizer=tokenizer)
    assert record.seq_len == 32 and "".join(record.tokens) == long_text[:32]
    assert any("truncated" in note and "41 tokens" in note for note in record.notes)
    assert capture(model, long_text, tokenizer=tokenizer, max_tokens=5).seq_len == 5
    with pytest.raises(ValueError, match="exceed"):
        capture(model, long_text, tokenizer=tokenizer, strict=True)


def test_records_round_trip_through_npz_and_json(tmp_path):
    model, tokenizer = tiny()
    record = capture(model, "hello, world", tokenizer=tokenizer)
    path = record.save(tmp_path / "run" / "hello")
    assert path.suffix == ".json" and path.with_suffix(".npz").is_file()
    for name in ("hello", "hello.json", "hello.npz"):
        loaded = AttentionRecord.load(tmp_path / "run" / name)
        assert (loaded.weights == record.weights).all() and loaded.tokens == record.tokens
        assert loaded.causal and loaded.notes == record.notes
    again = AttentionRecord.from_dict(record.to_dict())
    assert (again.weights == record.weights).all() and again.token_ids == record.token_ids
    with pytest.raises(FileNotFoundError, match="missing"):
        AttentionRecord.load(tmp_path / "nothing")


def test_a_checkpoint_directory_is_captured_with_its_tokenizer(tmp_path):
    model, tokenizer = tiny()
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"step": 0})
    record = capture(str(tmp_path / "ckpt"), "be or not", seed=0)
    direct = capture(model, "be or not", tokenizer=tokenizer)
    assert record.model_name.startswith("checkpoint") and record.tokens == list("be or not")
    assert max_abs(record.weights, direct.weights) == 0.0
    scores = head_scores(induction_record(str(tmp_path / "ckpt"), length=8, seed=1))
    assert scores.shape == (2, 4)


def test_bad_inputs_name_the_argument():
    model, tokenizer = tiny()
    with pytest.raises(ValueError, match="tokenizer"):
        capture(model, "text")
    with pytest.raises(TypeError, match="text_or_ids"):
        capture(model, [1.5, 2.0], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="text_or_ids"):
        capture(model, "", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="max_tokens"):
        capture(model, "abc", tokenizer=tokenizer, max_tokens=0)
    with pytest.raises(TypeError, match="model"):
        capture(object(), "abc", tokenizer=tokenizer)
    with pytest.raises(FileNotFoundError, match="neither"):
        capture("./no/such/dir", "abc")
    with pytest.raises(ValueError, match="weights"):
        AttentionRecord(tokens=["a"], weights=np.ones((1, 1)), model_name="x", causal=True)
