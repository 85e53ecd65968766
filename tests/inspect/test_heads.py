"""Head-type scores on constructed (T, T) patterns, against a loop-by-loop reference."""

import math

import numpy as np
import pytest

from attnlab.inspect import (
    MASS_SCORES,
    AttentionRecord,
    HeadScores,
    classify,
    head_scores,
    is_delimiter,
    pattern_scores,
    repeated_random_tokens,
)

T = 8


def one_hot_rows(columns) -> np.ndarray:
    """Row i puts all its mass on key ``columns[i]``."""
    pattern = np.zeros((len(columns), len(columns)))
    pattern[np.arange(len(columns)), columns] = 1.0
    return pattern


def test_pure_previous_token_pattern():
    scores = pattern_scores(one_hot_rows([0, *range(T - 1)]))
    assert scores["previous_token"] == 1.0 and scores["local"] == 1.0
    assert scores["self"] == scores["next_token"] == 0.0
    assert scores["sink"] == pytest.approx(1 / (T - 1))  # only row 1, whose previous is 0
    assert scores["distance"] == 1.0 and scores["entropy"] == 0.0
    assert "duplicate" not in scores  # needs token ids (or tokens) to find repeats


def test_pure_next_token_pattern_of_a_bidirectional_head():
    scores = pattern_scores(one_hot_rows([*range(1, T), T - 1]))
    assert scores["next_token"] == 1.0 and scores["previous_token"] == 0.0
    assert scores["local"] == pytest.approx(6 / 7)  # the last row attends to itself


def test_pure_diagonal_is_a_self_head():
    scores = pattern_scores(np.eye(T))
    assert scores["self"] == 1.0
    assert scores["previous_token"] == scores["sink"] == scores["local"] == 0.0
    assert scores["distance"] == 0.0


def test_all_on_first_token_is_a_sink():
    scores = pattern_scores(one_hot_rows([0] * T))
    assert scores["sink"] == 1.0
    assert scores["self"] == 0.0
    assert scores["previous_token"] == pytest.approx(1 / (T - 1))
    assert scores["distance"] == pytest.approx(np.mean(np.arange(1, T)))


def test_uniform_causal_rows_have_the_entropy_of_a_uniform_distribution():
    pattern = np.tril(np.ones((T, T)))
    pattern /= pattern.sum(1, keepdims=True)
    scores = pattern_scores(pattern)
    assert scores["entropy"] == pytest.approx(np.mean([math.log(i + 1) for i in range(1, T)]))
    assert scores["self"] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, T)]))


def test_induction_and_duplicate_on_a_repeated_sequence():
    ids = [5, 9, 2, 7, 5, 9, 2, 7]  # A B C D A B C D
    L = 4
    induction = one_hot_rows([0, 0, 0, 0, *[i - L + 1 for i in range(L, 2 * L)]])
    duplicate = one_hot_rows([0, 0, 0, 0, *[i - L for i in range(L, 2 * L)]])
    on_induction = pattern_scores(induction, token_ids=ids)
    on_duplicate = pattern_scores(duplicate, token_ids=ids)
    assert on_induction["induction"] == 1.0 and on_induction["duplicate"] == 0.0
    assert on_duplicate["duplicate"] == 1.0 and on_duplicate["induction"] == 0.0
    # both stripes lie far from the diagonal: neither is a previous-token head
    assert on_induction["previous_token"] < 0.2 and on_duplicate["previous_token"] < 0.2


def test_delimiter_heads_attend_to_special_tokens_and_punctuation():
    tokens = ["[CLS]", "the", " bank", ",", " river", ".", "[SEP]"]
    assert [is_delimiter(t) for t in tokens] == [True, False, False, True, False, True, True]
    pattern = one_hot_rows([6] * 6 + [5])  # everything to [SEP]; [SEP] itself to '.'
    scores = pattern_scores(pattern, tokens=tokens)
    assert scores["delimiter"] == 1.0 and scores["sink"] == 0.0


def reference_scores(W: np.ndarray, ids: list[int]) -> dict[str, float]:
    """The docstring definitions of target_patterns, one query row at a time."""
    n = len(ids)
    sums: dict[str, list[float]] = {name: [] for name in ("previous_token", "self", "sink")}
    sums.update(next_token=[], local=[], duplicate=[], induction=[], distance=[], entropy=[])
    for i in range(1, n):
        row = W[i]
        sums["previous_token"].append(row[i - 1])
        if i <= n - 2:
            sums["next_token"].append(row[i + 1])
        sums["self"].append(row[i])
        sums["sink"].append(row[0])
        sums["local"].append(sum(row[j] for j in range(n) if 1 <= abs(i - j) <= 2))
        sums["distance"].append(sum(row[j] * abs(i - j) for j in range(n)))
        sums["entropy"].append(-sum(p * math.log(p) for p in row if p > 0))
        earlier = [j for j in range(i) if ids[j] == ids[i]]
        if earlier:
            sums["duplicate"].append(sum(row[j] for j in earlier))
        after = sorted({j + 1 for j in earlier if j + 1 < i})
        if after:
            sums["induction"].append(sum(row[j] for j in after))
    return {name: float(np.mean(v)) if v else math.nan for name, v in sums.items()}


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_scores_equal_the_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n = 12
    ids = rng.integers(0, 4, size=n).tolist()  # small vocabulary: many repeats
    W = rng.dirichlet(np.ones(n), size=(3, n)) * np.tril(np.ones((n, n)))
    W /= W.sum(-1, keepdims=True)  # (heads, T, T), causal rows
    got = pattern_scores(W, token_ids=ids)
    for h in range(3):
        want = reference_scores(W[h], ids)
        for name, value in want.items():
            assert got[name][h] == pytest.approx(value, abs=1e-12, nan_ok=True), name
    for name in MASS_SCORES:
        if name in got:
            assert np.all((got[name] >= 0) & (got[name] <= 1 + 1e-12))


def test_head_scores_and_classify_find_the_constructed_heads():
    ids = [3, 8, 1, 6, 3, 8, 1, 6]
    L = 4
    heads = [
        one_hot_rows([0, *range(T - 1)]),  # previous token
        one_hot_rows([0, 0, 0, 0, *[i - L + 1 for i in range(L, 2 * L)]]),  # induction
        np.eye(T),  # self
        one_hot_rows([0] * T),  # sink
    ]
    record = AttentionRecord(
        tokens=[str(i) for i in ids],
        weights=np.stack(heads)[None],
        model_name="constructed",
        causal=True,
        token_ids=ids,
    )
    scores = head_scores(record)
    assert isinstance(scores, HeadScores) and scores.shape == (1, 4)
    assert scores.best("previous_token")[:2] == (0, 0)
    assert scores.best("induction")[:2] == (0, 1)
    kinds = {(s.head, s.kind) for s in classify(scores)}
    assert {(0, "previous_token"), (1, "induction"), (2, "self"), (3, "sink")} <= kinds
    assert not any(kind == "local" for _, kind in kinds)  # the prev-token head is not "local"
    assert [row["head"] for row in scores.table("induction", top=2)] == [1, 0]
    assert classify(scores, threshold=1.0) != [] and classify(scores, {"sink": 1.1})
    with pytest.raises(ValueError, match="unknown kinds"):
        classify(scores, {"sinks": 0.5})
    with pytest.raises(ValueError, match="score"):
        scores.table("inductive")


def test_repeated_random_tokens_repeat_once_and_are_seeded():
    ids = repeated_random_tokens(1000, 20, seed=3)
    assert ids.shape == (40,) and (ids[:20] == ids[20:]).all()
    assert len(set(ids[:20].tolist())) == 20  # drawn without replacement
    assert (ids == repeated_random_tokens(1000, 20, seed=3)).all()
    assert not (ids == repeated_random_tokens(1000, 20, seed=4)).all()
    restricted = repeated_random_tokens(0, 5, seed=0, candidates=[7, 8, 9, 10, 11, 12])
    assert set(restricted.tolist()) <= {7, 8, 9, 10, 11, 12}
    with pytest.raises(ValueError, match="length"):
        repeated_random_tokens(10, 1, seed=0)


def test_bad_patterns_are_refused():
    with pytest.raises(ValueError, match=r"\(\.\.\., T, T\)"):
        pattern_scores(np.ones((3, 4)))
    with pytest.raises(TypeError, match="AttentionRecord"):
        head_scores(np.eye(3))
