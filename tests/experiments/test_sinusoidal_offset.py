"""sinusoidal-offset: PE(pos + k) = M_k PE(pos), M_k built in closed form and fitted (13.26)."""

import math

import pytest
import torch

from attnlab.experiments import run_experiment
from attnlab.experiments.sinusoidal_offset import offset_map


def test_closed_form_map_holds_at_every_position_and_matches_the_fit():
    result = run_experiment("sinusoidal-offset", offsets=(1, 5, 100), fit_positions=64)
    assert len(result.rows) == 3 * 7
    assert all(r["closed_form_error"] <= 1e-10 for r in result.rows)
    assert all(r["fitted_error"] <= 1e-10 for r in result.rows)
    # Two fits from disjoint position ranges give one matrix: it does not depend on pos.
    assert result.summary["max_fit_low_vs_high"] <= 1e-8
    assert result.summary["max_fit_vs_closed_form"] <= 1e-8


def test_offset_map_is_the_rotation_written_out_by_hand():
    k, base = 3, 10000.0
    m = offset_map(k, 4, base)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    for i, omega in enumerate((1.0, base ** (-2 / 4))):
        c, s = math.cos(k * omega), math.sin(k * omega)
        expected[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[c, s], [-s, c]], dtype=torch.float64
        )
    assert torch.allclose(m, expected, atol=1e-15, rtol=0)


def test_maps_compose_like_offsets_and_are_orthogonal():
    m2, m3, m5 = (offset_map(k, 16) for k in (2, 3, 5))
    assert (m2 @ m3 - m5).abs().max() < 1e-14  # M_j M_k = M_{j+k}
    assert (m5.T @ m5 - torch.eye(16, dtype=torch.float64)).abs().max() < 1e-14


def test_odd_width_has_no_linear_map():
    with pytest.raises(ValueError, match="d_model: expected an even width"):
        run_experiment("sinusoidal-offset", d_model=5)
