"""The README's commands and code run as written."""

import re
import shlex
import subprocess
from pathlib import Path

from attnlab.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def test_first_block_holds_exactly_the_two_commands():
    language, body = BLOCKS[0]
    lines = [line for line in body.splitlines() if line.strip()]
    assert language == "bash"
    assert lines == ["scripts/attnlab lab", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "scripts/test"


def test_main_job_runs_through_the_wrapper(tmp_path):
    """The README's first command, in its quick form (tests/lab checks the report itself)."""
    out = subprocess.run(
        ["bash", "scripts/attnlab", "lab", "--quick", "--quiet", "--out", str(tmp_path / "lab")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "lab" / "index.html").is_file()
    assert (tmp_path / "lab" / "report.json").is_file()
    verify = subprocess.run(
        ["bash", "scripts/attnlab", "verify", "--cases", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert verify.returncode == 0, verify.stderr
    assert "all checks passed" in verify.stdout


def test_attnlab_commands_in_the_readme(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # commands write under out/
    commands = [
        line
        for language, body in BLOCKS[1:]
        if language == "bash"
        for line in body.splitlines()
        if line.startswith("attnlab ")
    ]
    assert len(commands) >= 6
    for command in commands:
        assert main(shlex.split(command)[1:]) == 0, command
    out = capsys.readouterr().out
    assert "0.8600" in out and "2.7586" in out and "[1.0000  4.0000  3.0000]" in out
    assert out.count("ROMEO:") == 2  # each generate printed its continuation
    for run in ("shakespeare", "shakespeare-2proc", "draft"):
        assert (tmp_path / "out" / run / "checkpoint" / "checkpoint.json").exists()


def test_python_blocks_run():
    blocks = [body for language, body in BLOCKS if language == "python"]
    assert len(blocks) >= 2
    for body in blocks:
        exec(compile(body, "README.md", "exec"), {})
