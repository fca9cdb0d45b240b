"""The store's shared runtime state: Slack event de-duplication and the small key-value table.

``StateMixin`` holds the bits of state that every thread and every replica sharing the database
must agree on: which Slack event ids have already been handled (``claim_event``, so Slack's
retries are answered once, and ``prune_events`` to forget old ids) and the ``kv`` table for
single values such as the retrain watermark.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

from bot.store_core import StoreBase, _insert, iso, utcnow


class StateMixin(StoreBase):
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
            # Event ids only: a clarify or handoff claim ("answered once") must outlive its buttons.
            return db.execute("DELETE FROM slack_events WHERE received_at < ? AND event_id NOT LIKE 'clarify:%' "
                              "AND event_id NOT LIKE 'handoff:%'", [cutoff]).rowcount

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
