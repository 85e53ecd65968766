"""mlm-sentiment: masked-LM pretraining lets a tiny encoder classify verdicts with adjectives its
labelled data never showed (seed 004 13.24)."""

import pytest

from attnlab.experiments import run_experiment


def test_pretraining_carries_over_to_unseen_adjectives(tmp_path):
    result = run_experiment("mlm-sentiment", seed=0)
    s = result.summary
    assert s["masked_lm_accuracy"] > 0.5
    assert s["pretrained_seen"] >= 0.95 and s["scratch_seen"] >= 0.95  # both learn the labels
    assert s["pretrained_unseen"] >= 0.9  # …but only pretraining knows the other adjectives
    assert s["scratch_unseen"] <= 0.65 and s["gain_unseen"] >= 0.25
    negated = {(r["model"], r["test"]): r["accuracy_negated"] for r in result.rows}
    assert negated["pretrained", "unseen"] >= 0.85  # "not" composes with the new adjectives
    assert result.plot(tmp_path / "mlm.png").stat().st_size > 20_000


def test_without_pretraining_steps_there_is_no_gain():
    s = run_experiment("mlm-sentiment", seed=0, pretrain_steps=1, finetune_steps=150).summary
    assert s["pretrained_unseen"] <= 0.65 and s["pretrained_seen"] >= 0.95


@pytest.mark.parametrize("params", [{"labelled": 0}, {"heads": 0}, {"lr": 0.0}])
def test_bad_parameters(params):
    with pytest.raises(ValueError, match=next(iter(params))):
        run_experiment("mlm-sentiment", **params)
