"""Training: overfitting, exact resume, checkpoints, errors, and the CLI."""

import itertools
import json
import shutil

import pytest
import torch

from attnlab.cli.main import main
from attnlab.nn import GPTConfig
from attnlab.train import CheckpointError, TrainConfig, learning_rate, load_checkpoint, train
from helpers import max_abs

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return str(path)


def small(**overrides) -> GPTConfig:
    config = dict(context=16, n_layers=2, d_model=32, n_heads=4)
    config.update(overrides)
    return GPTConfig(**config)


def run_config(text_file, out, **overrides) -> TrainConfig:
    config = dict(
        text_file=text_file,
        batch_size=8,
        max_iters=40,
        eval_interval=10,
        eval_iters=2,
        warmup_iters=5,
        lr=3e-3,
        min_lr=3e-4,
        out=str(out),
        seed=0,
    )
    config.update(overrides)
    return TrainConfig(**config)


@pytest.mark.slow
def test_tiny_model_overfits_a_short_text(text_file, tmp_path):
    config = run_config(
        text_file, tmp_path / "run", max_iters=300, lr=1e-2, min_lr=1e-3, eval_interval=100
    )
    result = train(small(), config)
    assert result.losses[-1] < 0.1
    assert result.evaluations[-1]["iter"] == 300
    records = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["iter"] for r in records] == [0, 100, 200, 300]
    assert {"iter", "train_loss", "val_loss", "tokens_per_s"} <= set(records[-1])


def test_resume_continues_exactly(text_file, tmp_path):
    model = small(dropout=0.1)  # dropout makes the RNG state matter
    whole = train(model, run_config(text_file, tmp_path / "whole"))
    part = train(model, run_config(text_file, tmp_path / "part"), until=25)  # "crash" at 25
    assert part.losses == whole.losses[:25]
    rest = train(model, run_config(text_file, tmp_path / "part"), resume=True)
    # the last checkpoint was at iteration 20: iterations 20 … 39 are redone identically
    assert rest.losses == whole.losses[20:]
    metrics = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(m)["iter"] for m in metrics] == [0, 10, 20, 30, 40]
    resumed, uninterrupted = (
        json.loads(m)
        for m in (metrics[-1], (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()[-1])
    )
    assert (resumed["train_loss"], resumed["val_loss"]) == (
        uninterrupted["train_loss"],
        uninterrupted["val_loss"],
    )


def test_checkpoint_round_trip_and_corruption(text_file, tmp_path):
    train(small(), run_config(text_file, tmp_path / "run", max_iters=10))
    directory = tmp_path / "run" / "checkpoint"
    checkpoint = load_checkpoint(directory)
    assert checkpoint.train_state["iteration"] == 10
    ids = torch.tensor([checkpoint.tokenizer.encode("the lazy dog")])
    again = load_checkpoint(directory)
    assert max_abs(checkpoint.model(ids), again.model(ids)) == 0
    assert again.model.lm_head.weight is again.model.token_embedding.weight  # still tied

    broken = tmp_path / "broken"
    shutil.copytree(directory, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_checkpoint(broken)
    (broken / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(broken)
    with pytest.raises(CheckpointError, match=r"no checkpoint\.json"):
        load_checkpoint(tmp_path / "nowhere")


def test_interrupted_save_keeps_the_previous_checkpoint(text_file, tmp_path):
    train(small(), run_config(text_file, tmp_path / "run", max_iters=10))
    directory = tmp_path / "run" / "checkpoint"
    # a crash between the two renames leaves only the .old copy: it is still found
    directory.rename(directory.with_name("checkpoint.old"))
    assert load_checkpoint(directory).train_state["iteration"] == 10


def test_resume_with_a_different_model_is_refused(text_file, tmp_path):
    train(small(), run_config(text_file, tmp_path / "run", max_iters=10))
    with pytest.raises(CheckpointError, match="d_model: checkpoint 32 vs requested 64"):
        train(small(d_model=64), run_config(text_file, tmp_path / "run"), resume=True)


def test_text_too_short_for_the_context(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abc" * 20)
    with pytest.raises(ValueError, match="too short for context 16"):
        train(small(), run_config(str(short), tmp_path / "run"))
    empty = tmp_path / "empty.txt"
    empty.write_text("  ")
    with pytest.raises(ValueError, match="empty"):
        train(small(), run_config(str(empty), tmp_path / "run"))


def test_schedule_warms_up_then_decays_to_min_lr():
    config = TrainConfig(max_iters=100, warmup_iters=10, lr=1.0, min_lr=0.1)
    rates = [learning_rate(i, config) for i in range(101)]
    assert rates[0] < rates[5] < rates[9] < rates[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[100] == pytest.approx(0.1)


def test_cli_train_and_generate(text_file, tmp_path, capsys):
    out = tmp_path / "cli"
    args = [
        "train",
        "--text-file",
        text_file,
        "--context",
        "16",
        "--layers",
        "1",
        "--d-model",
        "32",
        "--max-iters",
        "20",
        "--eval-interval",
        "10",
        "--eval-iters",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "val loss" in capsys.readouterr().out
    checkpoint = str(out / "checkpoint")
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                checkpoint,
                "--prompt",
                "the ",
                "--max-new-tokens",
                "10",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    first = capsys.readouterr().out
    assert first.startswith("the ") and len(first) == len("the ") + 10 + 1
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                checkpoint,
                "--prompt",
                "the ",
                "--max-new-tokens",
                "10",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out == first  # same seed, same text
    greedy = ["generate", "--checkpoint", checkpoint, "--prompt", "the ", "--max-new-tokens", "8"]
    assert main([*greedy, "--temperature", "0"]) == 0
    plain = capsys.readouterr().out
    # the model as its own draft: every guess accepted, the same greedy text
    assert main([*greedy, "--temperature", "0", "--draft", checkpoint, "--speculate", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out == plain
    assert "2 target passes for 8 tokens" in captured.err and "(100%)" in captured.err
    assert main([*greedy, "--draft", checkpoint, "--top-k", "3"]) == 2
    assert "--draft: speculative decoding samples the full distribution" in capsys.readouterr().err
    assert (
        main(["generate", "--checkpoint", checkpoint, "--prompt", "Z", "--max-new-tokens", "5"])
        == 2
    )
    assert "'Z' is not in" in capsys.readouterr().err
    assert main(["train", "--heads", "3", "--out", str(tmp_path / "x")]) == 2
    assert "n_heads" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "nowhere")]) == 2
