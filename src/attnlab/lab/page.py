"""index.html of the lab report: one self-contained page built from the report dict.

Figures are PNG files next to the page, referred to relatively, so the page opens from disk.
Every piece of text that comes from a model, a corpus or the command line goes through
:func:`html.escape`; the head views arrive as fragments that escape their own tokens. A
Content-Security-Policy admits exactly the page's inline style and script blocks (by hash) and
images from the page's own folder, so nothing is fetched from the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from . import sections
from .analysis import Value, analysis, lookup
from .sections import e

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 20px;
  color: #1f2328; }
h1 { margin-top: 28px; } h2 { border-bottom: 1px solid #d0d7de; margin-top: 40px; }
nav a { margin-right: 14px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 18px; }
figure { margin: 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption, .note { color: #57606a; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
pre.sample { background: #f6f8fa; padding: 10px; white-space: pre-wrap; max-height: 320px;
  overflow: auto; }
.analysis p { margin: 6px 0; }
.value { font-weight: 600; font-variant-numeric: tabular-nums; }
.missing { background: #fff8c5; padding: 8px 12px; border-radius: 6px; }
details { margin: 12px 0; }
"""


def value_span(report: dict, part: Value) -> str:
    """A number of the analysis: its text, and where in report.json it comes from."""
    value = lookup(report, part.key)
    return (
        f'<span class="value" data-key="{e(part.key)}" data-format="{e(part.spec)}" '
        f'data-value="{e(json.dumps(value))}">{e(format(value, part.spec))}</span>'
    )


def analysis_html(report: dict) -> str:
    blocks = []
    for heading, sentences in analysis(report):
        paragraphs, current = [], []
        for parts in sentences:
            if not parts:  # an empty sentence starts a new paragraph
                paragraphs.append(current)
                current = []
                continue
            current.append(
                "".join(value_span(report, p) if isinstance(p, Value) else e(p) for p in parts)
            )
        paragraphs.append(current)
        text = "\n".join(f"<p>{' '.join(p)}</p>" for p in paragraphs if p)
        blocks.append(f"<h3>{e(heading)}</h3>\n{text}")
    return '<section id="analysis" class="analysis">\n<h2>Analysis</h2>\n' + (
        "\n".join(blocks) + "\n</section>"
    )


def _hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
    return f"'sha256-{digest}'"


def _policy(body: str) -> str:
    """Allow exactly the inline blocks of ``body`` (scripts with no ``type``; JSON data blocks
    are not executed and need no entry) and images of the page's own folder."""
    scripts = sorted({_hash(s) for s in re.findall(r"<script>(.*?)</script>", body, re.S)})
    styles = sorted({_hash(s) for s in re.findall(r"<style>(.*?)</style>", body, re.S)})
    return (
        f"default-src 'none'; img-src 'self' file: data:; script-src {' '.join(scripts)}; "
        f"style-src {' '.join(styles)}; base-uri 'none'; form-action 'none'"
    )


def render(report: dict, views: dict[str, str]) -> str:
    """The whole page. ``views`` holds the head-view fragments (trained and random model)."""
    parts = [
        sections.header(report),
        analysis_html(report),
        sections.training(report),
        sections.gpt_heads(report, views),
        sections.pretrained(report),
        sections.theory(report),
        sections.measurements(report),
        sections.footer(report),
    ]
    style = f"<style>{STYLE}</style>"
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_policy(style + body)}">\n'
        f"<title>attnlab lab report</title>\n{style}\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
