"""The pretrained heads: a GPT-style decoder (SmolLM2) beside a BERT-style encoder (MiniLM).

Each installed model reads the lab's sentence and random tokens repeated twice (head-type
scores, as for the lab GPT), and the word "bank" in a river sentence and a loan sentence: its
attention rows and the cosine similarity of its two contextual vectors (seed 003 P5).
"""

from __future__ import annotations

import gc

import numpy as np

from attnlab.inspect import (
    available_models,
    capture,
    compare_contexts,
    induction_record,
    is_delimiter,
    load_pretrained,
    word_in_context,
)
from attnlab.viz import cosine_similarity, plot_head, plot_two_contexts

from .config import LOAN, RIVER, RIVER_2, WORD
from .figures import Figures
from .scoring import label, merged_scores, summarise

# The second head drawn per model: what a decoder can do and an encoder cannot (copy from an
# earlier repeat), and what an encoder can do and a decoder cannot (look ahead).
SECOND_KIND = {True: "induction", False: "next_token"}


def availability() -> dict:
    """Which pretrained models are installed, and the command that installs each missing one."""
    return {
        info.name: {
            "installed": info.installed,
            "description": info.description,
            "causal": info.causal,
            "install": info.install_command,
        }
        for info in available_models()
    }


def _context_layer(n_layers: int) -> int:
    """The layer whose rows the "bank" figure shows: the middle of the stack, where heads mix
    the neighbours in (the last layers of decoders rest mostly on the first token)."""
    return n_layers // 2


def analyse_model(name: str, sentence: str, config, figures: Figures) -> dict:
    model, tokenizer, info = load_pretrained(name)
    try:
        text = capture(model, sentence, tokenizer=tokenizer)
        repeats = induction_record(
            model, length=config.pretrained_induction_length, seed=0, tokenizer=tokenizer
        )
        text.model_name = repeats.model_name = name
        scores = merged_scores(text, repeats)
        data = summarise(scores)
        data.update(name=name, description=info.description, causal=info.causal, figures={})
        second = SECOND_KIND[info.causal]
        for kind, record in (("previous_token", text), (second, repeats if info.causal else text)):
            best = data["best"][kind]
            if best is None:
                continue
            layer, head = best["layer"], best["head"]
            path = figures.path(f"{name}-{kind}-head")
            plot_head(
                record.weights[layer, head],
                record.tokens,
                path=path,
                title=f"{name}: {label(layer, head)}, best {kind.replace('_', '-')} head",
                causal_mask_upper=info.causal,
            )
            data["figures"][f"{kind}_head"] = figures.relative(path.stem)
        data["second_kind"] = second
        data["bank"] = _bank(name, model, tokenizer, figures, data)
    finally:
        del model
        gc.collect()  # SmolLM2 holds half a gigabyte; free it before the next model loads
    return data


def _bank(name: str, model, tokenizer, figures: Figures, data: dict) -> dict:
    """The word in the two senses, and in a second sentence of the first sense: the senses are
    told apart when the vectors of the two senses are further apart than those of one sense."""
    river, loan, cosine = compare_contexts(model, WORD, RIVER, LOAN, tokenizer=tokenizer)
    river_2 = word_in_context(model, RIVER_2, WORD, tokenizer=tokenizer)
    same_sense = cosine_similarity(river.vector, river_2.vector)
    layer = _context_layer(river.attention.shape[0])
    rows = [ctx.attention[layer].mean(0) for ctx in (river, loan)]  # (seq,) averaged over heads
    path = figures.path(f"{name}-bank")
    plot_two_contexts(
        rows[0],
        river.record.tokens,
        rows[1],
        loan.record.tokens,
        river.vector,
        loan.vector,
        path,
        word=WORD,
        labels=("river", "loan"),
        position_a=river.position,
        position_b=loan.position,
        title=f"{name}: “{WORD}”, layer {layer} averaged over heads",
    )
    data["figures"]["bank"] = figures.relative(path.stem)

    def top_keys(ctx, row) -> list[dict]:
        # The first token ([CLS], or a decoder's attention sink) and special tokens take most
        # of the mass in many heads; the neighbours that tell the senses apart come after them.
        kept = [
            i
            for i in np.argsort(-row)
            if i not in (0, ctx.position) and not is_delimiter(ctx.record.tokens[i])
        ]
        return [{"token": ctx.record.tokens[i].strip(), "weight": float(row[i])} for i in kept[:3]]

    return {
        "word": WORD,
        "river": RIVER,
        "river_2": RIVER_2,
        "loan": LOAN,
        "layer": layer,
        "cosine": cosine,
        "cosine_same_sense": same_sense,
        "separation": same_sense - cosine,
        "river_top": top_keys(river, rows[0]),
        "loan_top": top_keys(loan, rows[1]),
    }


def analyse(config, figures: Figures, progress=None) -> dict:
    """Every installed pretrained model on the lab's sentence; the missing ones are listed with
    their install line."""
    models = availability()
    out = {
        "available": models,
        "models": {},
        "repeated_length": config.pretrained_induction_length,
    }
    for name, info in models.items():
        if not info["installed"]:
            continue
        if progress is not None:
            progress(name)
        out["models"][name] = analyse_model(name, config.sentence, config, figures)
    return out
