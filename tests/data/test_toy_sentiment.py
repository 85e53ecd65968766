"""The toy review language and BERT-style masking."""

import pytest
import torch

from attnlab.data import toy_sentiment as toy
from attnlab.data.batches import IGNORE, mask_tokens


def test_labels_follow_the_adjective_and_not():
    assert toy.polarity("superb", negated=False) == 1 and toy.polarity("superb", True) == 0
    assert toy.polarity("dull", negated=False) == 0 and toy.polarity("dull", True) == 1
    assert set(toy.SEEN).isdisjoint(toy.UNSEEN)
    assert sorted(toy.SEEN + toy.UNSEEN) == sorted(toy.POSITIVE + toy.NEGATIVE)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        words, label = toy.review(g, reaction=True)
        adjective = next(w for w in words if w in toy.POSITIVE + toy.NEGATIVE)
        assert label == toy.polarity(adjective, "not" in words[: words.index(".")])
        reaction = tuple(words[words.index(".") + 1 :])
        assert reaction in toy.REACTIONS[label]  # the reaction agrees with the verdict


def test_labelled_sets_use_their_adjectives_and_encode_with_cls_and_padding():
    g = torch.Generator().manual_seed(1)
    ids, mask, labels = toy.labelled(300, g, toy.UNSEEN)
    assert ids.shape == mask.shape == (300, toy.MAX_LEN) and labels.shape == (300,)
    assert bool((ids[:, 0] == toy.CLS_ID).all()) and bool((mask == (ids != toy.PAD_ID)).all())
    words = {toy.WORDS[i] for i in ids.flatten().tolist()}
    assert words.isdisjoint(toy.SEEN) and "." not in words  # verdicts only
    assert 0.3 < float(labels.float().mean()) < 0.7
    assert toy.decode(ids[0]).startswith("<cls> ")


def test_encode_errors():
    with pytest.raises(ValueError, match=r"sentences: sentence 0 has unknown words \['zebra'\]"):
        toy.encode([["the", "zebra"]])
    with pytest.raises(ValueError, match="sentences: sentence 0 has 12 words, at most 11 fit"):
        toy.encode([["the"] * 12])
    with pytest.raises(ValueError, match="adjective: expected one of the lexicon's"):
        toy.polarity("purple", False)


def test_mask_tokens_rates_and_targets():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 50, (400, 30), generator=g)
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, :5] = False  # e.g. <cls> and padding
    inputs, targets = mask_tokens(ids, maskable, g, mask_id=2, vocab_size=50)
    chosen = targets != IGNORE
    assert not bool(chosen[:, :5].any()) and bool(chosen.any(dim=1).all())
    assert bool((targets[chosen] == ids[chosen]).all())
    assert bool((inputs[~chosen] == ids[~chosen]).all())
    rate = float(chosen[:, 5:].float().mean())
    assert 0.14 < rate < 0.17  # 15% (plus the one forced per row), 10,000 positions
    masked = float((inputs[chosen] == 2).float().mean())
    kept = float((inputs[chosen] == ids[chosen]).float().mean())
    assert 0.76 < masked < 0.84 and 0.07 < kept < 0.15  # 80% <mask>, 10% (+ 1/50) unchanged


def test_mask_tokens_errors():
    g = torch.Generator()
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"maskable: expected a bool tensor of shape \(2, 3\)"):
        mask_tokens(ids, torch.ones(2, 3), g, mask_id=1, vocab_size=4)
    with pytest.raises(ValueError, match="every row needs at least one position"):
        mask_tokens(ids, torch.zeros(2, 3, dtype=torch.bool), g, mask_id=1, vocab_size=4)
    with pytest.raises(ValueError, match=r"rate: expected a number in \(0, 1\)"):
        mask_tokens(ids, torch.ones(2, 3, dtype=torch.bool), g, mask_id=1, vocab_size=4, rate=0)
