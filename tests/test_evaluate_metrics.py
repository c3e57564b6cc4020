"""Retrieval and classification metrics against hand-computed values."""

import numpy as np
import pytest

from audiolm_pt.evaluate import metrics
from audiolm_pt.evaluate.retrieval import ranked_examples


def test_retrieval_hand_computed_with_ties():
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1],  # relevant item 2 ties with item 1: ranked third
            [0.2, 0.8, 0.3, 0.8],  # relevant {0, 3}: order 1, 3, 2, 0 -> hits at 2 and 4
            [1.0, 0.0, 0.0, 0.0],  # relevant item 0 first
        ]
    )
    relevant = np.zeros((3, 4), bool)
    relevant[0, 2] = relevant[1, 0] = relevant[1, 3] = relevant[2, 0] = True
    out = metrics.retrieval_metrics(scores, relevant, ks=(1, 2, 3))
    assert out["R@1"] == pytest.approx(1 / 3)
    assert out["R@2"] == pytest.approx(2 / 3)
    assert out["R@3"] == pytest.approx(1.0)
    # AP: 1/3; (1/2 + 2/4) / 2; 1
    assert out["mAP@10"] == pytest.approx((1 / 3 + 0.5 + 1.0) / 3)


def test_constant_scores_get_no_credit_for_ties():
    out = metrics.retrieval_metrics(np.zeros((4, 4)), np.eye(4, dtype=bool), ks=(1, 4))
    assert out["R@1"] == 0.0
    assert out["R@4"] == 1.0
    assert out["mAP@10"] == pytest.approx(0.25)


def test_map_at_k_truncates_and_normalises_by_min_relevant():
    n = 14
    scores = -np.arange(n, dtype=float)[None]  # item i ranked i-th
    relevant = np.zeros((1, n), bool)
    relevant[0, [1, 11]] = True  # second hit beyond the top 10
    out = metrics.retrieval_metrics(scores, relevant)
    assert out["mAP@10"] == pytest.approx((1 / 2) / 2)
    many = np.zeros((1, n), bool)
    many[0, :12] = True  # 12 relevant, all on top: AP@10 = 10 / min(12, 10) = 1
    assert metrics.retrieval_metrics(scores, many)["mAP@10"] == pytest.approx(1.0)


def test_directions_use_caption_ownership():
    caption_clip = np.array([0, 0, 1, 2])
    sim = np.array(
        [
            [0.9, 0.1, 0.0],
            [0.1, 0.9, 0.0],  # second caption of clip 0 prefers clip 1
            [0.0, 1.0, 0.2],
            [0.0, 0.1, 0.7],
        ]
    )
    t2a = metrics.text_to_audio(sim, caption_clip)
    assert t2a["R@1"] == pytest.approx(3 / 4)
    a2t = metrics.audio_to_text(sim.T, caption_clip)
    # clip 0: captions ranked 0 (rel), 1 (rel) -> AP 1; clip 1: caption 2 first (rel) -> 1;
    # clip 2: caption 3 first -> 1
    assert a2t["R@1"] == 1.0
    assert a2t["mAP@10"] == pytest.approx(1.0)


def test_query_without_relevant_item_is_an_error():
    with pytest.raises(ValueError, match="no relevant"):
        metrics.retrieval_metrics(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 0, 0]], bool))


def test_accuracy_and_map_hand_computed():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]])
    assert metrics.accuracy(scores, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    targets = np.array([[1, 0], [0, 1], [1, 1]])
    # class 0: .9 (+), .8 (-), .1 (+) -> AP (1 + 2/3) / 2; class 1: .9 (+), .2 (+) -> AP 1
    expected = ((1 + 2 / 3) / 2 + 1.0) / 2
    assert metrics.mean_average_precision(scores, targets) == pytest.approx(expected)


def test_confusion_counts_hand_computed():
    scores = np.array(
        [
            [0.9, 0.1, 0.0],  # true 0 -> 0
            [0.2, 0.7, 0.1],  # true 0 -> 1
            [0.5, 0.5, 0.0],  # true 1 -> 0 (tie: first maximum, as accuracy)
            [0.0, 0.1, 0.8],  # true 2 -> 2
            [0.1, 0.0, 0.3],  # true 2 -> 2
        ]
    )
    targets = np.array([0, 0, 1, 2, 2])
    counts = metrics.confusion_counts(scores, targets)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [1, 0, 0], [0, 0, 2]])
    assert np.trace(counts) / len(targets) == metrics.accuracy(scores, targets)
    # a class never true nor predicted still has its row and column
    wide = np.concatenate([scores, np.full((5, 1), -1.0)], axis=1)
    assert metrics.confusion_counts(wide, targets).shape == (4, 4)


def test_ranked_examples_hand_computed():
    scores = np.array(
        [
            [0.9, 0.5, 0.5, 0.1],  # relevant 2 ties with 1: ranked after it, third
            [0.2, 0.8, 0.3, 0.8],  # relevant {0, 3}: order 1, 3, 2, 0
            [0.0, 0.1, 0.2, 0.3],  # relevant 0 ranked last
        ]
    )
    relevant = np.zeros((3, 4), bool)
    relevant[0, 2] = relevant[1, 0] = relevant[1, 3] = relevant[2, 0] = True
    out = ranked_examples(scores, relevant, num_queries=3, top_k=2)
    assert [e["query"] for e in out] == [0, 1, 2]
    assert [[t["index"] for t in e["top"]] for e in out] == [[0, 1], [1, 3], [3, 2]]
    assert [e["rank"] for e in out] == [3, 2, 4]
    assert [e["hit"] for e in out] == [False, True, False]
    assert out[1]["top"][1] == {"index": 3, "score": 0.8, "relevant": True}
    # fewer queries than rows: spread over the rows, first and last included
    assert [e["query"] for e in ranked_examples(scores, relevant, 2, 1)] == [0, 2]
