"""Schema migrations for the csbot store.

Each migration is a ``(name, function)`` pair; its id is its 1-based position in
``MIGRATIONS``. The runner (``Store.migrate``) applies each pending one inside
its own ``BEGIN IMMEDIATE`` transaction and records it in the ``migrations``
table, so the list is append-only: never edit or reorder a released migration,
add a new one that alters the schema instead.

Tables are declared with sqlite-utils so types, NOT NULL, defaults and foreign
keys are explicit. ``Database.create_table`` is used rather than ``Table.create``
because older sqlite-utils wraps the latter in ``with conn:``, which would commit
the migration's transaction half way. Timestamps are ISO-8601 UTC text written by
``store.utcnow``.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlite_utils import Database

Migration = tuple[str, Callable[[Database], None]]


def create_conversation_tables(db: Database) -> None:
    db.create_table(
        "conversations",
        {
            "id": int,
            "channel": str,
            "thread_ts": str,
            "user": str,
            "started_at": str,
            "last_message_at": str,
            "source": str,
        },
        pk="id",
        not_null=["channel", "started_at", "last_message_at", "source"],
    )
    # A plain UNIQUE index is enough for "unique when thread_ts is not null":
    # SQLite treats NULLs as distinct, so terminal sessions never collide.
    db["conversations"].create_index(["channel", "thread_ts"], unique=True)

    db.create_table(
        "messages",
        {
            "id": int,
            "conversation_id": int,
            "user": str,
            "ts": str,
            "text": str,
            "normalized_text": str,
            "decision": str,
            "intent": str,
            "confidence": float,
            "second_intent": str,
            "second_confidence": float,
            "sentiment": str,
            "sentiment_score": float,
            "reason": str,
            "model_version": str,
            "latency_ms": float,
            "created_at": str,
            "text_purged": int,
        },
        pk="id",
        foreign_keys=[("conversation_id", "conversations", "id")],
        not_null=["conversation_id", "text", "decision", "created_at", "text_purged"],
        defaults={"text_purged": 0},
    )
    db["messages"].create_index(["conversation_id"])
    db["messages"].create_index(["created_at"])

    db.create_table(
        "replies",
        {
            "id": int,
            "message_id": int,
            "channel": str,
            "ts": str,
            "text": str,
            "intent": str,
            "kind": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("message_id", "messages", "id")],
        not_null=["message_id", "text", "kind", "created_at"],
    )
    db["replies"].create_index(["message_id"])
    # Reaction events identify the reply only by the posted message's (channel, ts).
    db["replies"].create_index(["channel", "ts"])

    db.create_table(
        "feedback",
        {
            "id": int,
            "reply_id": int,
            "user": str,
            "rating": int,
            "source": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("reply_id", "replies", "id")],
        not_null=["reply_id", "user", "rating", "source", "created_at", "updated_at"],
    )
    # The upsert target: one current vote per person per reply.
    db["feedback"].create_index(["reply_id", "user"], unique=True)

    db.create_table(
        "corrections",
        {
            "id": int,
            "message_id": int,
            "agent": str,
            "predicted_intent": str,
            "correct_intent": str,
            "predicted_sentiment": str,
            "correct_sentiment": str,
            "note": str,
            "model_version": str,
            "status": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        foreign_keys=[("message_id", "messages", "id")],
        not_null=["message_id", "agent", "status", "created_at", "updated_at"],
        defaults={"status": "open"},
    )
    db["corrections"].create_index(["message_id"], unique=True)
    db["corrections"].create_index(["status"])

    db.create_table(
        "labels",
        {
            "id": int,
            "message_id": int,
            "intent": str,
            "source": str,
            "user": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("message_id", "messages", "id")],
        not_null=["message_id", "intent", "source", "created_at"],
    )
    db["labels"].create_index(["message_id"])

    db.create_table(
        "slack_events",
        {"event_id": str, "received_at": str},
        pk="event_id",
        not_null=["received_at"],
    )
    db["slack_events"].create_index(["received_at"])


def create_learning_tables(db: Database) -> None:
    db.create_table(
        "model_versions",
        {
            "version": str,
            "path": str,
            "status": str,
            "created_at": str,
            "promoted_at": str,
            "metrics_json": str,
            "manifest_hash": str,
            "reason": str,
        },
        pk="version",
        not_null=["status", "created_at"],
        defaults={"status": "candidate"},
    )
    db["model_versions"].create_index(["status"])

    db.create_table(
        "training_runs",
        {
            "id": int,
            "started_at": str,
            "ended_at": str,
            "status": str,
            "trigger": str,
            "version": str,
            "manifest_json": str,
            "metrics_json": str,
            "gate_json": str,
            "log_excerpt": str,
            "pid": int,
        },
        pk="id",
        not_null=["started_at", "status", "trigger"],
        defaults={"status": "running"},
    )
    db["training_runs"].create_index(["status"])

    db.create_table(
        "kv",
        {"key": str, "value": str, "updated_at": str},
        pk="key",
        not_null=["updated_at"],
    )


def add_retrain_lock(db: Database) -> None:
    """The learning loop's lock (one row per lock name: who holds it, on which host, until when),
    so two replicas never train at once; and the run's phase, host, mode and folder."""
    db.create_table(
        "locks",
        {"name": str, "owner": str, "host": str, "pid": int, "acquired_at": str, "expires_at": str},
        pk="name",
        not_null=["owner", "acquired_at", "expires_at"],
    )
    # Plain ALTER TABLE: sqlite-utils' add_column may commit the migration's transaction.
    for column in ("phase", "host", "mode", "run_dir"):
        db.execute(f"ALTER TABLE training_runs ADD COLUMN [{column}] TEXT")


def add_correction_history(db: Database) -> None:
    """Every correction an agent submits, in order. ``corrections`` holds the current verdict per
    message (what training uses); this table keeps each submission, so a resubmission never loses
    what an earlier one said. Existing corrections become each message's first entry."""
    db.create_table(
        "correction_history",
        {"id": int, "correction_id": int, "message_id": int, "agent": str, "correct_intent": str,
         "correct_sentiment": str, "note": str, "created_at": str},
        pk="id",
        not_null=["correction_id", "message_id", "agent", "created_at"],
        foreign_keys=[("correction_id", "corrections", "id")],
    )
    db["correction_history"].create_index(["message_id"])
    db.execute(
        """INSERT INTO correction_history (correction_id, message_id, agent, correct_intent,
               correct_sentiment, note, created_at)
           SELECT id, message_id, agent, correct_intent, correct_sentiment, note, updated_at
           FROM corrections ORDER BY id"""
    )


def add_thread_takeover(db: Database) -> None:
    """Which agent took a Slack thread over by writing in it, and when: the bot stays out of that thread
    from then on (a handoff decision alone used to be the only thing that kept it out)."""
    for column in ("taken_over_by", "taken_over_at"):
        db.execute(f"ALTER TABLE conversations ADD COLUMN [{column}] TEXT")


def add_lock_process_start(db: Database) -> None:
    """When the lock holder's process started (boot id and start time): a live pid that is another process (a
    container restarted, pids reused) no longer holds a dead run's lock until it expires."""
    db.execute("ALTER TABLE locks ADD COLUMN [pid_started] TEXT")


MIGRATIONS: list[Migration] = [
    ("create_conversation_tables", create_conversation_tables),
    ("create_learning_tables", create_learning_tables),
    ("add_retrain_lock", add_retrain_lock),
    ("add_correction_history", add_correction_history),
    ("add_thread_takeover", add_thread_takeover),
    ("add_lock_process_start", add_lock_process_start),
]
