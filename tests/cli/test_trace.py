"""attnlab trace: shapes of a real MultiHeadAttention forward, as a table and as JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attnlab.cli.main import main

SEED_000_EX14 = ["mha", "--d-model", "512", "--heads", "8", "--seq", "16"]


def trace(capsys, *args) -> dict:
    assert main(["trace", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def shapes(result) -> dict[str, tuple]:
    return {step["name"]: tuple(step["shape"]) for step in result["steps"]}


def test_seed_000_exercise_14_table(capsys):
    assert main(["trace", *SEED_000_EX14]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for word in ("d_model=512", "heads=8", "head_dim=512/8=64", "kv_heads=8", "1,050,624"):
        assert word in header
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "(2, 8, 16, 64)" in rows["q split into heads"]
    assert "(batch, heads, seq, head_dim)" in rows["q split into heads"]
    assert "(2, 8, 16, 16)" in rows["weights"]
    assert "(2, 16, 512)" in rows["output = merged W_o"]


def test_json_config_and_steps(capsys):
    result = trace(capsys, *SEED_000_EX14)
    config = result["config"]
    assert (config["d_model"], config["n_heads"], config["head_dim"]) == (512, 8, 64)
    assert config["n_kv_heads"] == 8 and config["layout"] == "MHA"
    assert config["parameters"] == 4 * (512 * 512 + 512)  # four projections with biases
    steps = shapes(result)
    assert steps["q split into heads"] == (2, 8, 16, 64)
    assert steps["weights"] == (2, 8, 16, 16)
    assert result["steps"][0]["name"] == "x"
    assert all(len(step["axes"]) == len(step["shape"]) for step in result["steps"])


def test_grouped_query_keys(capsys):
    result = trace(capsys, *SEED_000_EX14, "--kv-heads", "2")
    assert result["config"]["layout"] == "GQA"
    assert shapes(result)["k split into heads"] == (2, 2, 16, 64)
    assert shapes(result)["weights"] == (2, 8, 16, 16)


def test_wider_values(capsys):
    steps = shapes(trace(capsys, *SEED_000_EX14, "--d-value", "1024"))
    assert steps["context per head"] == (2, 8, 16, 128)
    assert steps["heads merged"] == (2, 16, 1024)
    assert steps["output = merged W_o"] == (2, 16, 512)


def test_cross_attention(capsys):
    result = trace(capsys, *SEED_000_EX14, "--context-len", "10")
    steps = shapes(result)
    assert steps["k split into heads"] == (2, 8, 10, 64)
    assert steps["weights"] == (2, 8, 16, 10)
    weights = next(step for step in result["steps"] if step["name"] == "weights")
    assert weights["axes"] == ["batch", "heads", "seq_q", "seq_k"]


def test_causal_and_batch(capsys):
    result = trace(capsys, *SEED_000_EX14, "--causal", "--batch", "3", "--kv-heads", "1")
    assert result["config"]["causal"] and result["config"]["layout"] == "MQA"
    assert shapes(result)["k split into heads"] == (3, 1, 16, 64)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["mha", "--d-model", "512", "--heads", "7"], ["n_heads", "512", "7"]),
        (["mha", "--heads", "8", "--kv-heads", "3"], ["n_kv_heads"]),
        (["mha", "--heads", "8", "--d-value", "100"], ["d_value"]),
        (["mha", "--seq", "0"], ["--seq"]),
        (["mha", "--context-len", "-1"], ["--context-len"]),
        (["gpt"], ["module", "mha", "gpt"]),
    ],
)
def test_mistakes_get_one_line_and_exit_2(capsys, args, words):
    assert main(["trace", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnlab trace: error:")
    for word in words:
        assert word in err


def test_help():
    exe = Path(sys.executable).parent / "attnlab"
    out = subprocess.run([exe, "trace", "--help"], capture_output=True, text=True, check=True)
    assert "usage: attnlab trace" in out.stdout and "--kv-heads" in out.stdout
    listed = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True)
    assert "trace" in listed.stdout
