"""softmax-saturation: unscaled scores saturate the softmax as d grows; scaled ones do not."""

import itertools
import math

import pytest

from attnlab.experiments import run_experiment

DIMS = (4, 64, 1024)
KEYS = 64


@pytest.fixture(scope="module")
def result():
    return run_experiment("softmax-saturation", seed=1, dims=DIMS, keys=KEYS, trials=50)


def column(result, scale, key):
    return [r[key] for r in result.rows if r["scale"] == scale]


def test_unscaled_softmax_turns_one_hot_with_vanishing_gradient(result):
    entropy = column(result, "1", "entropy")
    assert all(a > b for a, b in itertools.pairwise(entropy))  # falls with d
    assert entropy[-1] < 0.25 * entropy[0]
    assert column(result, "1", "max_weight")[-1] > 0.9
    grads = column(result, "1", "grad_norm")
    assert grads[-1] < 0.5 * grads[0]
    assert column(result, "1", "jacobian_norm")[-1] < 0.5 * column(result, "1", "jacobian_norm")[0]


def test_scaled_softmax_stays_flat(result):
    entropy = column(result, "1/√d", "entropy")
    assert max(entropy) - min(entropy) < 0.25
    assert all(math.log(KEYS) - 1 < h < math.log(KEYS) for h in entropy)
    assert all(w < 0.3 for w in column(result, "1/√d", "max_weight"))
    assert result.summary["scaled_grad_ratio_last_to_first"] == pytest.approx(1.0, abs=0.3)


def test_score_spread_is_sqrt_d_unscaled_and_one_scaled(result):
    for d, std in zip(DIMS, column(result, "1", "score_std"), strict=True):
        assert std == pytest.approx(math.sqrt(d), rel=0.15)
    assert all(s == pytest.approx(1.0, rel=0.15) for s in column(result, "1/√d", "score_std"))


def test_jacobian_matches_autograd(result):
    assert result.summary["jacobian_vs_autograd_max_error"] < 1e-12
