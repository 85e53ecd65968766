"""The toy translation task: its lexicon, alignment and splits."""

import pytest
import torch

from attnlab.data import toy_translation as toy


def test_an_example_translates_by_the_alignment():
    source = ["the", "red", "cat", "sees", "a", "small", "dog"]
    assert toy.translate_words(source) == ["chat", "rouge", "voit", "chien", "petit"]
    # each target word comes from the source position the alignment names
    for t, s in enumerate(toy.ALIGNMENT):
        assert toy.SOURCE_ROLES[s] == toy.TARGET_ROLES[t]
    assert 0 not in toy.ALIGNMENT and 4 not in toy.ALIGNMENT  # the articles are dropped


def test_every_sentence_once_and_the_split_is_disjoint():
    sentences = toy.all_sentences()
    assert len(sentences) == len(set(sentences)) == 2 * 4 * 4 * 4 * 2 * 4 * 4
    (train_src, train_tgt), (test_src, test_tgt) = toy.split_pairs(
        0.2, torch.Generator().manual_seed(0)
    )
    assert test_src.shape == (819, 7) and train_src.shape == (4096 - 819, 7)
    assert train_tgt.shape == (4096 - 819, 5) and test_tgt.shape == (819, 5)
    seen = {tuple(row) for row in train_src.tolist()}
    assert not any(tuple(row) in seen for row in test_src.tolist())
    # the ids decode back to a sentence and its translation
    words = [toy.SOURCE_WORDS[i] for i in test_src[0].tolist()]
    assert [toy.TARGET_WORDS[i] for i in test_tgt[0].tolist()] == toy.translate_words(words)


def test_decoder_input_is_the_target_shifted_behind_the_start():
    tgt = torch.tensor([[3, 4, 5, 6, 7]])
    assert toy.decoder_input(tgt).tolist() == [[toy.START_ID, 3, 4, 5, 6]]
    assert toy.TARGET_WORDS[toy.START_ID] == "<s>"


def test_bad_input():
    with pytest.raises(ValueError, match="source: expected 7 words, got 2"):
        toy.translate_words(["the", "cat"])
    with pytest.raises(ValueError, match=r"source: word 2 must be a noun .*got 'red'"):
        toy.translate_words(["the", "red", "red", "sees", "a", "small", "dog"])
    with pytest.raises(ValueError, match=r"held_out: expected a fraction in \(0, 1\)"):
        toy.split_pairs(1.0, torch.Generator())
