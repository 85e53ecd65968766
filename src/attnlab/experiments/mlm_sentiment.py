"""Masked-LM pretraining, then sentiment fine-tuning, of a tiny encoder (seed 004 13.24).

A small :class:`attnlab.nn.Encoder` is pretrained to fill in masked words of unlabelled reviews
of the toy language in :mod:`attnlab.data.toy_sentiment` (verdict and reaction), then
fine-tuned to classify verdicts as positive or negative from a few labelled ones that use half
of the adjectives. An encoder of the same shape and initial weights is fine-tuned the same way
from scratch. Both are scored on held-out verdicts with the adjectives of the labelled set
(*seen*) and with the other half (*unseen*), and on the negated ones among them. A model that
only learned from the labels cannot know the unseen adjectives; what the pretrained one gets
right there, it learned from unlabelled text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attnlab.data import toy_sentiment as toy
from attnlab.data.batches import IGNORE, mask_tokens
from attnlab.nn import Encoder, EncoderConfig

from .registry import ExperimentResult, Progress, check_at_least, check_positive_ints, register

COLUMNS = ["model", "test", "sentences", "accuracy", "accuracy_negated"]
TEST_SIZE = 1000
BATCH = 64


def _model(seed: int, d_model: int, layers: int, heads: int) -> Encoder:
    with torch.random.fork_rng(devices=[]):  # initial weights from the seed alone
        torch.manual_seed(seed)
        config = EncoderConfig(
            vocab_size=len(toy.WORDS),
            context=toy.MAX_LEN,
            n_layers=layers,
            d_model=d_model,
            n_heads=heads,
        )
        return Encoder(config)


def _mlm_loss(model: Encoder, ids, mask, rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    maskable = mask & (ids != toy.CLS_ID)
    inputs, targets = mask_tokens(
        ids, maskable, rng, mask_id=toy.MASK_ID, vocab_size=len(toy.WORDS)
    )
    chosen = targets != IGNORE
    logits = model.mlm_logits(model(inputs, mask)[chosen])  # (chosen, vocab)
    return F.cross_entropy(logits, targets[chosen]), logits, targets[chosen]


def _pretrain(model, steps, lr, rng, progress) -> tuple[list[float], float]:
    ids, mask = toy.corpus(8000, rng)
    held_ids, held_mask = toy.corpus(1000, rng)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    model.train()
    for step in range(steps):
        pick = torch.randint(ids.shape[0], (BATCH,), generator=rng)
        loss, _, _ = _mlm_loss(model, ids[pick], mask[pick], rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 250 == 0 or step == steps - 1:
            progress(f"pretraining {step + 1}/{steps}, masked-LM loss {loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        _, logits, targets = _mlm_loss(model, held_ids, held_mask, rng)
    return losses, float((logits.argmax(-1) == targets).float().mean())


def _finetune(model, data, steps, lr, rng, progress, label) -> list[float]:
    ids, mask, labels = data
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    model.train()
    for _ in range(steps):
        pick = torch.randint(ids.shape[0], (min(BATCH, ids.shape[0]),), generator=rng)
        loss = F.cross_entropy(model.classify(ids[pick], mask[pick]), labels[pick])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    progress(f"fine-tuned {label}: loss {losses[-1]:.3f}")
    return losses


def _score(model, data, negated) -> tuple[float, float]:
    ids, mask, labels = data
    model.eval()
    with torch.no_grad():
        right = model.classify(ids, mask).argmax(-1) == labels
    return float(right.float().mean()), float(right[negated].float().mean())


def _figure(fig, result: ExperimentResult) -> None:
    left, right = fig.subplots(1, 2)
    curves = result.details["curves"]
    left.plot(curves["pretrain"], lw=0.8, label="masked-LM pretraining")
    left.set(xlabel="step", ylabel="loss", title="pretraining")
    left.legend(fontsize=8)
    tests = ["seen", "unseen"]
    for offset, model in ((-0.2, "pretrained"), (0.2, "scratch")):
        values = [next(r["accuracy"] for r in result.rows
                       if r["model"] == model and r["test"] == t) for t in tests]  # fmt: skip
        bars = right.bar([i + offset for i in range(2)], values, width=0.4, label=model)
        right.bar_label(bars, fmt="%.2f", fontsize=8)
    right.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    right.set_xticks(range(2), ["seen adjectives", "unseen adjectives"])
    right.set(ylim=(0, 1.05), ylabel="held-out accuracy", title="sentiment after fine-tuning")
    right.legend(fontsize=8, loc="lower left")


@register(
    "mlm-sentiment",
    title="masked-LM pretraining, then sentiment fine-tuning of a tiny encoder, vs scratch",
    question="seed 004 13.24: encoder-only Transformer, MLM pretraining, fine-tuning, accuracy",
    description="pretrain a tiny encoder by masked LM, fine-tune on few labels; accuracy",
    help={
        "pretrain_steps": "masked-LM steps on unlabelled reviews (batches of 64)",
        "finetune_steps": "classification steps, for both models",
        "labelled": "labelled training verdicts (seen adjectives only)",
        "d_model": "encoder width",
        "layers": "encoder blocks",
        "heads": "attention heads",
        "lr": "AdamW learning rate (pretraining and fine-tuning)",
    },
    figure=_figure,
)
def run(
    *,
    seed: int = 0,
    progress: Progress,
    pretrain_steps: int = 1500,
    finetune_steps: int = 200,
    labelled: int = 200,
    d_model: int = 64,
    layers: int = 2,
    heads: int = 4,
    lr: float = 1e-3,
) -> ExperimentResult:
    for name, value in (("pretrain_steps", pretrain_steps), ("finetune_steps", finetune_steps),
                        ("labelled", labelled), ("d_model", d_model), ("layers", layers),
                        ("heads", heads)):  # fmt: skip
        check_positive_ints(name, (value,))
    check_at_least("lr", lr, 1e-6)
    rng = torch.Generator().manual_seed(seed)
    train = toy.labelled(labelled, rng, toy.SEEN)
    tests = {"seen": toy.labelled(TEST_SIZE, rng, toy.SEEN),
             "unseen": toy.labelled(TEST_SIZE, rng, toy.UNSEEN)}  # fmt: skip
    not_id = toy.WORD_ID["not"]
    negated = {name: (data[0] == not_id).any(dim=1) for name, data in tests.items()}
    pretrained = _model(seed, d_model, layers, heads)
    pretrain_losses, mlm_accuracy = _pretrain(pretrained, pretrain_steps, lr, rng, progress)
    scratch = _model(seed, d_model, layers, heads)  # the pretrained model's initial weights
    curves = {"pretrain": pretrain_losses}
    rows = []
    for label, model in (("pretrained", pretrained), ("scratch", scratch)):
        curves[label] = _finetune(model, train, finetune_steps, lr, rng, progress, label)
        for test, data in tests.items():
            accuracy, accuracy_negated = _score(model, data, negated[test])
            rows.append({"model": label, "test": test, "sentences": TEST_SIZE,
                         "accuracy": accuracy, "accuracy_negated": accuracy_negated})  # fmt: skip
    by = {(r["model"], r["test"]): r["accuracy"] for r in rows}
    summary = {
        "masked_lm_accuracy": mlm_accuracy,
        "pretrained_seen": by["pretrained", "seen"],
        "pretrained_unseen": by["pretrained", "unseen"],
        "scratch_seen": by["scratch", "seen"],
        "scratch_unseen": by["scratch", "unseen"],
        "gain_unseen": by["pretrained", "unseen"] - by["scratch", "unseen"],
        "labelled_sentences": labelled,
    }
    details = {
        "curves": curves,
        "example": toy.decode(train[0][0]),
        "seen_adjectives": list(toy.SEEN),
        "unseen_adjectives": list(toy.UNSEEN),
    }
    return ExperimentResult(columns=COLUMNS, rows=rows, summary=summary, details=details)
