"""The experiment registry: every experiment is one function, runnable by name.

An experiment module defines ``run(*, seed, progress, **params)`` with typed keyword
parameters and defaults, and registers it with :func:`register`. The registry reads the
parameters from the signature (so the command line can offer one flag per parameter and
``--set key=value``), checks and converts the values a caller passes, and completes the
:class:`ExperimentResult` the function returns with the experiment's name, title, seed question
and the parameters it ran with. Randomness comes from ``seed`` through an explicit generator;
nothing seeds the global random state.
"""

from __future__ import annotations

import functools
import inspect
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Names the registry itself uses; an experiment's own parameters may not take them.
RESERVED = ("seed", "progress", "json", "plot", "set", "list")
KINDS = {
    int: "int",
    float: "float",
    bool: "bool",
    str: "str",
    tuple[int, ...]: "ints",
    tuple[float, ...]: "floats",
}
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")

Progress = Callable[[str], None]


@dataclass
class ExperimentResult:
    """A table of computed results with named summary figures and, optionally, a figure.

    ``rows`` are dicts keyed by ``columns``; ``summary`` holds the figures computed from them
    (a fitted slope, a largest error); ``details`` holds whatever does not fit a table (the
    input of a counterexample). ``figure(fig, result)`` draws onto a matplotlib Figure.
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    title: str = ""
    question: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    figure: Callable[[Any, ExperimentResult], None] | None = field(
        default=None, repr=False, compare=False
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite floats (which JSON cannot hold) become ``None``."""
        return _plain(
            {
                "name": self.name,
                "title": self.title,
                "question": self.question,
                "params": self.params,
                "columns": self.columns,
                "rows": self.rows,
                "summary": self.summary,
                "details": self.details,
            }
        )

    def plot(self, path: str | Path, *, dpi: int = 120) -> Path:
        """Draw the figure and write it as a PNG with matplotlib's Agg canvas.

        A bare ``Figure`` on an Agg canvas, not pyplot: no global figure state and no display
        backend, so it works the same in a test, a script and a headless server.
        """
        if self.figure is None:
            raise ValueError(f"plot: experiment {self.name!r} has no figure")
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"plot: expected a path ending in .png, got {str(path)!r}")
        if not path.parent.is_dir():
            raise ValueError(f"plot: directory {str(path.parent)!r} does not exist")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        FigureCanvasAgg(fig)
        self.figure(fig, self)
        fig.suptitle(f"{self.name}: {self.title}", fontsize=10)
        fig.savefig(path, format="png", dpi=dpi)
        return path


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class Param:
    """One typed parameter of an experiment: ``kind`` is int, float, bool, str, ints or floats."""

    name: str
    kind: str
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def describe_default(self) -> str:
        if isinstance(self.default, tuple):
            return ",".join(str(x) for x in self.default)
        return str(self.default)

    def parse(self, text: str):
        """The value written on a command line: ``4,16,64`` for ints, ``true`` for a bool."""
        try:
            if self.kind == "bool":
                if text.strip().lower() not in TRUE + FALSE:
                    raise ValueError
                return text.strip().lower() in TRUE
            if self.kind in ("ints", "floats"):
                item = int if self.kind == "ints" else float
                return tuple(item(part) for part in text.split(",") if part.strip())
            return {"int": int, "float": float, "str": str}[self.kind](text)
        except ValueError:
            example = {"int": "64", "float": "0.5", "bool": "true or false"}.get(self.kind)
            example = example or ("4,16,64" if self.kind == "ints" else "1,0.5,0.1")
            raise ValueError(
                f"{self.name}: expected {self.kind} such as {example}, got {text!r}"
            ) from None

    def coerce(self, value):
        """A value passed from Python: lists become tuples, ints are accepted for floats."""
        numbers = (int, float) if self.kind in ("float", "floats") else (int,)
        if self.kind in ("ints", "floats"):
            items = tuple(value) if isinstance(value, list | tuple) else None
            if not items or any(isinstance(x, bool) or not isinstance(x, numbers) for x in items):
                raise TypeError(
                    f"{self.name}: expected a non-empty sequence of "
                    f"{'numbers' if self.kind == 'floats' else 'whole numbers'}, got {value!r}"
                )
            return tuple(float(x) for x in items) if self.kind == "floats" else items
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{self.name}: expected a bool, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise TypeError(f"{self.name}: expected a string, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, numbers):
            raise TypeError(f"{self.name}: expected {self.kind}, got {value!r}")
        return float(value) if self.kind == "float" else value


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its identity, parameters and the function that runs it."""

    name: str
    title: str
    question: str
    description: str
    params: tuple[Param, ...]
    run: Callable[..., ExperimentResult] = field(repr=False)

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        known = ", ".join(p.name for p in self.params)
        raise ValueError(f"{name}: not a parameter of {self.name}; expected one of {known}")


EXPERIMENTS: dict[str, Experiment] = {}


def register(
    name: str,
    *,
    title: str,
    question: str,
    description: str,
    help: dict[str, str],
    figure: Callable[[Any, ExperimentResult], None] | None = None,
):
    """Register ``run`` under ``name``; returns the checked, completing wrapper.

    The wrapper takes ``seed`` (a non-negative int), ``progress`` (called with a short label
    as the run advances) and the parameters; it rejects unknown names and wrongly typed values
    with a message that names the parameter. Mistakes in the declaration itself (a parameter
    without a default, help or supported type) fail at import time.
    """

    def decorate(fn):
        known = EXPERIMENTS.get(name)
        where = (fn.__module__, fn.__qualname__)  # the same function again is a module reload
        if known is not None and (known.run.__module__, known.run.__qualname__) != where:
            raise ValueError(f"{name}: an experiment of that name is already registered")
        hints = typing.get_type_hints(fn)
        params = []
        for p in inspect.signature(fn).parameters.values():
            if p.name in ("seed", "progress"):
                continue
            if p.name in RESERVED or p.kind is not p.KEYWORD_ONLY or p.default is p.empty:
                raise TypeError(
                    f"{name}: parameter {p.name!r} must be keyword-only with a default, and not "
                    f"one of {RESERVED}"
                )
            if hints.get(p.name) not in KINDS or p.name not in help:
                raise TypeError(f"{name}: parameter {p.name!r} needs a supported type and help")
            params.append(Param(p.name, KINDS[hints[p.name]], p.default, help[p.name]))
        spec = Experiment(name, title, question, description, tuple(params), run=None)

        @functools.wraps(fn)
        def run(*, seed: int = 0, progress: Progress | None = None, **given) -> ExperimentResult:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
            values = {p.name: p.default for p in spec.params}
            for key, value in given.items():
                values[key] = spec.param(key).coerce(value)
            result = fn(seed=seed, progress=progress or (lambda label: None), **values)
            return replace(
                result,
                name=name,
                title=title,
                question=question,
                params={"seed": seed, **values},
                figure=figure,
            )

        EXPERIMENTS[name] = replace(spec, run=run)
        return run

    return decorate


def get_experiment(name: str) -> Experiment:
    """The experiment registered as ``name``; a ``ValueError`` lists the choices otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def list_experiments() -> list[Experiment]:
    """Every registered experiment, in registration order."""
    return list(EXPERIMENTS.values())


def run_experiment(
    name: str, *, seed: int = 0, progress: Progress | None = None, **params
) -> ExperimentResult:
    """Run the experiment ``name`` with ``seed`` and parameters (defaults for the rest)."""
    return get_experiment(name).run(seed=seed, progress=progress, **params)


def check_positive_ints(name: str, values: tuple[int, ...], *, minimum: int = 1) -> None:
    """For experiments: every value ≥ ``minimum``, else a ``ValueError`` naming the parameter."""
    if any(v < minimum for v in values):
        raise ValueError(f"{name}: expected whole numbers ≥ {minimum}, got {values}")


def check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")


def check_at_least(name: str, value: float, minimum: float) -> None:
    if not value >= minimum:
        raise ValueError(f"{name}: expected a number ≥ {minimum}, got {value!r}")
