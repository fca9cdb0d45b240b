"""Fitting the router's thresholds on validation probabilities (synthetic, so every number is known)."""

from __future__ import annotations

import numpy as np
import pytest

from training.thresholds import CLARIFY_SECOND_MIN, fit_thresholds


def rows(*specs: tuple[int, tuple[float, ...], int]) -> tuple[np.ndarray, np.ndarray]:
    """(count, probabilities, gold index) -> stacked probabilities and gold labels."""
    probs = np.concatenate([np.tile(np.array(p), (n, 1)) for n, p, _ in specs])
    gold = np.concatenate([np.full(n, g) for n, _, g in specs])
    return probs, gold


def test_answer_threshold_caps_wrong_confident_answers() -> None:
    # 100 confident and right; 10 at 0.6 and wrong; 30 at 0.7 and right.
    probs, gold = rows((100, (0.9, 0.05, 0.03, 0.02), 0), (10, (0.6, 0.3, 0.05, 0.05), 1),
                       (30, (0.7, 0.2, 0.05, 0.05), 0))
    t = fit_thresholds(probs, gold)
    # Answering at 0.6 would make 10 of 140 answers wrong (7%); 0.7 makes none.
    assert t["answer_min"] == 0.7


def test_clarify_pair_threshold_is_fitted_on_the_unanswered() -> None:
    probs, gold = rows((100, (0.9, 0.04, 0.03, 0.02, 0.01), 0),
                       # unsure, and the right intent is second: a good clarify question
                       (40, (0.45, 0.35, 0.1, 0.06, 0.04), 1),
                       # unsure, and the right intent is in neither of the top two (pair mass 0.52)
                       (60, (0.3, 0.22, 0.18, 0.16, 0.14), 4))
    t = fit_thresholds(probs, gold)
    assert t["answer_min"] == 0.9
    # Pairs with 0.8 of the mass hold the right intent 40/40 times; adding the 0.52 ones makes it 40/100,
    # below CLARIFY_MIN_HIT, so the bar stops at 0.8.
    assert t["clarify_pair_min"] == pytest.approx(0.8)
    assert t["clarify_min"] == CLARIFY_SECOND_MIN


def test_clarify_pair_threshold_never_exceeds_answer_min() -> None:
    # Nothing left unanswered is a good pair: the threshold falls back to answer_min.
    probs, gold = rows((100, (0.9, 0.05, 0.03, 0.02), 0), (20, (0.4, 0.3, 0.2, 0.1), 3))
    assert fit_thresholds(probs, gold)["answer_min"] == 0.9
    t = fit_thresholds(probs, gold)
    assert t["clarify_pair_min"] == t["answer_min"]
