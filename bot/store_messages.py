"""The store's conversation log: conversations, customer messages and the bot's replies.

``MessagesMixin`` holds the writes the message pipeline makes for every message (find or open the
conversation, log the message with its prediction and decision, log the reply and the Slack
``ts`` it was posted as) and the look-ups that map a Slack message back to the reply it was.
The allowed values for ``decision``, reply ``kind`` and conversation ``source`` live here too.
"""

from __future__ import annotations

from bot.store_core import Row, StoreBase, _check, _insert, _scalar, utcnow

DECISIONS = ("answer", "clarify", "handoff", "escalate", "prompt")
REPLY_KINDS = DECISIONS
CONVERSATION_SOURCES = ("slack", "terminal")

_REPLY_SELECT = "SELECT r.*, m.conversation_id FROM replies r JOIN messages m ON m.id = r.message_id"


class MessagesMixin(StoreBase):
    def get_or_create_conversation(
        self, channel: str, thread_ts: str | None, user: str | None, source: str
    ) -> int:
        """The conversation for a Slack thread, created on first sight.

        ``thread_ts=None`` (a terminal session) always starts a new conversation.
        """
        _check("source", source, CONVERSATION_SOURCES)
        now = utcnow()
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO conversations (channel, thread_ts, user, started_at, last_message_at,"
                " source) VALUES (?, ?, ?, ?, ?, ?)",
                [channel, thread_ts, user, now, now, source],
            )
            if cursor.rowcount == 1 and cursor.lastrowid:
                return cursor.lastrowid
            sql = "SELECT id FROM conversations WHERE channel = ? AND thread_ts = ?"
            return int(_scalar(db, sql, [channel, thread_ts]))

    def take_over(self, channel: str, thread_ts: str, agent: str) -> None:
        """Record that ``agent`` wrote in this thread (the first agent to do so keeps the record)."""
        with self.transaction() as db:
            # The thread may have no conversation yet (the agent's words came in the customer's batch): create
            # it, with no customer known, so the takeover is never lost.
            conversation_id = self.get_or_create_conversation(channel, thread_ts, None, "slack")
            db.execute("UPDATE conversations SET taken_over_by = ?, taken_over_at = ? WHERE id = ? AND "
                       "taken_over_by IS NULL", [agent, utcnow(), conversation_id])

    def log_message(
        self,
        conversation_id: int,
        *,
        user: str | None,
        text: str,
        normalized_text: str | None,
        decision: str,
        reason: str | None,
        intent: str | None = None,
        confidence: float | None = None,
        second_intent: str | None = None,
        second_confidence: float | None = None,
        sentiment: str | None = None,
        sentiment_score: float | None = None,
        model_version: str | None = None,
        latency_ms: float | None = None,
        ts: str | None = None,
    ) -> int:
        row = dict(locals())  # every parameter is a column of the same name
        del row["self"]
        _check("decision", decision, DECISIONS)
        row["created_at"] = now = utcnow()
        with self.transaction() as db:
            message_id = _insert(db, "messages", row)
            db.execute("UPDATE conversations SET last_message_at = ? WHERE id = ?", [now, conversation_id])
        return message_id

    def get_message(self, message_id: int) -> Row | None:
        return self._one("SELECT * FROM messages WHERE id = ?", [message_id])

    def log_reply(
        self,
        message_id: int,
        *,
        text: str,
        kind: str,
        intent: str | None = None,
        channel: str | None = None,
        ts: str | None = None,
    ) -> int:
        _check("kind", kind, REPLY_KINDS)
        row = {"message_id": message_id, "text": text, "kind": kind, "intent": intent}
        with self.transaction() as db:
            return _insert(db, "replies", {**row, "channel": channel, "ts": ts, "created_at": utcnow()})

    def set_reply_ts(self, reply_id: int, channel: str, ts: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE replies SET channel = ?, ts = ? WHERE id = ?", [channel, ts, reply_id])

    def find_reply(self, channel: str, ts: str) -> Row | None:
        """The reply posted as Slack message ``(channel, ts)``; rows also carry ``conversation_id``."""
        return self._one(f"{_REPLY_SELECT} WHERE r.channel = ? AND r.ts = ?", [channel, ts])

    def get_reply(self, reply_id: int) -> Row | None:
        return self._one(f"{_REPLY_SELECT} WHERE r.id = ?", [reply_id])

    def last_reply(self, conversation_id: int) -> Row | None:
        sql = f"{_REPLY_SELECT} WHERE m.conversation_id = ? ORDER BY r.id DESC LIMIT 1"
        return self._one(sql, [conversation_id])
