"""rope-relative: ⟨R_m q, R_n k⟩ depends on n − m only, in both layouts (seed 004 13.27)."""

import math

import pytest
import torch

from attnlab.experiments import run_experiment
from attnlab.experiments.rope_relative import _score


def test_shifted_scores_are_equal_in_both_conventions():
    result = run_experiment("rope-relative", seed=5)
    assert {r["convention"] for r in result.rows} == {"interleaved", "half"}
    assert all(r["abs_difference"] <= 1e-10 for r in result.rows)
    assert result.summary["max_abs_difference_interleaved"] <= 1e-10
    assert result.summary["max_abs_difference_half"] <= 1e-10
    assert result.summary["max_difference_to_q_R_k"] <= 1e-10
    assert result.summary["score_range_over_distances"] > 0.1  # not a constant


def test_score_equals_an_explicit_rotation_matrix_product():
    q = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    k = torch.tensor([0.3, 1.0, -1.0, 2.0], dtype=torch.float64)
    m, n, base = 4, 9, 10000.0

    def rotation(pos):  # interleaved pairs (0, 1), (2, 3), angles pos·base^(−2i/4)
        r = torch.zeros(4, 4, dtype=torch.float64)
        for i in range(2):
            a = pos * base ** (-2 * i / 4)
            r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
                [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
            )
        return r

    expected = float((rotation(m) @ q) @ (rotation(n) @ k))
    assert _score(q, k, m, n, True, base) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(float(q @ rotation(n - m) @ k), abs=1e-12)


def test_positions_must_stay_non_negative():
    with pytest.raises(ValueError, match="distances"):
        run_experiment("rope-relative", start=2, distances=(-3,))
