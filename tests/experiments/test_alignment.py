"""cross-attention-alignment: a trained toy translator's cross attention finds the known
alignment (seed 000 Ex 6, 15)."""

import pytest

from attnlab.data.toy_translation import ALIGNMENT
from attnlab.experiments import run_experiment


@pytest.fixture(scope="module")
def result():
    return run_experiment("cross-attention-alignment", seed=0)


def test_each_target_row_attends_to_its_aligned_source_word(result):
    assert [r["aligned_source"] for r in result.rows] == list(ALIGNMENT)
    assert [r["argmax_source"] for r in result.rows] == list(ALIGNMENT)
    s = result.summary
    assert s["alignment_matches"] == 5 and s["rows"] == 5
    assert s["alignment_accuracy_per_sentence"] >= 0.99
    assert s["mean_weight_on_aligned"] >= 0.9 and s["weight_on_articles"] < 0.02
    # before training the cross attention is near uniform over the 7 source words
    assert abs(s["mean_weight_on_aligned_untrained"] - 1 / 7) < 0.02
    # the held-out sentences (never trained on) are translated
    assert s["sentence_accuracy"] >= 0.99 and s["held_out_sentences"] == 819
    assert s["final_loss"] < 0.05 < s["first_loss"]


def test_patterns_are_cross_not_self_shaped_and_plot(result, tmp_path):
    assert result.details["pattern_shapes"] == {"self": [5, 5], "cross": [5, 7]}
    example = result.details["example"]
    assert len(example["source"]) == 7 and len(example["pattern"]) == 5
    assert example["translation"] == example["reference"]
    assert all(abs(sum(row) - 1) < 1e-5 for row in example["pattern"])
    path = result.plot(tmp_path / "alignment.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_an_untrained_model_finds_no_alignment():
    """The figures above come from training: with one step the argmax is chance."""
    s = run_experiment("cross-attention-alignment", seed=0, steps=1).summary
    assert s["mean_weight_on_aligned"] < 0.3 and s["sentence_accuracy"] < 0.05


@pytest.mark.parametrize(
    ("params", "words"),
    [({"steps": 0}, "steps"), ({"encoder_layers": -1}, "encoder_layers"), ({"lr": 0.0}, "lr")],
)
def test_bad_parameters(params, words):
    with pytest.raises(ValueError, match=words):
        run_experiment("cross-attention-alignment", **params)
