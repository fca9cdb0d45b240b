"""Claiming Slack event ids in the shared database, a whole batch per transaction.

``Store.claim_event`` is one write transaction per id; at hundreds of events per
second a batch of claims in one ``BEGIN IMMEDIATE`` keeps the write lock short. The
table is the same one, so replicas and ``claim_event`` callers agree on who won.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.store import Store, utcnow


def claim_many(store: Store, keys: Sequence[str]) -> list[bool]:
    """True for each key claimed now, False for keys claimed before (or earlier in ``keys``)."""
    if not keys:
        return []
    now = utcnow()
    with store.transaction() as db:
        return [db.execute("INSERT OR IGNORE INTO slack_events (event_id, received_at) VALUES (?, ?)",
                           [key, now]).rowcount == 1 for key in keys]


def handed_off(store: Store, channel: str, thread_ts: str) -> bool:
    """Whether the bot already handed this thread to a person (it then stays out of it)."""
    taken = store.db.execute("SELECT 1 FROM conversations WHERE channel = ? AND thread_ts = ? AND taken_over_by "
                             "IS NOT NULL", [channel, thread_ts]).fetchone()
    if taken is not None:
        return True  # an agent wrote in it (Store.take_over)
    # A handoff is either the router's decision, or a reply of kind 'handoff' logged when the customer
    # pressed "Talk to a human" or "Neither" on an answer or a clarify question.
    row = store.db.execute(
        "SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.channel = ? "
        "AND c.thread_ts = ? AND (m.decision IN ('handoff', 'escalate') OR EXISTS (SELECT 1 FROM replies r "
        "WHERE r.message_id = m.id AND r.kind = 'handoff')) LIMIT 1", [channel, thread_ts]).fetchone()
    return row is not None


def known_thread(store: Store, channel: str, thread_ts: str) -> bool:
    """Whether the bot already holds a conversation for this Slack thread."""
    row = store.db.execute("SELECT 1 FROM conversations WHERE channel = ? AND thread_ts = ? LIMIT 1",
                           [channel, thread_ts]).fetchone()
    return row is not None
