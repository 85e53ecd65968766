"""A toy translation task whose word alignment is known (seed 000, exercises 6 and 15).

Source sentences have 7 words, ``det adj noun verb det adj noun`` ("the red cat sees a small
dog"); their translations have 5, ``noun adj verb noun adj`` ("chat rouge voit chien petit"):
the target language has no articles and puts adjectives after nouns. Each content word has
one translation, so target word t translates exactly one source word, ``ALIGNMENT[t]``:
the (5, 7) alignment matrix is near the diagonal, off it where the order swaps and with empty
columns for the dropped articles. A model that translates these sentences must learn that
alignment in its cross attention; the experiment ``cross-attention-alignment`` checks it does.
"""

from __future__ import annotations

import itertools

import torch

# Word classes of the source sentence, and each target word's source position.
SOURCE_ROLES = ("det", "adj", "noun", "verb", "det", "adj", "noun")
TARGET_ROLES = ("noun", "adj", "verb", "noun", "adj")
ALIGNMENT = (2, 1, 3, 6, 5)
ARTICLES = ("the", "a")
LEXICON = {
    "adj": {"red": "rouge", "big": "grand", "old": "vieux", "small": "petit"},
    "noun": {"cat": "chat", "dog": "chien", "bird": "oiseau", "fish": "poisson"},
    "verb": {"sees": "voit", "eats": "mange", "likes": "aime", "follows": "suit"},
}
START = "<s>"

SOURCE_WORDS = (*ARTICLES, *(w for role in LEXICON.values() for w in role))
TARGET_WORDS = (START, *(w for role in LEXICON.values() for w in role.values()))
SOURCE_ID = {w: i for i, w in enumerate(SOURCE_WORDS)}
TARGET_ID = {w: i for i, w in enumerate(TARGET_WORDS)}
TRANSLATION = {src: tgt for role in LEXICON.values() for src, tgt in role.items()}
START_ID = TARGET_ID[START]


def translate_words(source: list[str] | tuple[str, ...]) -> list[str]:
    """The translation of one source sentence, by the lexicon and the alignment."""
    if len(source) != len(SOURCE_ROLES):
        raise ValueError(f"source: expected {len(SOURCE_ROLES)} words, got {len(source)}")
    for position, (word, role) in enumerate(zip(source, SOURCE_ROLES, strict=True)):
        known = ARTICLES if role == "det" else tuple(LEXICON[role])
        if word not in known:
            raise ValueError(
                f"source: word {position} must be a {role} ({', '.join(known)}), got {word!r}"
            )
    return [TRANSLATION[source[i]] for i in ALIGNMENT]


def all_sentences() -> list[tuple[str, ...]]:
    """Every source sentence of the toy language (2 · 4 · 4 · 4 · 2 · 4 · 4 = 4096)."""
    choices = [ARTICLES if role == "det" else tuple(LEXICON[role]) for role in SOURCE_ROLES]
    return list(itertools.product(*choices))


def encode_pairs(sentences) -> tuple[torch.Tensor, torch.Tensor]:
    """Source ids ``(n, 7)`` and target ids ``(n, 5)`` of ``sentences``."""
    src = torch.tensor([[SOURCE_ID[w] for w in s] for s in sentences], dtype=torch.long)
    tgt = torch.tensor(
        [[TARGET_ID[w] for w in translate_words(s)] for s in sentences], dtype=torch.long
    )
    return src.reshape(-1, len(SOURCE_ROLES)), tgt.reshape(-1, len(TARGET_ROLES))


def split_pairs(
    held_out: float, generator: torch.Generator
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Every sentence pair, shuffled and split into training and held-out pairs: the held-out
    sentences are never seen in training, so translating them needs the alignment, not memory."""
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out: expected a fraction in (0, 1), got {held_out!r}")
    src, tgt = encode_pairs(all_sentences())
    order = torch.randperm(src.shape[0], generator=generator)
    cut = src.shape[0] - max(1, round(held_out * src.shape[0]))
    train, test = order[:cut], order[cut:]
    return (src[train], tgt[train]), (src[test], tgt[test])


def decoder_input(tgt: torch.Tensor) -> torch.Tensor:
    """The target shifted right behind the start token: what the decoder reads at each step."""
    start = torch.full((tgt.shape[0], 1), START_ID, dtype=tgt.dtype, device=tgt.device)
    return torch.cat([start, tgt[:, :-1]], dim=1)


__all__ = [
    "ALIGNMENT",
    "SOURCE_ROLES",
    "SOURCE_WORDS",
    "START_ID",
    "TARGET_ROLES",
    "TARGET_WORDS",
    "all_sentences",
    "decoder_input",
    "encode_pairs",
    "split_pairs",
    "translate_words",
]
