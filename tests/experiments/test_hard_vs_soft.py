"""argmax-vs-softmax: seed 003 problem 2, zero gradients for argmax, the τ → 0 limit."""

import itertools
import math

import pytest
import torch

from attnlab.experiments import run_experiment


@pytest.fixture(scope="module")
def result():
    return run_experiment("argmax-vs-softmax", random_cases=2)


def test_seed_example_hard_output_is_v2(result):
    assert result.summary["seed_scores"] == [3.0, 11.0, 5.0, 2.0]
    assert result.summary["seed_hard_output"] == [1.0, 4.0, 3.0]
    hard = result.rows[0]
    assert (hard["case"], hard["method"]) == ("seed 003 P2", "argmax")
    assert hard["weights"] == [0.0, 1.0, 0.0, 0.0]


def test_argmax_passes_no_gradient_to_query_or_keys(result):
    hard = [r for r in result.rows if r["method"] == "argmax"]
    assert len(hard) == 3
    for row in hard:
        assert row["grad_q"] == row["grad_k"] == 0.0 and row["grad_reaches_q_k"] is False
        assert row["grad_v"] == pytest.approx(math.sqrt(3))  # ∂Σout/∂v_chosen = ones(3)


def test_softmax_passes_gradient_at_moderate_temperature(result):
    warm = [r for r in result.rows if r["method"] == "softmax" and r["temperature"] == 1.0]
    assert all(r["grad_reaches_q_k"] and r["grad_q"] > 0 and r["grad_k"] > 0 for r in warm)


def test_softmax_weights_match_an_independent_softmax(result):
    row = next(r for r in result.rows if r["method"] == "softmax" and r["temperature"] == 1.0)
    expected = torch.softmax(torch.tensor([3.0, 11.0, 5.0, 2.0], dtype=torch.float64), -1)
    assert row["weights"] == pytest.approx(expected.tolist(), abs=1e-15)


def test_soft_output_tends_to_hard_as_temperature_falls(result):
    seed_rows = [r for r in result.rows if r["case"] == "seed 003 P2" and r["method"] == "softmax"]
    distances = [r["distance_to_hard"] for r in seed_rows]  # temperatures in falling order
    assert all(a >= b for a, b in itertools.pairwise(distances))
    assert distances[0] > 0.1
    assert all(r["distance_to_hard"] < 1e-12 for r in seed_rows if r["temperature"] <= 0.1)
    for case in {r["case"] for r in result.rows}:
        soft = [r for r in result.rows if r["case"] == case and r["method"] == "softmax"]
        assert soft[-1]["distance_to_hard"] < soft[0]["distance_to_hard"]


def test_temperatures_must_be_positive():
    with pytest.raises(ValueError, match="temperatures"):
        run_experiment("argmax-vs-softmax", temperatures=(1.0, 0.0))
