"""The store's learning signals: customers' votes, agents' corrections, clarify labels, the review queue.

``FeedbackMixin`` records everything a retrain learns from (👍/👎 votes, an agent's verdict on a
message, the intent a customer picked from a clarify prompt) and answers the two questions the
agents and admins ask of it: which messages still need a human look (``review_queue``) and how
much activity there was in a period (``feedback_counts``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.store_core import Row, StoreBase, _check, _insert, _scalar, iso, utcnow
from bot.store_messages import DECISIONS

FEEDBACK_SOURCES = ("button", "reaction", "terminal")
LABEL_SOURCES = ("clarify",)
NEW_TOPIC = "__new_topic__"  # correct_intent meaning "none of these / a new topic"
NEW_TOPIC_NAMES = ("new-topic", "new_topic", NEW_TOPIC)  # what agents type for it in the CLI and the chat


def typed_intent(name: str) -> str:
    """The intent an agent typed, with ``new-topic`` (any case) meaning NEW_TOPIC."""
    return NEW_TOPIC if name.lower() in NEW_TOPIC_NAMES else name


# What the review queue holds (for a message aliased ``m``): a 👎 or a handoff that no agent has corrected.
# ``csbot db purge`` keeps these too (store_retention), so one definition serves both.
AWAITING_REVIEW = """(NOT EXISTS (SELECT 1 FROM corrections c WHERE c.message_id = m.id)
    AND (m.decision IN ('handoff', 'escalate')
         OR EXISTS (SELECT 1 FROM replies r JOIN feedback f ON f.reply_id = r.id
                    WHERE r.message_id = m.id AND f.rating = -1)
         OR EXISTS (SELECT 1 FROM replies h WHERE h.message_id = m.id AND h.kind = 'handoff')))"""


class FeedbackMixin(StoreBase):
    def record_feedback(self, reply_id: int, user: str, rating: int, source: str) -> int:
        """Set ``user``'s vote on a reply; voting again replaces the earlier vote."""
        if isinstance(rating, bool) or rating not in (1, -1):
            raise ValueError(f"invalid rating {rating!r}: expected +1 (helpful) or -1 (not helpful)")
        _check("source", source, FEEDBACK_SOURCES)
        now = utcnow()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO feedback (reply_id, user, rating, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (reply_id, user) DO UPDATE SET"
                " rating = excluded.rating, source = excluded.source, updated_at = excluded.updated_at",
                [reply_id, user, int(rating), source, now, now],
            )
            sql = "SELECT id FROM feedback WHERE reply_id = ? AND user = ?"
            return int(_scalar(db, sql, [reply_id, user]))

    def remove_feedback(self, reply_id: int, user: str) -> bool:
        """Withdraw ``user``'s vote (reaction_removed); True if there was one."""
        with self.transaction() as db:
            sql = "DELETE FROM feedback WHERE reply_id = ? AND user = ?"
            return db.execute(sql, [reply_id, user]).rowcount > 0

    def record_correction(
        self,
        message_id: int,
        *,
        agent: str,
        correct_intent: str | None,
        correct_sentiment: str | None = None,
        note: str | None = None,
    ) -> int:
        """An agent's verdict on a message. Submitting again updates it and reopens it.

        A field left out (None) keeps what an earlier submission said, so a sentiment-only
        correction does not wipe another agent's intent or note. Every submission is also kept in
        ``correction_history``. The prediction is copied from the message so the correction stays
        meaningful after the model that made it is retired.
        """
        now = utcnow()
        with self.transaction() as db:
            cursor = db.execute(
                """INSERT INTO corrections (message_id, agent, predicted_intent, correct_intent,
                       predicted_sentiment, correct_sentiment, note, model_version, status,
                       created_at, updated_at)
                   SELECT id, ?, intent, ?, sentiment, ?, ?, model_version, 'open', ?, ?
                   FROM messages WHERE id = ?
                   ON CONFLICT (message_id) DO UPDATE SET
                       -- the agent of the verdict on the intent: a sentiment alone does not take its credit
                       agent = CASE WHEN excluded.correct_intent IS NOT NULL OR correct_intent IS NULL
                                    THEN excluded.agent ELSE agent END,
                       correct_intent = coalesce(excluded.correct_intent, correct_intent),
                       correct_sentiment = coalesce(excluded.correct_sentiment, correct_sentiment),
                       note = coalesce(excluded.note, note), status = 'open',
                       updated_at = excluded.updated_at""",
                [agent, correct_intent, correct_sentiment, note, now, now, message_id],
            )
            if cursor.rowcount == 0:
                raise ValueError(f"no message with id {message_id}")
            correction_id = int(_scalar(db, "SELECT id FROM corrections WHERE message_id = ?", [message_id]))
            _insert(db, "correction_history", {
                "correction_id": correction_id, "message_id": message_id, "agent": agent,
                "correct_intent": correct_intent, "correct_sentiment": correct_sentiment, "note": note,
                "created_at": now})
            return correction_id

    def record_label(self, message_id: int, *, intent: str, source: str, user: str | None) -> int:
        """The intent a customer picked for their own message (a clarify click)."""
        _check("source", source, LABEL_SOURCES)
        row = {"message_id": message_id, "intent": intent, "source": source, "user": user}
        with self.transaction() as db:
            return _insert(db, "labels", {**row, "created_at": utcnow()})

    def review_queue(self, limit: int = 50) -> list[Row]:
        """Uncorrected messages that got a 👎 or were handed off, oldest first.

        Purged messages are left out: with no text there is nothing to review.
        """
        sql = f"""
            SELECT m.id, m.id AS message_id, m.conversation_id, m.user, m.text, m.intent, m.confidence,
                   m.second_intent, m.second_confidence, m.sentiment, m.decision, m.reason, m.created_at,
                   (SELECT count(*) FROM replies r JOIN feedback f ON f.reply_id = r.id
                    WHERE r.message_id = m.id AND f.rating = -1) AS downvotes
            FROM messages m
            WHERE m.text_purged = 0 AND {AWAITING_REVIEW}
            ORDER BY m.created_at, m.id
            LIMIT ?"""
        return list(self.db.query(sql, [limit]))

    def review_count(self) -> int:
        """How many messages wait in the review queue (``review_queue`` returns one page of them)."""
        row = self._one(f"SELECT count(*) AS n FROM messages m WHERE m.text_purged = 0 AND {AWAITING_REVIEW}", {})
        return int((row or {}).get("n") or 0)

    def feedback_counts(self, since: datetime) -> dict[str, Any]:
        """Activity since ``since`` (naive means UTC). A changed vote counts from when it changed."""
        cutoff = {"c": iso(since)}
        counts = self._one(
            """SELECT (SELECT count(*) FROM feedback WHERE rating = 1 AND updated_at >= :c) AS up,
                      (SELECT count(*) FROM feedback WHERE rating = -1 AND updated_at >= :c) AS down,
                      (SELECT count(*) FROM corrections WHERE updated_at >= :c) AS corrections,
                      (SELECT count(*) FROM messages WHERE created_at >= :c) AS messages""",
            cutoff,
        )
        # How each message ended: an answer or a clarify the customer then took to a person ("Talk to a human",
        # "Neither") counts as handed over, as the review queue counts it.
        sql = """SELECT CASE WHEN m.decision NOT IN ('handoff', 'escalate') AND EXISTS (SELECT 1 FROM replies h
                                 WHERE h.message_id = m.id AND h.kind = 'handoff') THEN 'handoff'
                             ELSE m.decision END AS decision, count(*) AS n
                 FROM messages m WHERE m.created_at >= :c GROUP BY 1"""
        decisions = dict.fromkeys(DECISIONS, 0)
        decisions.update({row["decision"]: row["n"] for row in self.db.query(sql, cutoff)})
        return {**(counts or {}), "decisions": decisions}
