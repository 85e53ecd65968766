"""Named figures: the shared shape of every result in :mod:`attnlab.calc`.

Each calculator returns a frozen dataclass. Its fields are the headline figures; the metadata of
each field says how it is computed (``formula``) and what it counts (``unit``), so the command
line can print a readable table from the object alone. ``parts`` holds the per-part breakdown.
``to_dict()`` gives plain JSON-ready values under snake_case keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, is_dataclass

UNITS = ("count", "flops", "bytes", "ratio", "fraction", "loss", "text", "flops_per_byte")


def figure(formula: str, unit: str = "count"):
    """A dataclass field that carries its formula and unit for tables and docs."""
    return field(metadata={"formula": formula, "unit": unit})


@dataclass(frozen=True)
class Part:
    """One line of a breakdown: a snake_case ``name``, its ``value`` and the ``formula``."""

    name: str
    value: int | float
    formula: str
    unit: str = "count"


class Figures:
    """Mixin for result dataclasses: ``to_dict()`` and a uniform view of the fields."""

    def to_dict(self) -> dict:
        """Every field under its own name; ``parts`` as ``breakdown``: ``{name: value}``."""
        return {name: plain(value) for name, value in self._items()}

    def _items(self):
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.name == "parts":
                yield "breakdown", {part.name: part.value for part in value}
            else:
                yield f.name, value

    def rows(self) -> list[tuple[str, int | float | str, str, str]]:
        """``(name, value, formula, unit)`` for each headline figure that has a formula."""
        out = []
        for f in fields(self):  # type: ignore[arg-type]
            if "formula" in f.metadata:
                out.append(
                    (f.name, getattr(self, f.name), f.metadata["formula"], f.metadata["unit"])
                )
        return out


def plain(value):
    """Figures, dataclasses, tuples and dicts → JSON-ready dicts, lists and numbers."""
    if isinstance(value, Figures):
        return value.to_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def _scaled(value: float, units: tuple[str, ...], base: int) -> str:
    for unit in units:
        if abs(value) < base:
            return f"{value:.4g} {unit}".rstrip()
        value /= base
    return f"{value:.4g} {units[-1]}"


def format_figure(value, unit: str, *, compact: bool = False) -> str:
    """A figure as a person reads it: ``124,439,808 (124.4 M)``, ``1.56e+23``, ``-0.73%``,
    ``2,621,440 B (2.621 MB, 2.5 MiB)`` (``compact``: ``2.621 MB``)."""
    if isinstance(value, str) or value is None:
        return str(value)
    if unit == "bytes":
        short = _scaled(value, ("B", "kB", "MB", "GB", "TB", "PB"), 1000)
        if compact or value < 1000:
            return short if compact else f"{value:,} B"
        binary = _scaled(value, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 1024)
        return f"{value:,} B ({short}, {binary})"
    if unit == "fraction":
        return f"{value:.2%}"
    if unit == "ratio":
        return f"{value:.6g}"
    if unit == "loss":
        return f"{value:.4f}"
    if unit == "flops_per_byte":
        return f"{value:.2f} FLOP/B"
    if unit == "flops":
        return f"{value:.4g}" if abs(value) >= 1e6 else f"{value:,}"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:.4g}"
    else:
        text = f"{int(value):,}"
    if abs(value) < 1e6:
        return text
    return f"{text} ({_scaled(value, ('', 'K', 'M', 'B', 'T', 'P'), 1000)})"


# ── boundary checks: each error names the argument, what was expected and what was given ──


def check_positive_int(name: str, value) -> int:
    """A count: an ``int`` ≥ 1 (a float with an integral value, such as ``13e9``, is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def check_positive_number(name: str, value) -> float:
    """A finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


def check_divides(name: str, value: int, of_name: str, of_value: int) -> None:
    """``value`` (named ``name``) must divide ``of_value`` exactly."""
    if of_value % value:
        raise ValueError(f"{name}: expected a divisor of {of_name} = {of_value}, got {value}")
