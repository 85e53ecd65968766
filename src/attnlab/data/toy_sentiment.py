"""A toy review language for masked-LM pretraining and sentiment classification (seed 004
exercise 13.24).

A review is a verdict, ``the plot was not very dull``, optionally followed by a reaction,
``. i loved it``. The verdict's polarity is its adjective's, flipped by ``not``; the reaction
always agrees with it. Unlabelled text (verdict and reaction) is the pretraining corpus: to fill
in a masked reaction a model must learn which adjectives are good and what ``not`` does, and to
fill in a masked adjective it must learn that adjectives with the same reactions belong
together. The classification task labels verdicts alone (1 positive, 0 negative), and its
training sentences use only half of the adjectives (:data:`SEEN`): a model trained on them from
scratch has never seen the other half and can only guess them, while a pretrained model knows
their polarity from the unlabelled text. That gap is what ``attnlab experiment mlm-sentiment``
measures.
"""

from __future__ import annotations

import torch

POSITIVE = ("good", "great", "superb", "lovely", "brilliant", "charming",
            "moving", "clever", "wonderful", "delightful", "gripping", "fine")  # fmt: skip
NEGATIVE = ("bad", "awful", "dull", "boring", "poor", "weak",
            "tedious", "clumsy", "dreadful", "bland", "messy", "silly")  # fmt: skip
SEEN = POSITIVE[:6] + NEGATIVE[:6]  # adjectives of the labelled training sentences
UNSEEN = POSITIVE[6:] + NEGATIVE[6:]
SUBJECTS = (("the", "film"), ("the", "plot"), ("the", "acting"), ("the", "story"),
            ("the", "music"), ("the", "ending"), ("this", "movie"), ("the", "cast"))  # fmt: skip
VERBS = ("was", "is", "felt", "seemed")
INTENSIFIERS = ("very", "really", "quite", "so")
REACTIONS = {
    1: (("i", "loved", "it"), ("see", "it"), ("highly", "recommended"), ("a", "must", "see")),
    0: (("i", "hated", "it"), ("skip", "it"), ("avoid", "it"), ("a", "waste", "of", "time")),
}
PAD, CLS, MASK, SEP = "<pad>", "<cls>", "<mask>", "."
SPECIAL = (PAD, CLS, MASK)
_words = {w for pair in SUBJECTS for w in pair} | set(VERBS) | set(INTENSIFIERS)
_words |= {w for phrases in REACTIONS.values() for p in phrases for w in p}
_words |= set(POSITIVE) | set(NEGATIVE) | {"not", SEP}
WORDS = (*SPECIAL, *sorted(_words))
WORD_ID = {w: i for i, w in enumerate(WORDS)}
PAD_ID, CLS_ID, MASK_ID = (WORD_ID[w] for w in SPECIAL)
MAX_LEN = 1 + 6 + 1 + 4  # <cls>, the verdict, ".", the longest reaction


def polarity(adjective: str, negated: bool) -> int:
    """1 for a positive verdict, 0 for a negative one."""
    if adjective not in POSITIVE and adjective not in NEGATIVE:
        raise ValueError(f"adjective: expected one of the lexicon's, got {adjective!r}")
    return int((adjective in POSITIVE) != negated)


def review(
    generator: torch.Generator, adjectives=POSITIVE + NEGATIVE, *, reaction: bool
) -> tuple[list[str], int]:
    """One random review (words) and its label: ``subject verb [not] [intensifier] adjective``
    and, with ``reaction``, ``. <a reaction of the same polarity>``."""

    def pick(options):
        return options[int(torch.randint(len(options), (), generator=generator))]

    negated = bool(torch.rand((), generator=generator) < 0.35)
    adjective = pick(adjectives)
    words = [*pick(SUBJECTS), pick(VERBS)]
    words += ["not"] if negated else []
    words += [pick(INTENSIFIERS)] if bool(torch.rand((), generator=generator) < 0.5) else []
    words.append(adjective)
    label = polarity(adjective, negated)
    if reaction:
        words += [SEP, *pick(REACTIONS[label])]
    return words, label


def encode(sentences: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids ``(n, MAX_LEN)`` with ``<cls>`` first and ``<pad>`` after the words, and the mask of
    real tokens ``(n, MAX_LEN)`` (True = a word or ``<cls>``)."""
    ids = torch.full((len(sentences), MAX_LEN), PAD_ID, dtype=torch.long)
    for row, words in enumerate(sentences):
        if len(words) + 1 > MAX_LEN:
            raise ValueError(f"sentences: sentence {row} has {len(words)} words, at most "
                             f"{MAX_LEN - 1} fit")  # fmt: skip
        unknown = [w for w in words if w not in WORD_ID]
        if unknown:
            raise ValueError(f"sentences: sentence {row} has unknown words {unknown}")
        ids[row, : len(words) + 1] = torch.tensor([CLS_ID] + [WORD_ID[w] for w in words])
    return ids, ids != PAD_ID


def corpus(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` unlabelled reviews (verdict and reaction, every adjective): ids and mask."""
    return encode([review(generator, reaction=True)[0] for _ in range(count)])


def labelled(
    count: int, generator: torch.Generator, adjectives=SEEN
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` verdicts using ``adjectives``: ids, mask and labels ``(count,)``."""
    pairs = [review(generator, adjectives, reaction=False) for _ in range(count)]
    ids, mask = encode([words for words, _ in pairs])
    return ids, mask, torch.tensor([label for _, label in pairs])


def decode(ids: torch.Tensor) -> str:
    """The words of one row of ids, without padding."""
    return " ".join(WORDS[i] for i in ids.tolist() if i != PAD_ID)


__all__ = [
    "CLS_ID",
    "MASK_ID",
    "MAX_LEN",
    "NEGATIVE",
    "PAD_ID",
    "POSITIVE",
    "SEEN",
    "UNSEEN",
    "WORDS",
    "corpus",
    "decode",
    "encode",
    "labelled",
    "polarity",
    "review",
]
