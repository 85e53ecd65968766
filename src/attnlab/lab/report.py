"""The lab run: train (or reuse) the GPT, inspect, measure, and write report.json + index.html.

Every number the page shows, the analysis included, is read from the one dict that is written
to ``report.json``; the page is rendered from that dict after it is complete.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from attnlab import __version__
from attnlab.bench import format_machine_line, load_average, machine_line
from attnlab.data import load_text
from attnlab.inspect import DEFAULT_THRESHOLDS

from . import gpt_heads, memory, page, pretrained, speed, theory
from .analysis import analysis, plain_text
from .config import LabConfig
from .figures import Figures, loss_figure
from .training import MODEL_DIR, model_config, samples, train_or_reuse, training_summary

REPORT_JSON, INDEX_HTML = "report.json", "index.html"


class Display:
    """The progress display on stderr: a bar for training, a spinner per later stage."""

    def __init__(self, console: Console | None, quiet: bool = False):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=quiet,
        )
        self.timings: dict[str, float] = {}
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            self.progress.console.print(message, markup=False, highlight=False)

    @contextmanager
    def stage(self, name: str, total: int | None = None):
        """A stage of the run: timed, shown while it runs, its time kept for the report."""
        task = self.progress.add_task(name, total=total, detail="")

        def update(detail: str = "", completed: int | None = None) -> None:
            self.progress.update(task, detail=detail, completed=completed)

        started = time.perf_counter()
        try:
            yield update
        finally:
            self.timings[name] = time.perf_counter() - started
            self.progress.update(task, total=1, completed=1)
            self.progress.stop_task(task)


def _optional(module: str, what: str, measure: Callable[[], dict]) -> dict:
    """A measurement that needs a kernel others may not have finished: left out with a
    sentence when the module cannot be imported or the measurement fails."""
    if not speed.available(module):
        return {"available": False, "reason": f"{what} is not available here ({module} cannot "
                "be imported), so this measurement is left out."}  # fmt: skip
    try:
        return measure()
    except Exception as error:  # a half-finished kernel must not cost the whole report
        reason = f"{what} failed here ({type(error).__name__}), so this measurement is left out."
        return {"available": False, "reason": reason, "error": str(error)}


def run_lab(
    config: LabConfig,
    out: str | os.PathLike,
    *,
    retrain: bool = False,
    console: Console | None = None,
    quiet: bool = False,
    command: str = "attnlab lab",
) -> dict:
    """Run the whole lab into ``out`` and return the report dict (also in out/report.json)."""
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    display = Display(console, quiet)
    report: dict = {
        "attnlab": __version__,
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": {
            "quick": config.quick,
            "steps": config.steps,
            "seed": config.seed,
            "text": config.text_file or "Shakespeare's plays (the default corpus)",
            "command": command,
            "config": config.to_dict(),
        },
        "thresholds": dict(DEFAULT_THRESHOLDS),
        "load_average_before": list(load_average()),
    }
    views: dict[str, str] = {}
    if config.threads is None:
        # How many threads this machine gives us now: decided by timing, not assumed.
        sizes = model_config(config, vocab_size=len(set(load_text(config.text_file))))
        report["threads"] = speed.fastest_threads(sizes, config.batch_size)
    else:
        report["threads"] = {"chosen": config.threads, "default": torch.get_num_threads()}
    with speed.torch_threads(report["threads"]["chosen"]), display.progress:
        with display.stage("train", total=config.steps) as update:

            def on_iteration(it, loss, lr):
                update(f"step {it + 1}/{config.steps}  loss {loss:.3f}", completed=it + 1)

            def on_evaluation(record):
                display.say(
                    f"step {record['iter']:>6}  train {record['train_loss']:.4f}  "
                    f"val {record['val_loss']:.4f}"
                )

            trained = train_or_reuse(
                config, out, retrain=retrain, on_iteration=on_iteration,
                on_evaluation=on_evaluation,
            )  # fmt: skip
            display.say(trained.message)
        with display.stage("samples"):
            report["model"] = {
                "layers": config.layers,
                "heads": config.heads,
                "d_model": config.d_model,
                "context": config.context,
            }
            report["training"] = t = training_summary(trained, config)
            report["samples"] = samples(trained, config)
            path = loss_figure(t["evaluations"], t["uniform_loss"], figures.path("loss"))
            report["figures"] = {"loss": figures.relative(path.stem)}
        with display.stage("heads of the lab GPT"):
            report["heads"], views = gpt_heads.analyse(trained, config, figures)
        with display.stage("pretrained models") as update:
            report["pretrained"] = pretrained.analyse(config, figures, update)
        with display.stage("theory experiments") as update:
            report["theory"] = theory.run(config, figures, update)
        with display.stage("KV-cache decoding"):
            report["decoding"] = speed.decoding(
                trained.model, trained.tokenizer, report["heads"]["inputs"]["sentence"], config
            )
        with display.stage("flash memory"):
            report["flash"] = _optional(
                "attnlab.functional.flash",
                "The tiled flash attention",
                lambda: memory.flash_memory(config, figures),
            )
        with display.stage("linear attention"):
            report["linear"] = _optional(
                "attnlab.functional.linear",
                "Linear attention",
                lambda: speed.linear_crossover(config, figures),
            )
        with display.stage("report"):
            report["machine"] = format_machine_line(machine_line(matmul_n=512, copy_mib=64))
            report["load_average_after"] = list(load_average())
            report["files"] = {
                "checkpoint": str(out / MODEL_DIR / "checkpoint"),
                "report": str(out / REPORT_JSON),
                "page": str(out / INDEX_HTML),
            }
            report["timings"] = dict(display.timings)
            report["timings"]["total"] = time.perf_counter() - started
            # The analysis is generated from the finished dict; its text goes in too, for
            # readers of report.json (the page prints the same sentences with the values marked).
            report["analysis"] = {
                heading: [plain_text(s, report) for s in sentences if s]
                for heading, sentences in analysis(report)
            }
            html = page.render(report, views)
            (out / REPORT_JSON).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
            (out / INDEX_HTML).write_text(html, encoding="utf-8")
    return report


def command_line(argv: list[str] | None) -> str:
    return "attnlab lab" + ("" if not argv else " " + shlex.join(argv[1:]))
