"""Fitting the router's confidence thresholds on held-out data.

The router answers when the top intent's probability clears ``answer_min`` and leads
the runner-up by ``clarify_margin``; it offers the top two when together they clear
``answer_min``; otherwise it hands over. Both numbers are fitted on validation
predictions so that at most ``max_correct_rejected`` of the answers the model gets
right are turned away, which bounds the in-scope accuracy the router costs.
"""

from __future__ import annotations

import numpy as np

DEFAULTS = {"answer_min": 0.5, "clarify_margin": 0.1, "clarify_min": 0.15, "escalate_negative": 0.85}
# Below this the top intent is a guess, whatever the validation split says.
ANSWER_FLOOR = 0.25
# The share of confident answers that may be wrong on validation data.
MAX_WRONG_ANSWERS = 0.03
# Escalation is for strongly negative messages; a mildly annoyed "my mug arrived broken"
# (p(negative) around 0.6) should get the damaged-item answer, not a senior agent.
ESCALATE_FLOOR = 0.8


def fit_thresholds(intent_probs: np.ndarray, gold: np.ndarray, sentiment_probs: np.ndarray | None = None,
                   gold_sentiment: np.ndarray | None = None, max_correct_rejected: float = 0.01,
                   max_wrong_answers: float = MAX_WRONG_ANSWERS) -> dict[str, float]:
    """Return thresholds fitted on validation probabilities (rows) and gold label indices."""
    out = dict(DEFAULTS)
    if len(gold) == 0:
        return out
    order = np.sort(intent_probs, axis=1)[:, ::-1]
    p1, p2 = order[:, 0], order[:, 1] if order.shape[1] > 1 else np.zeros(len(order))
    correct = intent_probs.argmax(axis=1) == gold
    if correct.any():
        # The q-quantile of the confidence of correct predictions: rejecting below it
        # loses at most q of them.
        # With a small validation split the 1% quantile is just the least confident correct
        # example, so use at least the second-lowest one, and never go below ANSWER_FLOOR.
        q = min(1.0, max(max_correct_rejected, 2 / max(1, int(correct.sum()))))
        out["answer_min"] = float(np.clip(np.quantile(p1[correct], q), ANSWER_FLOOR, 0.95))
        # A support bot is judged by the wrong answers it gives with confidence: raise the
        # threshold until at most ``max_wrong_answers`` of the answers it would give are wrong.
        out["answer_min"] = max(out["answer_min"], _precision_threshold(p1, correct, max_wrong_answers))
        accepted = correct & (p1 >= out["answer_min"])
        if accepted.any():
            out["clarify_margin"] = float(np.clip(np.quantile((p1 - p2)[accepted], max_correct_rejected), 0.0, 0.5))
    if sentiment_probs is not None and gold_sentiment is not None and (gold_sentiment == 0).any():
        out["escalate_negative"] = max(ESCALATE_FLOOR, _negative_threshold(sentiment_probs[:, 0], gold_sentiment == 0))
    return out


def _precision_threshold(p1: np.ndarray, correct: np.ndarray, max_wrong: float) -> float:
    """The lowest confidence above which the (smoothed) share of wrong answers is <= ``max_wrong``.

    The +1 in the denominator keeps a tiny validation split from claiming perfection.
    """
    order = np.argsort(-p1)
    wrong = np.cumsum(~correct[order])
    share = wrong / (np.arange(1, len(order) + 1) + 1)
    ok = np.nonzero(share <= max_wrong)[0]
    if len(ok) == 0:
        return 0.95
    return float(min(0.95, p1[order][ok[-1]]))


def _negative_threshold(p_negative: np.ndarray, is_negative: np.ndarray, min_precision: float = 0.9) -> float:
    """The lowest threshold whose precision for 'negative' is at least ``min_precision``.

    Escalation pulls in a senior agent, so a false alarm costs more than a miss.
    """
    for threshold in np.linspace(0.5, 0.99, 50):
        flagged = p_negative >= threshold
        if flagged.sum() >= 3 and is_negative[flagged].mean() >= min_precision:
            return float(round(threshold, 3))
    return DEFAULTS["escalate_negative"]
