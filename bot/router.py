"""The routing decision: answer, clarify, hand over, or escalate. Plain functions, no Slack.

Order of precedence, and why:
1. nothing to classify  -> prompt (ask for a question)
2. clearly upset        -> escalate (a person, with priority, whatever the topic)
3. asked for a human / an intent flagged ``handoff`` -> handoff
4. confident and clearly ahead of the runner-up -> answer
5. the top two together usually hold the right intent -> clarify (let the customer choose)
6. otherwise -> handoff (low confidence, probably out of scope)
Thresholds are fitted per model at training time (``training.thresholds``) and
stored with it; each decision records which rule fired and the numbers behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.knowledge import KnowledgeBase
from bot.normalize import Normalized
from models.runtime import Prediction

ANSWER, CLARIFY, HANDOFF, ESCALATE, PROMPT = "answer", "clarify", "handoff", "escalate", "prompt"
DEFAULT_THRESHOLDS = {"answer_min": 0.5, "clarify_margin": 0.1, "clarify_min": 0.15, "escalate_negative": 0.85}
_ASKS_FOR_HUMAN = re.compile(
    r"\b(talk|speak|chat|connect|transfer|put me through)\b.{0,25}\b(human|person|agent|someone|somebody|"
    r"representative|operator|manager|supervisor)\b|\b(real|live) (person|human|agent)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    decision: str
    reason: str  # a key of bot.messages.REASONS
    detail: str  # the numbers behind the decision, for logs and agents
    intent: str | None = None
    confidence: float | None = None
    candidates: tuple[str, ...] = ()
    priority: bool = False
    # A handoff or escalation whose intent is known with confidence: the customer also gets its answer while they
    # wait (an account-hacked message must still get "reset your password now"; a broken vase, the returns steps).
    with_answer: bool = False


def route(message: Normalized, prediction: Prediction | None, kb: KnowledgeBase,
          thresholds: dict[str, float] | None = None) -> Route:
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    if message.empty or prediction is None:
        return Route(PROMPT, "empty", "no words to classify")
    top = prediction.intents[0]
    second = prediction.intents[1] if len(prediction.intents) > 1 else None
    p1, p2 = top.probability, second.probability if second else 0.0
    negative = prediction.sentiment_probs.get("negative", 0.0)
    numbers = f"top {top.intent} {p1:.2f}" + (f", second {second.intent} {p2:.2f}" if second else "")
    confident = p1 >= t["answer_min"]
    clear = confident and p1 - p2 >= t["clarify_margin"]  # sure, and clear of the runner-up
    known = clear and top.intent in kb.intents
    if negative >= t["escalate_negative"]:
        return Route(ESCALATE, "negative_sentiment", f"p(negative) {negative:.2f} >= {t['escalate_negative']:.2f}; "
                     f"{numbers}", top.intent, p1, priority=True, with_answer=known)
    if _ASKS_FOR_HUMAN.search(message.text):
        return Route(HANDOFF, "asked_for_human", f"asked for a person in words; {numbers}", top.intent, p1,
                     with_answer=known)
    if confident and top.intent in kb.intents and kb.intents[top.intent].handoff:
        return Route(HANDOFF, "always_handoff", f"intent {top.intent} always hands over; {numbers}", top.intent, p1,
                     with_answer=True)
    if clear:
        if top.intent not in kb.intents:
            return Route(HANDOFF, "no_answer", f"{top.intent} is not in the knowledge base; {numbers}",
                         top.intent, p1)
        return Route(ANSWER, "confident", f"{numbers}; >= {t['answer_min']:.2f}, margin >= "
                     f"{t['clarify_margin']:.2f}", top.intent, p1)
    # Models fitted before clarify_pair_min existed offer a choice only when the pair clears answer_min.
    pair_min = t.get("clarify_pair_min", t["answer_min"])
    offerable = second is not None and all(i in kb.intents and not kb.intents[i].small_talk
                                           for i in (top.intent, second.intent))
    if second and p1 + p2 >= pair_min and p2 >= t["clarify_min"] and offerable:
        # Each cause that holds, said as it is: the two are close, or the top one alone is too unsure (the pair is not).
        why = [f"margin {p1 - p2:.2f} < {t['clarify_margin']:.2f}"] if p1 - p2 < t["clarify_margin"] else []
        if not confident:
            why.append(f"top below answer_min {t['answer_min']:.2f}, the two together {p1 + p2:.2f} >= {pair_min:.2f}")
        return Route(CLARIFY, "close_call", "; ".join([numbers, *why]), top.intent, p1,
                     candidates=(top.intent, second.intent))
    return Route(HANDOFF, "low_confidence", f"{numbers}; below answer_min {t['answer_min']:.2f}", top.intent, p1)
