"""The bot without Slack: a message in, a decision and a reply out, everything stored.

Slack listeners and the terminal chat both call this module, so they behave the
same. ``handle_many`` classifies a batch of messages in one onnxruntime call,
which is how the Slack app keeps up with bursts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot import messages
from bot.knowledge import KnowledgeBase
from bot.normalize import Normalized, normalize
from bot.router import ANSWER, CLARIFY, ESCALATE, HANDOFF, PROMPT, Route, route
from bot.store import NEW_TOPIC, Store
from models.errors import CsbotError
from models.runtime import LiveClassifier, Prediction

SENTIMENTS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Incoming:
    text: str
    user: str
    channel: str = "terminal"
    thread_ts: str | None = None
    ts: str | None = None
    source: str = "terminal"
    conversation_id: int | None = None

    def __post_init__(self) -> None:
        # A lone surrogate (undecodable terminal bytes, a broken client) cannot be tokenised or
        # stored in SQLite; one such message must not fail its whole batch.
        object.__setattr__(self, "text", valid_text(self.text))


def valid_text(text: str) -> str:
    """``text`` with anything that is not valid Unicode replaced by U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # only lone surrogates fail to encode
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


@dataclass(frozen=True)
class Reply:
    kind: str
    text: str
    intent: str | None = None
    context: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (intent, customer-facing label) for a clarify question
    rateable: bool = False


@dataclass(frozen=True)
class Outcome:
    conversation_id: int
    message_id: int
    reply_id: int
    route: Route
    reply: Reply
    prediction: Prediction | None
    normalized: Normalized
    latency_ms: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


class Bot:
    def __init__(self, kb: KnowledgeBase, store: Store, classifier: LiveClassifier, max_chars: int = 2000,
                 bot_user_id: str | None = None) -> None:
        self.kb = kb
        self.store = store
        self.classifier = classifier
        self.max_chars = max_chars
        self.bot_user_id = bot_user_id

    def handle(self, incoming: Incoming) -> Outcome:
        return self.handle_many([incoming])[0]

    def handle_many(self, batch: Sequence[Incoming]) -> list[Outcome]:
        started = time.perf_counter()
        model = self.classifier.current  # one model for the whole batch, even during a swap
        normalized = [normalize(m.text, self.max_chars, self.bot_user_id) for m in batch]
        to_classify = [i for i, n in enumerate(normalized) if not n.empty]
        predictions: list[Prediction | None] = [None] * len(batch)
        for i, p in zip(to_classify, model.predict([normalized[i].text for i in to_classify]), strict=True):
            predictions[i] = p
        latency = (time.perf_counter() - started) * 1000 / max(1, len(batch))
        thresholds = model.card.thresholds_for(model.variant)  # fitted on what this variant outputs
        # One knowledge base for the whole batch too: an edited file is re-read while the bot runs, and a decision
        # for an intent the new file dropped must not meet that file when its reply is written.
        kb = self.kb
        # All the batch's rows or none: a caller that retries each message after a failed write (the Slack
        # pipeline does) must not store the ones before the failure twice.
        with self.store.transaction():
            return [self._record(m, n, p, route(n, p, kb, thresholds), latency, kb)
                    for m, n, p in zip(batch, normalized, predictions, strict=True)]

    def _record(self, incoming: Incoming, normalized: Normalized, prediction: Prediction | None, decision: Route,
                latency_ms: float, kb: KnowledgeBase) -> Outcome:
        conversation_id = incoming.conversation_id or self.store.get_or_create_conversation(
            incoming.channel, incoming.thread_ts, incoming.user, incoming.source)
        second = prediction.intents[1] if prediction and len(prediction.intents) > 1 else None
        message_id = self.store.log_message(
            conversation_id, user=incoming.user, text=incoming.text, normalized_text=normalized.text,
            decision=decision.decision, reason=f"{decision.reason}: {decision.detail}", intent=decision.intent,
            confidence=decision.confidence, second_intent=second.intent if second else None,
            second_confidence=second.probability if second else None,
            sentiment=prediction.sentiment if prediction else None,
            sentiment_score=prediction.sentiment_probs.get("negative") if prediction else None,
            model_version=prediction.model_version if prediction else None, latency_ms=latency_ms, ts=incoming.ts)
        reply = self.compose(decision, normalized, kb)
        reply_id = self.store.log_reply(message_id, text=reply.text, kind=reply.kind, intent=reply.intent,
                                        channel=incoming.channel)
        return Outcome(conversation_id, message_id, reply_id, decision, reply, prediction, normalized, latency_ms)

    def compose(self, decision: Route, normalized: Normalized, kb: KnowledgeBase) -> Reply:
        note = f"\n{messages.TRUNCATED_NOTE}" if normalized.truncated else ""
        reason = messages.REASONS.get(decision.reason, decision.reason)
        if decision.decision == PROMPT:
            return Reply(PROMPT, messages.EMPTY_PROMPT)
        if decision.decision in (ESCALATE, HANDOFF):
            text = kb.company.escalation_text if decision.decision == ESCALATE else kb.company.handoff_text
            if decision.with_answer and decision.intent in kb.intents:  # what they can do while they wait
                text = answer_text(kb, decision.intent) + "\n\n" + text
            return Reply(decision.decision, text + note, decision.intent,
                         messages.HANDOFF_CONTEXT.format(reason=reason))
        if decision.decision == CLARIFY:
            choices = tuple((name, kb.intents[name].label) for name in decision.candidates)
            return Reply(CLARIFY, messages.CLARIFY_QUESTION + note, decision.intent, messages.NOT_SURE_CONTEXT,
                         choices=choices)
        return answer(kb, decision.intent or "", decision.confidence, note)

    def choose(self, message_id: int, intent: str, user: str, channel: str | None = None) -> tuple[int, Reply]:
        """A clarify click: log the customer's choice as a label and answer that intent."""
        self._known_intent(intent)
        self.store.record_label(message_id, intent=intent, source="clarify", user=user)
        reply = answer(self.kb, intent, None)
        reply_id = self.store.log_reply(message_id, text=reply.text, kind=ANSWER, intent=intent, channel=channel)
        return reply_id, reply

    def rate(self, reply_id: int, user: str, rating: int, source: str) -> int:
        return self.store.record_feedback(reply_id, user, rating, source)

    def correct(self, message_id: int, agent: str, intent: str | None, sentiment: str | None = None,
                note: str | None = None) -> int:
        if intent is not None and intent != NEW_TOPIC:
            self._known_intent(intent)
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise CsbotError(messages.BAD_SENTIMENT.format(sentiment=sentiment),
                             messages.BAD_SENTIMENT_FIX.format(sentiments=", ".join(SENTIMENTS)))
        return self.store.record_correction(message_id, agent=agent, correct_intent=intent,
                                            correct_sentiment=sentiment, note=note)

    def _known_intent(self, intent: str) -> None:
        if intent not in self.kb.intents:
            known = ", ".join(sorted(self.kb.intents))
            raise CsbotError(messages.UNKNOWN_INTENT.format(intent=intent, known=known), messages.UNKNOWN_INTENT_FIX)


def answer(kb: KnowledgeBase, intent: str, confidence: float | None, note: str = "") -> Reply:
    context = messages.CONFIDENT_CONTEXT.format(intent=intent, confidence=confidence) if confidence else (
        messages.REASONS["clarified"])
    return Reply(ANSWER, answer_text(kb, intent) + note, intent, context, rateable=True)


def answer_text(kb: KnowledgeBase, intent: str) -> str:
    """The knowledge base's answer for ``intent``, with its links and follow-up topics."""
    entry = kb.intent(intent)
    parts = [entry.answer.strip()]
    if entry.links:
        parts.append(messages.LINKS.format(links=" · ".join(f"<{x.url}|{x.title}>" for x in entry.links)))
    if entry.follow_ups:
        topics = ", ".join(kb.intents[f].label for f in entry.follow_ups if f in kb.intents)
        parts.append(messages.FOLLOW_UPS.format(topics=topics))
    return "\n".join(parts)
