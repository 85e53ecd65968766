"""The analysis section: sentences assembled from the measured numbers of report.json.

A sentence is a list of parts: plain words (``str``) and :class:`Value` references, a dotted
path into the report dict with a format spec. The page prints a value as
``format(lookup(report, key), spec)`` inside an element that carries the key and the spec, so
every figure in the prose can be traced to (and checked against) report.json. Words may not
contain digits: a number that is not looked up cannot slip into the prose. Which sentence is
said (an induction head found or not, a speedup or a slowdown) is decided by the numbers too.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Value:
    key: str  # dotted path into report.json; list items by index ("rows.-1.seq")
    spec: str = ".2f"


Part = str | Value


def lookup(report: dict, key: str):
    node = report
    for part in key.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def sentence(*parts: Part) -> list[Part]:
    for part in parts:
        if isinstance(part, str) and any(c.isdigit() for c in part):
            raise ValueError(
                f"analysis: a number must come from report.json, not the text {part!r}"
            )
    return list(parts)


def _kinds(specialists: dict, base: str) -> list[Part]:
    """ "n previous-token, m induction …" from the specialists of the scores at ``base``."""
    parts: list[Part] = []
    for index, kind in enumerate(specialists):
        if index:
            parts.append(", ")
        parts += [Value(f"{base}.specialists.{kind}.count", "d"), f" {kind.replace('_', '-')}"]
    return parts


# fmt: off
# Sentences are laid out as they read, a few parts a line, not one part a line.
def training(report: dict) -> list[list[Part]]:
    t = report["training"]
    verb = {"reused": "was reused from an earlier run", "resumed": "finished an interrupted run"}
    out = [
        sentence(
            "The lab GPT (", Value("model.layers", "d"), " layers × ", Value("model.heads", "d"),
            " heads, d_model ", Value("model.d_model", "d"), ", ",
            Value("training.parameters", ",d"), " parameters) ",
            verb.get(t["status"], "trained"), ": ", Value("training.steps", ",d"), " steps of ",
            Value("training.batch_size", "d"), " sequences of ", Value("training.context", "d"),
            " characters (", Value("training.tokens_seen", ",d"), " characters) at ",
            Value("training.tokens_per_s", ",.0f"), " characters per second",
            *(
                [" (torch threads: ", Value("threads.chosen", "d"), ")."]
                if t["status"] != "reused" else ["."]
            ),
        ),
        sentence(
            "Its validation loss fell from ", Value("training.initial.val_loss", ".3f"),
            " nats per character at initialisation (a uniform guess over ",
            Value("training.vocab_size", "d"), " characters scores ",
            Value("training.uniform_loss", ".3f"), ") to ", Value("training.final.val_loss", ".3f"),
            ", ", Value("training.val_loss_reduction", ".0%"), " lower.",
        ),
    ]
    gap = t["generalisation_gap"]
    if abs(gap) < 0.05:
        out.append(sentence(
            "Training and validation loss end within ",
            Value("training.generalisation_gap_abs", ".3f"),
            " of each other: the model has not begun to memorise its training text.",
        ))
    else:
        out.append(sentence(
            "The validation loss ends ", Value("training.generalisation_gap_abs", ".3f"),
            " above" if gap > 0 else " below", " the training loss",
            ": the model has begun to fit its training text more closely than new text."
            if gap > 0 else ".",
        ))
    out.append(sentence(
        "Sampled with the same seed, ", Value("samples.after_known_words", ".0%"),
        " of the trained model's words occur in the corpus, against ",
        Value("samples.before_known_words", ".0%"), " for the random network.",
    ))
    return out


def gpt_heads(report: dict) -> list[list[Part]]:
    heads = report["heads"]
    prev, ind = heads["trained"]["best"]["previous_token"], heads["trained"]["best"]["induction"]
    base = "heads.trained.best"
    out = [
        sentence(
            "After training, ", Value(f"{base}.previous_token.label", "s"),
            " is the strongest previous-token head: on the sentence it puts ",
            Value(f"{base}.previous_token.score", ".2f"),
            " of each character's attention on the character just before.",
        ),
    ]
    found = ind["score"] >= report["thresholds"]["induction"]
    out.append(sentence(
        "On ", Value("heads.inputs.repeated_length", "d"), " random characters repeated twice, ",
        Value(f"{base}.induction.label", "s"), " is the strongest induction head (",
        Value(f"{base}.induction.score", ".2f"),
        " of its attention on the character that followed the earlier occurrence), ",
        "above" if found else "below", " the threshold of ", Value("thresholds.induction", ".1f"),
        " for a clear induction head.",
    ))
    if found and ind["layer"] > prev["layer"]:
        out.append(sentence(
            "It sits in layer ", Value(f"{base}.induction.layer", "d"),
            ", above the previous-token head in layer ", Value(f"{base}.previous_token.layer", "d"),
            ": the two-step circuit in which a previous-token head feeds an induction head "
            "(Olsson et al.).",
        ))
    threshold = report["thresholds"]["induction"]
    copiers = [
        name for name, data in report["pretrained"]["models"].items()
        if (data["best"].get("induction") or {}).get("score", 0) >= threshold
    ]
    if not found and copiers:
        where = f"pretrained.models.{copiers[0]}"
        out.append(sentence(
            "No clear induction head formed within this run's steps; the pretrained ",
            Value(f"{where}.name", "s"), " below has one (",
            Value(f"{where}.best.induction.label", "s"), ", ",
            Value(f"{where}.best.induction.score", ".2f"), ").",
        ))
    specialists = heads["trained"]["specialists"]
    if specialists:
        out.append(sentence(
            "Of its ", Value("heads.trained.head_count", "d"), " heads, ",
            Value("heads.trained.specialist_count", "d"), " pass a specialist threshold: ",
            *_kinds(specialists, "heads.trained"), ".",
        ))
    random = heads["random"]
    out.append(sentence(
        "Randomly initialised, the same network's best previous-token score is ",
        Value("heads.random.best.previous_token.score", ".2f"), " and its best induction score ",
        Value("heads.random.best.induction.score", ".2f"),
        *(
            [", with no specialist head"] if not random["specialist_count"]
            else [", with ", Value("heads.random.specialist_count", "d"), " heads over a threshold"]
        ),
        *(
            [": training multiplied them by " if min(heads["ratios"].values()) >= 1.5
             else ": training changed them by factors of ",
             Value("heads.ratios.previous_token", ".1f"), " and ",
             Value("heads.ratios.induction", ".1f"), "."]
            if {"previous_token", "induction"} <= set(heads["ratios"]) else ["."]
        ),
    ))
    return out


def pretrained(report: dict) -> list[list[Part]]:
    models = report["pretrained"]["models"]
    out = []
    for name, data in models.items():
        if out:
            out.append(sentence())  # one paragraph per model
        base = f"pretrained.models.{name}"
        best = data["best"]
        lead = [Value(f"{base}.name", "s"), " (", Value(f"{base}.layers", "d"), " layers × ",
                Value(f"{base}.heads", "d"), " heads): "]
        if data["causal"] and best.get("induction"):
            out.append(sentence(
                *lead, "strongest induction head ", Value(f"{base}.best.induction.label", "s"),
                " (",
                Value(f"{base}.best.induction.score", ".2f"), " on ",
                Value("pretrained.repeated_length", "d"),
                " random tokens repeated twice), strongest previous-token head ",
                Value(f"{base}.best.previous_token.label", "s"), " (",
                Value(f"{base}.best.previous_token.score", ".2f"), "), the GPT-style pair.",
            ))
        elif best.get("next_token"):
            out.append(sentence(
                *lead, "strongest previous-token head ",
                Value(f"{base}.best.previous_token.label", "s"), " (",
                Value(f"{base}.best.previous_token.score", ".2f"), ") and next-token head ",
                Value(f"{base}.best.next_token.label", "s"), " (",
                Value(f"{base}.best.next_token.score", ".2f"),
                "): looking ahead is what a bidirectional, BERT-style encoder can do and a decoder "
                "cannot; its best induction score is only ",
                Value(f"{base}.best.induction.score", ".2f"), ".",
            ))
        if data["specialists"]:
            out.append(sentence(
                Value(f"{base}.name", "s"), " has ", Value(f"{base}.specialist_count", "d"),
                " specialist heads: ", *_kinds(data["specialists"], base), ".",
            ))
        apart = data["bank"]["separation"] > 0.02
        out.append(sentence(
            "In ", Value(f"{base}.name", "s"), ", the contextual vectors of “bank” in two river "
            "sentences have cosine similarity ", Value(f"{base}.bank.cosine_same_sense", ".3f"),
            "; a river sentence against a loan sentence gives ",
            Value(f"{base}.bank.cosine", ".3f"),
            ": the sense moves the vector more than the sentence does." if apart
            else ": not clearly lower, so the two senses are not told apart here.",
        ))
        out.append(sentence(
            "In layer ", Value(f"{base}.bank.layer", "d"),
            ", apart from the first token and itself, “bank” attends most to “",
            Value(f"{base}.bank.river_top.0.token", "s"), "” in the first sentence and to “",
            Value(f"{base}.bank.loan_top.0.token", "s"), "” in the second.",
        ))
    gaps = {name: data["bank"]["separation"] for name, data in models.items()}
    if len(gaps) == 2:
        out.append(sentence())
        smaller, larger = sorted(gaps, key=gaps.get)
        if gaps[larger] - gaps[smaller] < 0.01:
            out.append(sentence(
                "The two models separate the senses about equally: the gaps between same-sense "
                "and different-sense cosines differ by less than a hundredth.",
            ))
        else:
            out.append(sentence(
                Value(f"pretrained.models.{larger}.name", "s"),
                " separates the two senses more: its same-sense cosine exceeds the "
                "different-sense one by ",
                Value(f"pretrained.models.{larger}.bank.separation", ".3f"),
                ", against ", Value(f"pretrained.models.{smaller}.bank.separation", ".3f"),
                " for ", Value(f"pretrained.models.{smaller}.name", "s"), ".",
            ))
    return out


def theory(report: dict) -> list[list[Part]]:
    v, s = "theory.dot-product-variance.summary", "theory.softmax-saturation"
    c = "theory.quadratic-scaling.summary"
    return [
        sentence(
            "Unscaled, the variance of q·k grows with the width d as d to the power ",
            Value(f"{v}.unscaled_var_slope", ".2f"),
            " (theory: linearly); divided by √d it stays flat (power ",
            Value(f"{v}.scaled_var_slope", ".2f"), ").",
        ),
        sentence(
            "Without the √d, the softmax over ", Value(f"{s}.params.keys", "d"),
            " keys loses its entropy, from ", Value(f"{s}.summary.unscaled_entropy_first", ".2f"),
            " nats at d = ", Value(f"{s}.params.dims.0", "d"), " to ",
            Value(f"{s}.summary.unscaled_entropy_last", ".2f"), " at d = ",
            Value(f"{s}.params.dims.-1", "d"), " (uniform: ",
            Value(f"{s}.summary.uniform_entropy", ".2f"), "), and its largest weight reaches ",
            Value(f"{s}.summary.unscaled_max_weight_last", ".2f"),
            ": nearly one-hot, with a gradient norm that changes by a factor of ",
            Value(f"{s}.summary.unscaled_grad_ratio_last_to_first", ".2g"), ".",
        ),
        sentence(
            "Naive attention's forward time grows as T to the power ",
            Value(f"{c}.fitted_slope_upper_half", ".2f"),
            " over the longer lengths, against a power of ", Value(f"{c}.flop_slope", ".2f"),
            " for its multiply-adds.",
        ),
    ]


def measurements(report: dict) -> list[list[Part]]:
    d = report["decoding"]
    out = [
        sentence(
            "Greedy generation of ", Value("decoding.new_tokens", "d"),
            " characters after a prompt of ", Value("decoding.prompt_tokens", "d"), " runs at ",
            Value("decoding.cached_tokens_per_s", ",.0f"), " characters per second with the KV "
            "cache and ", Value("decoding.recomputed_tokens_per_s", ",.0f"),
            " recomputing every prefix: ", Value("decoding.speedup", ".1f"),
            "× ", "faster" if d["speedup"] >= 1 else "the time (slower)",
            " with the cache, and the same tokens.",
        ),
    ]
    flash, linear = report["flash"], report["linear"]
    if flash.get("available"):
        out.append(sentence(
            "At T = ", Value("flash.longest", ",d"), " a naive forward peaks at ",
            Value("flash.naive_mib_longest", ".0f"), " MiB and the tiled one at ",
            Value("flash.flash_mib_longest", ".1f"), " MiB (", Value("flash.saving_longest", ".0f"),
            "× less), with the same output to ", Value("flash.max_abs_difference", ".1e"),
            "; fitted growth exponents ", Value("flash.naive_exponent", ".2f"),
            " for naive attention (quadratic) and ", Value("flash.flash_exponent", ".2f"),
            " for the tiled kernel (at most linear).",
        ))
    else:
        out.append(sentence(Value("flash.reason", "s")))
    if linear.get("available") and linear["crossover"] is not None:
        out.append(sentence(
            "Linear attention with the elu feature map is faster than softmax attention from T = ",
            Value("linear.crossover", ",d"), " on; at T = ", Value("linear.longest", ",d"),
            " it takes ", Value("linear.last_ratio", ".2f"), " of SDPA's time (time exponents ",
            Value("linear.linear_slope", ".2f"), " against ", Value("linear.sdpa_slope", ".2f"),
            ").",
        ))
    elif linear.get("available"):
        out.append(sentence(
            "Linear attention with the elu feature map stays slower than softmax attention up to "
            "T = ", Value("linear.longest", ",d"), " (", Value("linear.last_ratio", ".2f"),
            "× its time; time exponents ", Value("linear.linear_slope", ".2f"), " against ",
            Value("linear.sdpa_slope", ".2f"), "): the crossover lies further out.",
        ))
    else:
        out.append(sentence(Value("linear.reason", "s")))
    return out

# fmt: on


def analysis(report: dict) -> list[tuple[str, list[list[Part]]]]:
    """``(heading, sentences)`` per topic; pretrained only when a model was analysed."""
    topics = [("Training", training), ("The lab GPT's heads", gpt_heads)]
    if report["pretrained"]["models"]:
        topics.append(("Pretrained heads", pretrained))
    topics += [("Theory", theory), ("Measurements", measurements)]
    return [(heading, build(report)) for heading, build in topics]


def plain_text(parts: list[Part], report: dict) -> str:
    """A sentence as text, each value formatted as the page prints it."""
    return "".join(
        format(lookup(report, p.key), p.spec) if isinstance(p, Value) else p for p in parts
    )
