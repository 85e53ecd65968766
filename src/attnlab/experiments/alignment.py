"""Cross attention learns the word alignment of a toy translation (seed 000, exercises 6, 15).

A small :class:`attnlab.nn.EncoderDecoder` is trained on the toy language of
:mod:`attnlab.data.toy_translation`: 7-word sentences ``det adj noun verb det adj noun``
translated into 5 words ``noun adj verb noun adj``. Target word t translates one known source
word, so the right (5, 7) cross-attention matrix is known in advance: one cell per row, near the
diagonal, off it where nouns and adjectives swap, never on the dropped articles. The experiment
reads the decoder's cross-attention patterns on held-out sentences (never seen in training) and
compares each row's argmax with the known alignment, before and after training; it also
translates the held-out sentences greedily. Self attention (``(T, T)``, query and key from one
sequence) and cross attention (``(seq_tgt, seq_src)``, queries from the target, keys and values
from the source) differ by exactly that shape, which the patterns show.
"""

from __future__ import annotations

import torch

from attnlab.data import toy_translation as toy
from attnlab.nn import EncoderDecoder, EncoderDecoderConfig

from .registry import ExperimentResult, Progress, check_at_least, check_positive_ints, register

COLUMNS = [
    "target_position",
    "target_role",
    "aligned_source",
    "argmax_source",
    "weight_on_aligned",
    "weight_on_aligned_untrained",
    "token_accuracy",
]
HELD_OUT = 0.2


def _cross_pattern(model: EncoderDecoder, src, tgt) -> torch.Tensor:
    """The last decoder layer's cross attention, averaged over heads: ``(n, seq_tgt, seq_src)``."""
    last = model.config.n_decoder_layers - 1
    with torch.no_grad():
        _, patterns = model(src, toy.decoder_input(tgt), return_attention=True)
    return patterns[f"decoder.{last}.cross.pattern"].mean(dim=1)


def _figure(fig, result: ExperimentResult) -> None:
    example, mean = result.details["example"], result.details["mean_pattern"]
    truth = result.details["alignment"]
    axes = fig.subplots(1, 2)
    panels = [
        (example["pattern"], example["source"], example["translation"], "one held-out sentence"),
        (mean, list(toy.SOURCE_ROLES), list(toy.TARGET_ROLES), "mean over held-out sentences"),
    ]
    for ax, (pattern, keys, queries, title) in zip(axes, panels, strict=True):
        image = ax.imshow(pattern, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.scatter(truth, range(len(truth)), marker="s", s=220, facecolors="none",
                   edgecolors="tab:red", linewidths=1.5)  # fmt: skip
        ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right")
        ax.set_yticks(range(len(queries)), queries)
        ax.set(xlabel="source (keys, values)", ylabel="target (queries)",
               title=f"{title}\n(red squares: the true alignment)")  # fmt: skip
        for (row, col), weight in _cells(pattern):
            ax.text(col, row, f"{weight:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if weight > 0.6 else "black")  # fmt: skip
    fig.colorbar(image, ax=axes, shrink=0.8, label="cross-attention weight")


def _cells(pattern):
    return (((r, c), w) for r, row in enumerate(pattern) for c, w in enumerate(row))


@register(
    "cross-attention-alignment",
    title="a toy translation's (5, 7) cross-attention matrix against its known word alignment",
    question="seed 000 Ex 6, Ex 15: cross attention (5×7) vs self attention; alignment",
    description="train a tiny encoder–decoder; argmax of each cross-attention row vs the truth",
    help={
        "steps": "training steps (AdamW, batches of `batch` sentence pairs)",
        "batch": "sentence pairs per step",
        "d_model": "model width",
        "heads": "attention heads (the pattern is their mean)",
        "encoder_layers": "encoder blocks (0: the memory is embeddings and positions only)",
        "lr": "AdamW learning rate",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    steps: int = 300,
    batch: int = 64,
    d_model: int = 32,
    heads: int = 1,
    encoder_layers: int = 1,
    lr: float = 3e-3,
) -> ExperimentResult:
    check_positive_ints("steps", (steps,))
    check_positive_ints("batch", (batch,))
    check_positive_ints("d_model", (d_model,))
    check_positive_ints("heads", (heads,))
    check_positive_ints("encoder_layers", (encoder_layers,), minimum=0)
    check_at_least("lr", lr, 1e-6)
    rng = torch.Generator().manual_seed(seed)
    (train_src, train_tgt), (test_src, test_tgt) = toy.split_pairs(HELD_OUT, rng)
    with torch.random.fork_rng(devices=[]):  # the model's initial weights, from the seed alone
        torch.manual_seed(seed)
        config = EncoderDecoderConfig(
            src_vocab_size=len(toy.SOURCE_WORDS),
            tgt_vocab_size=len(toy.TARGET_WORDS),
            src_context=len(toy.SOURCE_ROLES),
            tgt_context=len(toy.TARGET_ROLES),
            n_encoder_layers=encoder_layers,
            n_decoder_layers=1,
            d_model=d_model,
            n_heads=heads,
        )
        model = EncoderDecoder(config)
    untrained = _cross_pattern(model.eval(), test_src, test_tgt).mean(dim=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        pick = torch.randint(train_src.shape[0], (batch,), generator=rng)
        src, tgt = train_src[pick], train_tgt[pick]
        _, loss = model(src, toy.decoder_input(tgt), tgt)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            progress(f"step {step + 1}/{steps}, loss {loss.item():.3f}")
    model.eval()
    progress("held-out sentences")
    patterns = _cross_pattern(model, test_src, test_tgt)  # (n, 5, 7)
    mean = patterns.mean(dim=0)
    translated = model.translate(test_src, len(toy.TARGET_ROLES), start=toy.START_ID)
    correct = translated == test_tgt
    rows = []
    for t, source in enumerate(toy.ALIGNMENT):
        rows.append(
            {
                "target_position": t,
                "target_role": toy.TARGET_ROLES[t],
                "aligned_source": source,
                "argmax_source": int(mean[t].argmax()),
                "weight_on_aligned": float(mean[t, source]),
                "weight_on_aligned_untrained": float(untrained[t, source]),
                "token_accuracy": float(correct[:, t].float().mean()),
            }
        )
    per_sentence = patterns.argmax(dim=-1) == torch.tensor(toy.ALIGNMENT)  # (n, 5)
    summary = {
        "alignment_matches": sum(r["argmax_source"] == r["aligned_source"] for r in rows),
        "rows": len(rows),
        "alignment_accuracy_per_sentence": float(per_sentence.float().mean()),
        "mean_weight_on_aligned": sum(r["weight_on_aligned"] for r in rows) / len(rows),
        "mean_weight_on_aligned_untrained": sum(r["weight_on_aligned_untrained"] for r in rows)
        / len(rows),
        "uniform_weight": 1 / len(toy.SOURCE_ROLES),
        "weight_on_articles": float(mean[:, [0, 4]].sum(dim=-1).mean()),
        "token_accuracy": float(correct.float().mean()),
        "sentence_accuracy": float(correct.all(dim=1).float().mean()),
        "held_out_sentences": int(test_src.shape[0]),
        "first_loss": losses[0],
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
    }
    source_words = [toy.SOURCE_WORDS[i] for i in test_src[0].tolist()]
    details = {
        "alignment": list(toy.ALIGNMENT),
        "mean_pattern": mean.tolist(),
        "example": {
            "source": source_words,
            "translation": [toy.TARGET_WORDS[i] for i in translated[0].tolist()],
            "reference": toy.translate_words(source_words),
            "pattern": patterns[0].tolist(),
        },
        "pattern_shapes": {"self": [len(toy.TARGET_ROLES)] * 2, "cross": list(mean.shape)},
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details=details)
