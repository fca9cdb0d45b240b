"""Fitting the router's confidence thresholds on held-out data.

The router answers when the top intent's probability clears ``answer_min`` and leads
the runner-up by ``clarify_margin``; it offers the top two when together they clear
``clarify_pair_min`` (``answer_min`` for models fitted before it existed); otherwise it
hands over. On human-labelled validation predictions:
- ``answer_min`` starts at the confidence below which only ``max_correct_rejected`` (1%)
  of the right answers lie, and is raised until at most ``max_wrong_answers`` (3%) of all
  the messages would get a wrong answer;
- ``clarify_pair_min`` is the lowest top-two mass at which the two choices offered to the
  unanswered messages hold the right intent at least ``CLARIFY_MIN_HIT`` (half) of the time.
"""

from __future__ import annotations

import numpy as np

DEFAULTS = {"answer_min": 0.5, "clarify_margin": 0.1, "clarify_min": 0.15, "escalate_negative": 0.85}
# Below this the top intent is a guess, whatever the validation split says.
ANSWER_FLOOR = 0.25
# The share of validation messages that may get a wrong answer. Counted over all messages, not
# over the answers, because that is what a support team sees (and what the learning-loop issue
# measures): a weak model may answer fewer messages at a higher error rate among its answers.
# It is the expected share: fitted on ~450 held-out messages, the realised share on new traffic
# averages 2.8% and exceeds 3% on about a third of fits, up to ~4% one time in ten
# (benchmarks/answer_budget.py --resample; benchmarks/RESULTS.md).
MAX_WRONG_ANSWERS = 0.03
# A clarify question must offer the right intent among its two choices at least this often.
# The alternative is a handoff, so even a coin flip is worth offering: half of those customers get
# an instant answer, the rest click "Neither, talk to a human" and reach the person they would
# have reached anyway, and every click is a hard, human-chosen label for the nightly retrain.
# Measured in the Banking77 learning-loop simulation: 0.5 instead of 0.8 turned ~40 handoffs a day
# into clarify questions and lifted the model 1.3 points by night 2 (benchmarks/RESULTS.md, run 3).
CLARIFY_MIN_HIT = 0.5
# The runner-up must have at least this probability to be offered as a choice.
CLARIFY_SECOND_MIN = 0.05
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
        # threshold until at most ``max_wrong_answers`` of all the messages would get a wrong answer.
        out["answer_min"] = max(out["answer_min"], _wrong_budget_threshold(p1, correct, max_wrong_answers))
        accepted = correct & (p1 >= out["answer_min"])
        if accepted.any():
            out["clarify_margin"] = float(np.clip(np.quantile((p1 - p2)[accepted], max_correct_rejected), 0.0, 0.5))
        if intent_probs.shape[1] > 1:
            out.update(_clarify_thresholds(intent_probs, gold, p1, p2, out))
    if sentiment_probs is not None and gold_sentiment is not None and (gold_sentiment == 0).any():
        out["escalate_negative"] = max(ESCALATE_FLOOR, _negative_threshold(sentiment_probs[:, 0], gold_sentiment == 0))
    return out


def _clarify_thresholds(intent_probs: np.ndarray, gold: np.ndarray, p1: np.ndarray, p2: np.ndarray,
                        fitted: dict[str, float]) -> dict[str, float]:
    """When the bot will not answer, offer the top two if such pairs hold the right intent often enough.

    Fitted on the validation messages the router would *not* answer: ``clarify_pair_min`` is the
    lowest top-two probability mass above which the right intent is among the two choices for at
    least CLARIFY_MIN_HIT of them. Every clarify click is also a label the nightly retrain learns
    from, and a hard one: the model was unsure.
    """
    answered = (p1 >= fitted["answer_min"]) & (p1 - p2 >= fitted["clarify_margin"])
    top2 = np.argsort(-intent_probs, axis=1)[:, :2]
    hit = (top2 == gold[:, None]).any(axis=1)
    # Only the pairs the router would offer: it never offers a runner-up below CLARIFY_SECOND_MIN.
    offered = ~answered & (p2 >= CLARIFY_SECOND_MIN)
    pair, unsure = (p1 + p2)[offered], hit[offered]
    if len(pair) == 0:
        return {}
    threshold = max(ANSWER_FLOOR, _precision_threshold(pair, unsure, 1 - CLARIFY_MIN_HIT))
    return {"clarify_pair_min": float(min(threshold, fitted["answer_min"])), "clarify_min": CLARIFY_SECOND_MIN}


def _wrong_budget_threshold(p1: np.ndarray, correct: np.ndarray, max_wrong: float) -> float:
    """The lowest confidence at which at most ``max_wrong`` of all rows would be answered wrongly.

    Counting (wrong + 1) / (rows + 1) keeps a tiny validation split from spending its budget on
    zero observed mistakes.
    """
    order = np.argsort(-p1)
    scores = p1[order]
    wrong = np.cumsum(~correct[order])
    cut = np.append(scores[:-1] > scores[1:], True)  # ties are accepted together
    ok = np.nonzero(((wrong + 1) / (len(order) + 1) <= max_wrong) & cut)[0]
    if len(ok) == 0:
        return 0.95
    return float(min(0.95, scores[ok[-1]]))


def _precision_threshold(p1: np.ndarray, correct: np.ndarray, max_wrong: float) -> float:
    """The lowest confidence above which the (smoothed) share of wrong answers is <= ``max_wrong``.

    The +1 in the denominator keeps a tiny validation split from claiming perfection.
    """
    order = np.argsort(-p1)
    scores = p1[order]
    wrong = np.cumsum(~correct[order])
    share = wrong / (np.arange(1, len(order) + 1) + 1)
    # A threshold accepts every row with the same score, so only the end of a run of ties is a cut.
    cut = np.append(scores[:-1] > scores[1:], True)
    ok = np.nonzero((share <= max_wrong) & cut)[0]
    if len(ok) == 0:
        return 0.95
    return float(min(0.95, scores[ok[-1]]))


def _negative_threshold(p_negative: np.ndarray, is_negative: np.ndarray, min_precision: float = 0.9) -> float:
    """The lowest threshold whose precision for 'negative' is at least ``min_precision``.

    Escalation pulls in a senior agent, so a false alarm costs more than a miss.
    """
    for threshold in np.linspace(0.5, 0.99, 50):
        flagged = p_negative >= threshold
        if flagged.sum() >= 3 and is_negative[flagged].mean() >= min_precision:
            return float(round(threshold, 3))
    return DEFAULTS["escalate_negative"]
