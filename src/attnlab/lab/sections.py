"""The sections of index.html, each drawn from the report dict (escaped text, relative images)."""

from __future__ import annotations

import html

from .scoring import TABLE_SCORES


def e(text) -> str:
    return html.escape(str(text), quote=True)


def number(value, spec: str = ".2f") -> str:
    return "—" if value is None else e(format(value, spec))


def image(path: str, caption: str) -> str:
    return (
        f'<figure><img src="{e(path)}" alt="{e(caption)}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A table whose cells are already HTML (escaped by the caller)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def grid(*items: str) -> str:
    return '<div class="grid">' + "".join(f"<div>{item}</div>" for item in items) + "</div>"


def header(report: dict) -> str:
    s, t = report["settings"], report["training"]
    mode = "quick run (tiny model, few steps)" if s["quick"] else "default run"
    links = [
        ("analysis", "Analysis"),
        ("training", "Training"),
        ("heads", "The lab GPT's heads"),
        ("pretrained", "Pretrained heads"),
        ("theory", "Theory"),
        ("measurements", "Measurements"),
        ("files", "Files and timings"),
    ]
    nav = "".join(f'<a href="#{a}">{e(b)}</a>' for a, b in links)
    return (
        "<h1>attnlab lab report</h1>\n"
        f'<p class="note">{e(mode)} · attnlab {e(report["attnlab"])} · {e(report["created"])} · '
        f"{number(report['timings']['total'], '.0f')} s in all · {e(t['message'])}</p>\n"
        f"<nav>{nav}</nav>"
    )


def training(report: dict) -> str:
    t, samples = report["training"], report["samples"]
    rows = [
        [
            number(r["iter"], ",d"),
            number(r["train_loss"], ".4f"),
            number(r["val_loss"], ".4f"),
            number(r["tokens_per_s"], ",.0f"),
        ]
        for r in t["evaluations"]
    ]
    m = report["model"]
    return (
        '<section id="training">\n<h2>Training</h2>\n'
        f"<p>A character-level GPT ({m['layers']} layers × {m['heads']} heads, d_model "
        f"{m['d_model']}, context {m['context']}, {t['parameters']:,} parameters) trained on "
        f"{e(report['settings']['text'])} for {t['steps']:,} steps of {t['batch_size']} "
        "sequences (AdamW, warmup then cosine decay). The checkpoint is in "
        f"<code>{e(report['files']['checkpoint'])}</code>.</p>\n"
        + grid(
            image(report["figures"]["loss"], "training and validation loss"),
            table(["step", "training loss", "validation loss", "tokens/s"], rows),
        )
        + f"\n<h3>Samples</h3>\n<p>Prompt <code>{e(repr(samples['prompt']))}</code>, "
        f"temperature {samples['temperature']}, seed {samples['seed']}, the same for both.</p>\n"
        + grid(
            f"<h4>before training (random initialisation)</h4>"
            f'<pre class="sample">{e(samples["prompt"] + samples["before"])}</pre>',
            f"<h4>after training</h4>"
            f'<pre class="sample">{e(samples["prompt"] + samples["after"])}</pre>',
        )
        + "\n</section>"
    )


def score_table(data: dict) -> str:
    rows = [
        [f"L{r['layer']}H{r['head']}", *(number(r[k]) for k in TABLE_SCORES)] for r in data["table"]
    ]
    return table(["head", *(k.replace("_", "-") for k in TABLE_SCORES)], rows)


def specialists(data: dict) -> str:
    if not data["specialists"]:
        return "<p>No head reaches a specialist threshold.</p>"
    items = []
    for kind, found in data["specialists"].items():
        heads = ", ".join(f"{e(h['label'])} {number(h['score'])}" for h in found["heads"])
        more = (
            f" (and {found['count'] - len(found['heads'])} more)"
            if found["count"] > len(found["heads"])
            else ""
        )
        items.append(
            f"<li><b>{e(kind.replace('_', '-'))}</b> (≥ {number(found['threshold'], '.1f')}): "
            f"{found['count']}: {heads}{e(more)}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def gpt_heads(report: dict, views: dict[str, str]) -> str:
    h = report["heads"]
    inputs, trained, random = h["inputs"], h["trained"], h["random"]
    figs = {name: h[name]["figures"] for name in ("trained", "random")}
    return (
        '<section id="heads">\n<h2>The lab GPT\'s heads: trained vs random initialisation</h2>\n'
        f"<p>Both networks read the sentence <q>{e(inputs['sentence'])}</q> "
        f"({inputs['sentence_tokens']} characters) and {inputs['repeated_length']} random "
        "characters repeated twice. Induction and duplicate-token scores come from the repeats, "
        "every other score from the sentence. The heads drawn are the trained model's best "
        "previous-token and induction heads; the random network is drawn at the same place.</p>\n"
        + grid(
            image(figs["trained"]["previous_token_head"], "trained: best previous-token head"),
            image(figs["random"]["previous_token_head"], "random init: the same head"),
            image(figs["trained"]["induction_head"], "trained: best induction head, repeats"),
            image(figs["random"]["induction_head"], "random init: the same head, repeats"),
        )
        + "\n<h3>Scores of every head</h3>\n"
        + grid(
            image(figs["trained"]["scores_previous_token"], "trained: previous-token scores"),
            image(figs["trained"]["scores_induction"], "trained: induction scores"),
            image(figs["random"]["scores_previous_token"], "random: previous-token scores"),
            image(figs["random"]["scores_induction"], "random: induction scores"),
        )
        + "\n<h3>Interactive head view (trained model, the sentence)</h3>\n"
        '<p class="note">Click a layer and a head; hover a query to see where it looks.</p>\n'
        + views["trained"]
        + "\n<details><summary>The same view for the randomly initialised model</summary>\n"
        + views["random"]
        + "\n</details>\n<h3>Specialists and score tables</h3>\n"
        + grid(
            "<h4>trained</h4>" + specialists(trained) + score_table(trained),
            "<h4>random initialisation</h4>" + specialists(random) + score_table(random),
        )
        + "\n</section>"
    )


def _bank(data: dict) -> str:
    b = data["bank"]

    def top(rows):
        return ", ".join(f"“{e(r['token'])}” {number(r['weight'])}" for r in rows)

    return (
        image(data["figures"]["bank"], f"“{b['word']}” in two contexts, layer {b['layer']}")
        + f"<p>River: <q>{e(b['river'])}</q>; loan: <q>{e(b['loan'])}</q>. Cosine similarity "
        f"of the two contextual vectors: <b>{number(b['cosine'], '.3f')}</b>; of the river "
        f"sentence and another of the same sense (<q>{e(b['river_2'])}</q>): "
        f"<b>{number(b['cosine_same_sense'], '.3f')}</b>. Most attended in "
        f"layer {b['layer']} (mean over heads; first token, punctuation and the word itself "
        f"left out): river {top(b['river_top'])}; loan "
        f"{top(b['loan_top'])}.</p>"
    )


def pretrained(report: dict) -> str:
    p = report["pretrained"]
    missing = [
        f'<p class="missing">{e(name)} is not installed ({e(info["description"])}); '
        f"install it with <code>{e(info['install'])}</code> to add its heads here.</p>"
        for name, info in p["available"].items()
        if not info["installed"]
    ]
    columns = []
    for name, data in p["models"].items():
        second = data["second_kind"].replace("_", "-")
        figures = data["figures"]
        column = (
            f'<h3>{e(name)}</h3><p class="note">{e(data["description"])}</p>'
            + (image(figures["previous_token_head"], f"{name}: best previous-token head"))
            + (
                image(figures[f"{data['second_kind']}_head"], f"{name}: best {second} head")
                if f"{data['second_kind']}_head" in figures
                else ""
            )
            + "<h4>specialists</h4>"
            + specialists(data)
            + "<h4>“bank” in two contexts</h4>"
            + _bank(data)
        )
        columns.append(column)
    return (
        '<section id="pretrained">\n<h2>Pretrained heads: GPT-style vs BERT-style</h2>\n'
        f"<p>The same sentence as above, and {p['repeated_length']} random tokens repeated twice "
        "(induction scores). A decoder's heads are causal (upper triangle blank); an encoder's "
        "see the whole sentence, so it can have heads that look ahead.</p>\n"
        + "".join(missing)
        + (grid(*columns) if columns else "")
        + "\n</section>"
    )


def theory(report: dict) -> str:
    blocks = []
    for name, data in report["theory"].items():
        rows = [[e(k), number(v, ".4g") if isinstance(v, float) else e(v)]
                for k, v in data["summary"].items()]  # fmt: skip
        blocks.append(
            f'<h3>{e(name)}: {e(data["title"])}</h3><p class="note">{e(data["question"])}; '
            f"run small here, in full with <code>{e(data['command'])}</code>.</p>"
            + grid(image(data["figure"], data["title"]), table(["summary", "value"], rows))
        )
    return (
        '<section id="theory">\n<h2>Theory experiments</h2>\n'
        + "\n".join(blocks)
        + ("\n</section>")
    )


def measurements(report: dict) -> str:
    d = report["decoding"]
    decoding = table(
        ["path", "seconds", "tokens/s"],
        [
            ["KV cache", number(d["cached_s"], ".3f"), number(d["cached_tokens_per_s"], ",.0f")],
            ["recompute every prefix", number(d["recomputed_s"], ".3f"),
             number(d["recomputed_tokens_per_s"], ",.0f")],
        ],
    )  # fmt: skip
    parts = [
        '<section id="measurements">\n<h2>Measurements</h2>\n<h3>Decoding with the KV cache</h3>'
        f"<p>Greedy generation on the trained model, {d['new_tokens']} new tokens after "
        f"{d['prompt_tokens']}, median of {d['repeats']} interleaved runs on "
        f"{d['threads']} thread: "
        f"<b>{number(d['speedup'], '.1f')}×</b> with the cache, identical tokens.</p>" + decoding
    ]
    f = report["flash"]
    parts.append("<h3>Memory of tiled (flash) attention</h3>")
    if f.get("available"):
        rows = [
            [number(t, ",d"), number(a, ".1f"), number(b, ".1f")]
            for t, a, b in zip(f["lengths"], f["peak_mib"]["naive"], f["peak_mib"]["flash"],
                               strict=True)
        ]  # fmt: skip
        parts.append(
            f"<p>Peak memory of one forward pass, {f['heads']} heads × head_dim {f['head_dim']}, "
            f"float32. Growth exponents: naive {number(f['naive_exponent'])}, tiled "
            f"{number(f['flash_exponent'])}.</p>"
            + grid(
                image(f["figure"], "peak memory against T"),
                table(["T", "naive MiB", "tiled MiB"], rows),
            )
        )
    else:
        parts.append(f'<p class="missing">{e(f["reason"])}</p>')
    lin = report["linear"]
    parts.append("<h3>Linear attention against softmax attention</h3>")
    if lin.get("available"):
        rows = [
            [number(r["seq"], ",d"), number(r["sdpa_ms"], ".2f"), number(r["linear_ms"], ".2f"),
             number(r["linear_over_sdpa"], ".2f")]
            for r in lin["rows"]
        ]  # fmt: skip
        crossing = (
            f"from T = {lin['crossover']:,}" if lin["crossover"] else "not within these lengths"
        )
        parts.append(
            f"<p>Forward time, {lin['heads']} heads × head_dim {lin['head_dim']}, non-causal, "
            f"{lin['threads']} thread, median of interleaved runs; "
            f"linear attention is faster {e(crossing)}.</p>"
            + grid(
                image(lin["figure"], "forward time against T"),
                table(["T", "SDPA ms", "linear ms", "linear / SDPA"], rows),
            )
        )
    else:
        parts.append(f'<p class="missing">{e(lin["reason"])}</p>')
    return "\n".join(parts) + "\n</section>"


def footer(report: dict) -> str:
    rows = [[e(k), number(v, ".1f")] for k, v in report["timings"].items()]
    files = report["files"]
    return (
        '<section id="files">\n<h2>Files and timings</h2>\n'
        '<p>All numbers on this page are in <a href="report.json">report.json</a>; the model '
        f"is in <code>{e(files['checkpoint'])}</code> (load it with "
        "<code>attnlab.train.load_checkpoint</code>). Reproduce with "
        f"<code>{e(report['settings']['command'])}</code>.</p>\n"
        + table(["stage", "seconds"], rows)
        + f'\n<p class="note">{e(report["machine"])}</p>\n</section>'
    )
