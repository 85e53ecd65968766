"""The lab GPT's heads after training and at random initialisation, on the same inputs.

Both networks read the sentence and a run of random characters repeated twice; the heatmaps
show the trained model's best previous-token and induction heads, and the random twin's head at
the same place, so the difference training made is seen cell by cell.
"""

from __future__ import annotations

from attnlab.inspect import capture, induction_record
from attnlab.viz import HeadView, plot_head, plot_score_map

from .figures import Figures
from .scoring import label, merged_scores, summarise


def sentence_for(model, tokenizer, sentence: str, text: str) -> str:
    """``sentence`` when the tokenizer knows all its characters (a custom --text-file may not
    have them), else the first line of the corpus that fits the context."""
    try:
        if tokenizer.encode(sentence):
            return sentence
    except ValueError:
        pass
    for line in text.splitlines():
        if 20 <= len(line) <= model.config.context:
            return line
    return text[: min(model.config.context, 80)]


def _capture_both(model, tokenizer, sentence: str, length: int, seed: int):
    text = capture(model, sentence, tokenizer=tokenizer)
    repeats = induction_record(model, length=length, seed=seed, tokenizer=tokenizer)
    return text, repeats


def induction_length(config, model, tokenizer) -> int:
    """Random tokens per half: both halves must fit the context; distinct tokens when the
    vocabulary allows (each repeat then has exactly one earlier occurrence)."""
    return max(2, min(config.induction_length, model.config.context // 2, tokenizer.vocab_size))


def analyse(trained, config, figures: Figures) -> tuple[dict, dict]:
    """``(data for report.json, head views for the page)`` of the trained and random model."""
    tokenizer = trained.tokenizer
    sentence = sentence_for(trained.model, tokenizer, config.sentence, trained.text)
    length = induction_length(config, trained.model, tokenizer)
    records, data = {}, {}
    for name, model in (("trained", trained.model), ("random", trained.initial)):
        text, repeats = _capture_both(model, tokenizer, sentence, length, config.seed)
        text.model_name = repeats.model_name = f"lab GPT ({name})"
        records[name] = (text, repeats)
        scores = merged_scores(text, repeats)
        data[name] = summarise(scores)
        for kind in ("previous_token", "induction"):
            path = figures.path(f"gpt-{name}-scores-{kind}")
            plot_score_map(
                scores.values[kind],
                path,
                title=f"{name}: {kind.replace('_', '-')} score per head",
                label=f"{kind.replace('_', '-')} score",
            )
            data[name].setdefault("figures", {})[f"scores_{kind}"] = figures.relative(path.stem)
    # The heads to draw are the trained model's specialists; the random twin is drawn at the
    # same layer and head.
    chosen = {}
    for kind, which in (("previous_token", 0), ("induction", 1)):
        best = data["trained"]["best"][kind]
        chosen[kind] = best
        for name in ("trained", "random"):
            record = records[name][which]
            layer, head = best["layer"], best["head"]
            path = figures.path(f"gpt-{name}-{kind}-head")
            plot_head(
                record.weights[layer, head],
                record.tokens,
                path=path,
                title=f"{name}: {label(layer, head)} ({kind.replace('_', '-')} head of the "
                "trained model)",
                causal_mask_upper=True,
            )
            data[name]["figures"][f"{kind}_head"] = figures.relative(path.stem)
    views = {
        name: HeadView(records[name][0], title=f"{name} model, the sentence")._repr_html_()
        for name in ("trained", "random")
    }
    data["inputs"] = {
        "sentence": sentence,
        "sentence_tokens": len(records["trained"][0].tokens),
        "repeated_length": length,
        "repeated_tokens": 2 * length,
        "seed": config.seed,
    }
    data["chosen"] = chosen
    data["ratios"] = _ratios(data)
    return data, views


def _ratios(data: dict) -> dict:
    """How many times the trained model's best score exceeds the random twin's best."""
    ratios = {}
    for kind in ("previous_token", "induction"):
        trained, random = data["trained"]["best"][kind], data["random"]["best"][kind]
        if trained and random and random["score"] > 0:
            ratios[kind] = trained["score"] / random["score"]
    return ratios
