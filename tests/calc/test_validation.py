"""Bad inputs fail early with the argument's name and the value; calc stays pure arithmetic."""

import subprocess
import sys

import pytest

from attnlab import calc
from attnlab.calc import Architecture


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Architecture(n_layers=0), r"n_layers: expected a positive integer, got 0"),
        (lambda: Architecture(d_model=-8), r"d_model: expected a positive integer, got -8"),
        (lambda: Architecture(n_heads=5), r"n_heads: expected a divisor of d_model = 768, got 5"),
        (
            lambda: Architecture(n_kv_heads=5),
            r"n_kv_heads: expected a divisor of n_heads = 12, got 5",
        ),
        (lambda: Architecture(d_ff=10, ff_mult=2.0), r"ff_mult: give either d_ff or ff_mult"),
        (lambda: Architecture(ff_mult=-1.0), r"ff_mult: expected a finite number > 0, got -1.0"),
        (lambda: Architecture(ffn="relu"), r"ffn: expected one of gelu, swiglu, got 'relu'"),
        (lambda: Architecture(norm_kind="batch"), r"norm_kind: expected one of"),
        (lambda: Architecture(positions="alibi2"), r"positions: expected one of"),
        (lambda: Architecture(vocab_size=2.5), r"vocab_size: expected a positive integer, got 2.5"),
        (
            lambda: calc.kv_cache(2, 8, 64, 3),
            r"n_kv_heads: expected a divisor of n_heads = 8, got 3",
        ),
        (lambda: calc.kv_cache(2, 8, 64, dtype="fp4"), r"dtype: expected one of .*got 'fp4'"),
        (
            lambda: calc.kv_cache(2, 8, 64, context=0),
            r"context: expected a positive integer, got 0",
        ),
        (lambda: calc.chinchilla(0), r"compute: expected a finite number > 0, got 0"),
        (lambda: calc.chinchilla(float("nan")), r"compute: expected a finite number > 0"),
        (lambda: calc.attention_ops(0, 4, 8), r"n_q: expected a positive integer, got 0"),
        (lambda: calc.attention_ops(4, 4, 8, -1), r"d_v: expected a positive integer, got -1"),
        (lambda: calc.training_flops(-5, 10), r"params: expected a positive integer, got -5"),
        (lambda: calc.flops(tokens=0), r"tokens: expected a positive integer, got 0"),
        (
            lambda: calc.decode_step(1, 10, 64, 3),
            r"n_heads: expected a divisor of d_model = 64, got 3",
        ),
        (lambda: calc.attention_params(64, 8, 3), r"n_kv_heads: expected a divisor of n_heads = 8"),
    ],
)
def test_errors_name_the_argument_and_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="bias: expected True or False, got 1"):
        Architecture(bias=1)
    with pytest.raises(TypeError, match="compute: expected a number, got str"):
        calc.chinchilla("1e22")
    with pytest.raises(TypeError, match="count_params: pass an Architecture or keyword"):
        calc.count_params(Architecture(), n_layers=2)


def test_figures_are_frozen():
    count = calc.count_params()
    with pytest.raises(AttributeError):
        count.total_params = 1


def test_calc_imports_no_torch_and_no_higher_layer():
    code = (
        "import sys, attnlab.calc; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy') "
        "or m.startswith(('attnlab.nn', 'attnlab.train', 'attnlab.inspect', 'attnlab.viz', "
        "'attnlab.experiments', 'attnlab.cli', 'attnlab.functional'))]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
