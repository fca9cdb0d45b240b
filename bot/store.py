"""The conversation store: everything csbot observes and decides, in one SQLite file.

- One ``sqlite3`` connection per thread (``threading.local``) wrapped in a ``sqlite_utils.Database``:
  a connection must not be shared by threads mid-transaction, and Slack handlers run on a thread
  pool. After ``fork`` a fresh connection is opened so a child never reuses the parent's locks.
- WAL journal mode lets readers carry on while one writer commits, and lets several replica
  processes share the file; ``busy_timeout`` makes a blocked writer wait instead of failing.
- Connections are in autocommit mode and every write goes through ``transaction()``, which issues
  ``BEGIN IMMEDIATE``: the write lock is taken up front, so concurrent writers queue on the busy
  timeout. A deferred transaction that later upgrades to a writer can instead get SQLITE_BUSY
  at once, which the busy handler cannot retry.
- Writes are plain SQL rather than ``Table.insert``: older sqlite-utils wraps that in
  ``with conn:``, which would commit our transaction half way.
- The schema is a list of migrations (``bot.migrations``) applied on open.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.migrations import MIGRATIONS, Migration

DECISIONS = ("answer", "clarify", "handoff", "escalate", "prompt")
REPLY_KINDS = DECISIONS
CONVERSATION_SOURCES = ("slack", "terminal")
FEEDBACK_SOURCES = ("button", "reaction", "terminal")
LABEL_SOURCES = ("clarify",)
NEW_TOPIC = "__new_topic__"  # correct_intent meaning "none of these / a new topic"

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)
_AGE_UNITS = {"d": "days", "h": "hours", "w": "weeks"}
_REPLY_SELECT = "SELECT r.*, m.conversation_id FROM replies r JOIN messages m ON m.id = r.message_id"


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC, so comparing the text compares the times. Naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def utcnow() -> str:
    return iso(datetime.now(timezone.utc))


def parse_age(text: str) -> timedelta:
    """``"90d"``, ``"12h"`` or ``"2w"`` as a timedelta."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(f"invalid age {text!r}: expected a number followed by d, h or w, e.g. 90d")
    amount, unit = int(match.group(1)), match.group(2).lower()
    if amount == 0:
        # A zero age would make purge() blank everything, which is never what was meant.
        raise ValueError(f"invalid age {text!r}: must be greater than zero, e.g. 90d")
    return timedelta(**{_AGE_UNITS[unit]: amount})


def _check(field: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"invalid {field} {value!r}: expected one of {', '.join(allowed)}")


def _insert(db: Database, table: str, row: Row) -> int:
    columns = ", ".join(f"[{name}]" for name in row)
    marks = ", ".join(["?"] * len(row))
    cursor = db.execute(f"INSERT INTO [{table}] ({columns}) VALUES ({marks})", list(row.values()))
    return int(cursor.lastrowid or 0)


def _scalar(db: Database, sql: str, params: Params = ()) -> Any:
    return db.execute(sql, params).fetchone()[0]


class Store:
    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_ms: int = 10_000,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        """Open (creating if needed) the store at ``path`` and apply pending migrations.

        ``migrations`` can be cut short to build a database at an older schema version.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_ms = busy_timeout_ms
        self._migrations = list(migrations)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.migrate()

    @property
    def db(self) -> Database:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise RuntimeError(f"store {self.path} is closed")
        db: Database | None = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            db = Database(self._connect())
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so that close() may close other threads' connections.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
        )
        # busy_timeout first: switching to WAL needs a lock another process may be holding.
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._opened.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction (``BEGIN IMMEDIATE``); nested use joins the outer one."""
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.conn.execute("COMMIT")
        except BaseException:
            # Also after a failed COMMIT: a transaction left open would swallow later writes.
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close every connection this store opened, whichever thread opened it."""
        with self._lock:
            self._closed = True
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, params: Params = ()) -> Row | None:
        return next(iter(self.db.query(sql, params)), None)

    def migrate(self) -> list[str]:
        """Apply pending migrations in order, each in its own transaction; returns the names applied."""
        applied: list[str] = []
        for number, (name, func) in enumerate(self._migrations, start=1):
            with self.transaction() as db:
                db.create_table(
                    "migrations", {"id": int, "name": str, "applied_at": str}, pk="id", if_not_exists=True
                )
                # Checked under the write lock: another process may have just applied it.
                if _scalar(db, "SELECT count(*) FROM migrations WHERE id = ?", [number]):
                    continue
                func(db)
                _insert(db, "migrations", {"id": number, "name": name, "applied_at": utcnow()})
                applied.append(name)
        return applied

    @property
    def schema_version(self) -> int:
        return int(_scalar(self.db, "SELECT coalesce(max(id), 0) FROM migrations"))

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
        """An agent's verdict on a message; submitting again replaces it and reopens it.

        The prediction is copied from the message so the correction stays meaningful after
        the model that made it is retired.
        """
        now = utcnow()
        with self.transaction() as db:
            cursor = db.execute(
                """INSERT INTO corrections (message_id, agent, predicted_intent, correct_intent,
                       predicted_sentiment, correct_sentiment, note, model_version, status,
                       created_at, updated_at)
                   SELECT id, ?, intent, ?, sentiment, ?, ?, model_version, 'open', ?, ?
                   FROM messages WHERE id = ?
                   ON CONFLICT (message_id) DO UPDATE SET agent = excluded.agent,
                       correct_intent = excluded.correct_intent, note = excluded.note,
                       correct_sentiment = excluded.correct_sentiment, status = 'open',
                       updated_at = excluded.updated_at""",
                [agent, correct_intent, correct_sentiment, note, now, now, message_id],
            )
            if cursor.rowcount == 0:
                raise ValueError(f"no message with id {message_id}")
            return int(_scalar(db, "SELECT id FROM corrections WHERE message_id = ?", [message_id]))

    def record_label(self, message_id: int, *, intent: str, source: str, user: str | None) -> int:
        """The intent a customer picked for their own message (a clarify click)."""
        _check("source", source, LABEL_SOURCES)
        row = {"message_id": message_id, "intent": intent, "source": source, "user": user}
        with self.transaction() as db:
            return _insert(db, "labels", {**row, "created_at": utcnow()})

    def claim_event(self, event_id: str) -> bool:
        """True the first time any thread or process claims ``event_id``, False for Slack's retries."""
        try:
            with self.transaction() as db:
                _insert(db, "slack_events", {"event_id": event_id, "received_at": utcnow()})
        except sqlite3.IntegrityError:
            return False
        return True

    def prune_events(self, older_than: timedelta) -> int:
        cutoff = iso(datetime.now(timezone.utc) - older_than)
        with self.transaction() as db:
            return db.execute("DELETE FROM slack_events WHERE received_at < ?", [cutoff]).rowcount

    def kv_get(self, key: str) -> str | None:
        row = self._one("SELECT value FROM kv WHERE key = ?", [key])
        return None if row is None else row["value"]

    def kv_set(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [key, value, utcnow()],
            )

    def review_queue(self, limit: int = 50) -> list[Row]:
        """Uncorrected messages that got a 👎 or were handed off, oldest first.

        Purged messages are left out: with no text there is nothing to review.
        """
        sql = """
            SELECT m.id, m.id AS message_id, m.conversation_id, m.user, m.text, m.intent, m.confidence,
                   m.second_intent, m.second_confidence, m.sentiment, m.decision, m.reason, m.created_at,
                   (SELECT count(*) FROM replies r JOIN feedback f ON f.reply_id = r.id
                    WHERE r.message_id = m.id AND f.rating = -1) AS downvotes
            FROM messages m
            WHERE m.text_purged = 0
              AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.message_id = m.id)
              AND (m.decision IN ('handoff', 'escalate') OR downvotes > 0
                   OR EXISTS (SELECT 1 FROM replies h WHERE h.message_id = m.id AND h.kind = 'handoff'))
            ORDER BY m.created_at, m.id
            LIMIT ?"""
        return list(self.db.query(sql, [limit]))

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
        sql = "SELECT decision, count(*) AS n FROM messages WHERE created_at >= :c GROUP BY decision"
        decisions = dict.fromkeys(DECISIONS, 0)
        decisions.update({row["decision"]: row["n"] for row in self.db.query(sql, cutoff)})
        return {**(counts or {}), "decisions": decisions}

    def purge(self, older_than: timedelta) -> dict[str, int]:
        """Blank message and reply text older than ``older_than``; returns how many rows of each.

        Messages with a correction or a label keep their text (``kept``): they are training data.
        """
        cutoff = [iso(datetime.now(timezone.utc) - older_than)]
        old = "created_at < ? AND text_purged = 0"
        labelled = "(id IN (SELECT message_id FROM corrections) OR id IN (SELECT message_id FROM labels))"
        with self.transaction() as db:
            messages = db.execute(
                "UPDATE messages SET text = '', normalized_text = '', text_purged = 1"
                f" WHERE {old} AND NOT {labelled}",
                cutoff,
            ).rowcount
            kept = _scalar(db, f"SELECT count(*) FROM messages WHERE {old} AND {labelled}", cutoff)
            sql = "UPDATE replies SET text = '' WHERE created_at < ? AND text != ''"
            replies = db.execute(sql, cutoff).rowcount
        return {"messages": messages, "replies": replies, "kept": int(kept)}

    def backup(self, dest: str | Path) -> Path:
        """A consistent copy of the live database via SQLite's online backup; safe while others write."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"backup destination {dest} already exists; refusing to overwrite it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(sqlite3.connect(dest)) as target:
                # pages=-1 copies the whole database in one step, i.e. from a single snapshot.
                self.db.conn.backup(target, pages=-1)
        except BaseException:
            dest.unlink(missing_ok=True)  # a half-written copy would block the retry
            raise
        return dest
