"""``attnlab calc``: tables, JSON keys, help, and one-line errors for each topic."""

import json
import shlex

import pytest

from attnlab.cli.main import main

LLAMA_7B = shlex.split(
    "--layers 32 --d-model 4096 --heads 32 --vocab 32000 --d-ff 11008 --ffn swiglu "
    "--norm rmsnorm --no-bias --positions none --untied"
)


def run_json(capsys, *args) -> dict:
    assert main(["calc", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_table(capsys, *args) -> str:
    assert main(["calc", *args]) == 0
    return capsys.readouterr().out


def test_params_gpt2_small_by_default(capsys):
    result = run_json(capsys, "params")
    assert result["total_params"] == 124_439_808
    assert result["architecture"]["tie_embeddings"] is True
    assert set(result["breakdown"]) >= {"token_embedding", "ffn_gate", "unembedding"}
    table = run_table(capsys, "params")
    assert "124,439,808" in table and "rule_of_thumb_params" in table and "-0.73%" in table


def test_params_llama_7b(capsys):
    result = run_json(capsys, "params", *LLAMA_7B)
    assert result["total_params"] == 6_738_415_616
    assert abs(result["rule_relative_error"]) < 0.05
    assert result["breakdown"]["ffn_gate"] == 32 * 4096 * 11008


def test_params_ff_mult_and_kv_heads(capsys):
    result = run_json(capsys, "params", "--ff-mult", "2", "--kv-heads", "4")
    assert result["architecture"]["d_ff"] == 1536
    assert result["breakdown"]["key_projection"] == 12 * (768 * 256 + 256)


def test_flops_from_params_exercise_13_13(capsys):
    result = run_json(capsys, "flops", "--params", "13B", "--tokens", "2T")
    assert result["training_flops"] == 156 * 10**21
    assert result["flops_per_token"] == 26 * 10**9
    assert "1.56e+23" in run_table(capsys, "flops", "--params", "13e9", "--tokens", "2e12")


def test_flops_of_a_model(capsys):
    result = run_json(capsys, "flops", "--tokens", "1000", "--context", "128")
    assert result["training_flops"] == 3 * 1000 * result["flops_per_token"]
    assert result["flops_per_token"] == sum(result["breakdown"].values())
    assert set(result["breakdown"]) == {
        "qkv_projections", "attention_scores", "weighted_values", "output_projection", "ffn",
        "unembedding",
    }  # fmt: skip
    assert "attention_scores" in run_table(capsys, "flops")


def test_kv_cache_exercise_13_14(capsys):
    args = (
        "kv-cache",
        "--layers",
        "80",
        "--heads",
        "64",
        "--head-dim",
        "128",
        "--context",
        "32768",
    )
    result = run_json(capsys, *args, "--dtype", "fp16")
    assert result["bytes_per_token"] == 2_621_440
    assert result["total_bytes"] == 85_899_345_920
    assert set(result["layouts"]) == {"mha", "gqa", "mqa"}
    assert result["layouts"]["mqa"]["bytes_per_token"] == 2_621_440 // 64
    table = run_table(capsys, *args)
    assert "2.621 MB" in table and "80 GiB" in table and "mqa" in table


def test_kv_cache_batch_and_dtype(capsys):
    result = run_json(capsys, "kv-cache", "--batch", "4", "--dtype", "int8", "--kv-heads", "1")
    assert result["layout"] == "mqa"
    assert result["total_bytes"] == 2 * 12 * 1 * 64 * 1 * 1024 * 4


def test_chinchilla_exercise_13_18(capsys):
    result = run_json(capsys, "chinchilla", "--compute", "1e22")
    assert result["optimal_params"] == pytest.approx(9.129e9, rel=1e-3)
    assert result["optimal_tokens"] == pytest.approx(1.826e11, rel=1e-3)
    assert result["fit_optimal_params"] < result["optimal_params"]
    assert "fit_optimal_tokens" in run_table(capsys, "chinchilla", "--compute", "1e22")


def test_attention_ops_and_the_256_ratio(capsys):
    result = run_json(capsys, "attention-ops", "--seq-q", "2048", "--compare-length", "32768")
    assert result["length_ratio"]["matmul_flops_ratio"] == 256
    assert {"multiplications", "additions", "divisions", "exps"} <= set(result)
    small = run_json(
        capsys, "attention-ops", "--seq-q", "2", "--seq-k", "3", "--head-dim", "2", "--d-value", "3"
    )
    assert (small["multiplications"], small["additions"], small["divisions"], small["exps"]) == (
        30,
        22,
        12,
        6,
    )
    table = run_table(
        capsys, "attention-ops", "--seq-q", "16", "--heads", "4", "--compare-length", "64"
    )
    assert "head split" in table and "length ratio" in table and "multiplications_ratio" in table


def test_linear_ops_beside_softmax(capsys):
    result = run_json(capsys, "linear-ops", "--seq", "16384", "--map", "elu", "--heads", "8")
    # elu: r = d = 64, 8·2·T·64·(2·64 + 1) against 8·2·T²·128
    assert result["n_features"] == 64 and result["projection"] is False
    assert result["matmul_flops"] == 8 * 2 * 16384 * 64 * 129
    assert result["softmax_matmul_flops"] == 8 * 2 * 16384**2 * 128
    favor = run_json(
        capsys, "linear-ops", "--seq", "4096", "--map", "favor+", "--n-features", "128"
    )
    assert favor["n_features"] == 128 and favor["projection"] is True
    poly = run_json(capsys, "linear-ops", "--seq", "100", "--head-dim", "8", "--map", "poly2")
    assert poly["n_features"] == 1 + 8 + 36
    table = run_table(capsys, "linear-ops", "--seq", "1000", "--causal", "--chunk", "32")
    assert "flop_ratio" in table and "chunk_scores" in table


def test_decode_side_by_side(capsys):
    args = ("decode", "--batch", "8", "--context", "4096", "--d-model", "4096", "--heads", "32")
    result = run_json(capsys, *args)
    assert result["layout"] == "mha" and result["memory_big_o"] == "O(d² + b·d + b·n·d)"
    assert result["layouts"]["mqa"]["memory_big_o"] == "O(d² + b·d + b·n·d/h)"
    assert result["layouts"]["mqa"]["arithmetic_intensity"] > result["arithmetic_intensity"]
    table = run_table(capsys, *args)
    assert "arithmetic_intensity" in table and "O(n/d + 1/b)" in table


def test_help(capsys):
    for args in (["calc", "--help"], ["calc", "params", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for topic in (
        "params",
        "flops",
        "kv-cache",
        "chinchilla",
        "attention-ops",
        "decode",
        "linear-ops",
    ):
        assert topic in out
    assert "--ff-mult" in out and "--untied" in out
    assert main(["calc"]) == 0  # no topic: the list of topics
    assert "<topic>" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("params --layers 0", "--layers: expected a positive integer, got 0"),
        ("params --d-model -64", "--d-model: expected a positive integer, got -64"),
        ("params --heads 5", "--heads: expected a divisor of --d-model 768, got 5"),
        ("params --heads 8 --kv-heads 3", "--kv-heads: expected a divisor of --heads 8, got 3"),
        ("params --layers abc", "argument --layers: expected a whole number"),
        ("params --ffn relu", "argument --ffn: invalid choice"),
        ("kv-cache --dtype fp4", "--dtype: expected one of fp32, fp16, bf16, int8, fp8"),
        ("kv-cache --context 0", "--context: expected a positive integer, got 0"),
        ("kv-cache --heads 0", "--heads: expected a positive integer, got 0"),
        ("attention-ops --seq-q 4 --seq-k 0", "--seq-k: expected a positive integer, got 0"),
        ("flops --tokens 1.5", "argument --tokens: expected a whole number"),
        ("flops --params 1B --vocab 100", "--params: counts from N alone"),
        ("chinchilla --compute -1", "--compute: expected a finite number > 0, got -1.0"),
        ("chinchilla", "the following arguments are required: --compute"),
        ("attention-ops --seq-q 0", "--seq-q: expected a positive integer, got 0"),
        ("decode --heads 7", "--heads: expected a divisor of --d-model 768, got 7"),
        ("linear-ops --seq 0", "--seq: expected a positive integer, got 0"),
        ("linear-ops --seq 8 --chunk 0", "--chunk: expected a positive integer, got 0"),
        ("linear-ops --seq 8 --map favor+ --n-features 0", "--n-features: expected a positive"),
        ("linear-ops --seq 8 --map poly3", "argument --map: invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    try:
        status = main(["calc", *args.split()])
    except SystemExit as exit_info:  # argparse's own usage errors
        status = exit_info.code
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert "Traceback" not in captured.err
