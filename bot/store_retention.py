"""The store's retention and backups: blank old message text, copy the live database.

``RetentionMixin`` backs ``csbot db purge`` and ``csbot db backup``: ``purge`` blanks the text of
messages and replies older than a given age while keeping labelled messages (they are training
data) and, unless told otherwise, messages still waiting in the review queue (an agent has yet to
label them, and a blank one would drop out of the queue), each with its replies; and ``backup`` copies the database
with SQLite's online backup so it is safe while the bot keeps writing. ``parse_age`` turns the
CLI's ``90d``/``12h``/``2w`` into a ``timedelta``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot import messages
from bot.store_core import StoreBase, _scalar, iso
from bot.store_feedback import AWAITING_REVIEW
from models.errors import StoreError

log = logging.getLogger(__name__)

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)
_AGE_UNITS = {"d": "days", "h": "hours", "w": "weeks"}
_MAX_AGE = timedelta(days=100 * 366)
# Rows per write transaction in purge(): small enough that the bot's writers get the lock between batches
# well inside their busy_timeout, large enough that a million rows is a few hundred transactions.
PURGE_BATCH = 2000


def parse_age(text: str) -> timedelta:
    """``"90d"``, ``"12h"`` or ``"2w"`` as a timedelta."""
    match = _AGE.match(text)
    if not match:
        raise ValueError(messages.AGE_INVALID.format(text=text))
    amount, unit = int(match.group(1)), match.group(2).lower()
    if amount == 0:
        # A zero age would make purge() blank everything, which is never what was meant.
        raise ValueError(messages.AGE_ZERO.format(text=text))
    if amount > _MAX_AGE.days * 24:  # no unit makes this fewer than 100 years of hours
        raise ValueError(messages.AGE_TOO_LONG.format(text=text))
    age = timedelta(**{_AGE_UNITS[unit]: amount})
    if age > _MAX_AGE:
        raise ValueError(messages.AGE_TOO_LONG.format(text=text))
    return age


class RetentionMixin(StoreBase):
    def purge(self, older_than: timedelta, *, include_unreviewed: bool = False,
              batch_size: int = PURGE_BATCH) -> dict[str, int]:
        """Blank message and reply text older than ``older_than``; returns how many rows of each.

        Messages with a correction or a label keep their text (``kept``): they are training data. A kept
        message's replies keep theirs too; ``replies`` counts those of the purged messages.
        ``rated_up``: purged messages whose answer got a 👍, which trained the model as silver examples.
        Messages waiting in the review queue keep theirs too (``awaiting_review``), unless
        ``include_unreviewed``: purged, they would leave the queue unlabelled.

        ``batch_size`` rows per write transaction: one transaction over a big database held the write lock
        past the bot's busy_timeout, so its votes and messages failed "busy" for as long as the purge ran.
        """
        cutoff = iso(datetime.now(timezone.utc) - older_than)
        old = "m.created_at < ? AND m.text_purged = 0"
        # Correlated on m (not "id IN (SELECT ...)", which SQLite would rebuild over the whole table per batch).
        labelled = ("(EXISTS (SELECT 1 FROM corrections c WHERE c.message_id = m.id)"
                    " OR EXISTS (SELECT 1 FROM labels l WHERE l.message_id = m.id))")
        keep = labelled if include_unreviewed else f"({labelled} OR {AWAITING_REVIEW})"
        rated_up = ("EXISTS (SELECT 1 FROM replies r JOIN feedback f ON f.reply_id = r.id "
                    "WHERE r.message_id = m.id AND f.rating = 1)")
        # "+": walk the ids (the primary key) rather than the created_at index, which the planner may pick and
        # which would sort every old row again for each batch.
        purged = f"+{old} AND NOT {keep}"
        counts = {"messages": 0, "replies": 0, "awaiting_review": 0, "rated_up": 0}
        batch = f"m.id > ? AND m.id <= ? AND {purged}"

        def blank_messages(db: Any, last: int, high: int) -> None:  # read and written under one lock: exact counts
            args = [last, high, cutoff]
            if include_unreviewed:  # in the queue and unlabelled: purged out of it (the CLI says so)
                counts["awaiting_review"] += int(_scalar(
                    db, f"SELECT count(*) FROM messages m WHERE {batch} AND {AWAITING_REVIEW}", args))
            # 👍-rated answers the nightly retrain learns from (silver examples): without their text it cannot.
            counts["rated_up"] += int(_scalar(db, f"SELECT count(*) FROM messages m WHERE {batch} AND {rated_up}",
                                              args))
            counts["messages"] += db.execute(
                "UPDATE messages SET text = '', normalized_text = '', text_purged = 1"
                f" WHERE id IN (SELECT m.id FROM messages m WHERE {batch})", args).rowcount

        self._in_batches(f"SELECT max(id) FROM (SELECT m.id FROM messages m WHERE m.id > ? AND {purged} "
                         "ORDER BY m.id LIMIT ?)", cutoff, batch_size, blank_messages)
        # Only the replies of purged messages: a kept one (labelled, or waiting for review) keeps its whole
        # exchange, or a reviewer judging a 👎 could not see the answer that got it. A reply is never older than
        # its message, so every old reply of a message not kept is caught (its message was purged above).
        old_reply = ("id > ? AND +created_at < ? AND text != '' AND EXISTS (SELECT 1 FROM messages m "
                     "WHERE m.id = replies.message_id AND m.text_purged = 1)")

        def blank_replies(db: Any, last: int, high: int) -> None:
            counts["replies"] += db.execute(f"UPDATE replies SET text = '' WHERE {old_reply} AND id <= ?",
                                            [last, cutoff, high]).rowcount

        self._in_batches(f"SELECT max(id) FROM (SELECT id FROM replies WHERE {old_reply} ORDER BY id LIMIT ?)",
                         cutoff, batch_size, blank_replies)
        # Kept for the queue (not purged, so counting them once at the end is the same as before), and labelled.
        if not include_unreviewed:
            counts["awaiting_review"] = int(_scalar(
                self.db, f"SELECT count(*) FROM messages m WHERE {old} AND {AWAITING_REVIEW} AND NOT {labelled}",
                [cutoff]))
        kept = _scalar(self.db, f"SELECT count(*) FROM messages m WHERE {old} AND {labelled}", [cutoff])
        self._checkpoint()
        return {"messages": counts["messages"], "replies": counts["replies"], "kept": int(kept),
                "awaiting_review": counts["awaiting_review"], "rated_up": counts["rated_up"]}

    def _in_batches(self, next_high: str, cutoff: str, batch_size: int,
                    apply: Callable[[Any, int, int], None]) -> None:
        """Call ``apply(connection, last id, highest id)`` once per batch, each in its own write transaction.

        ``next_high`` (parameters: the last id, ``cutoff``, ``batch_size``) gives the highest id of the next
        batch, or NULL when nothing is left. Batches walk up the ids, so rows kept are passed once, never
        scanned again; between two batches the bot's writers get the lock."""
        last = 0
        while True:
            with self.transaction() as db:
                high = _scalar(db, next_high, [last, cutoff, batch_size])
                if high is None:
                    return
                apply(db, last, int(high))
            last = int(high)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database and empty it: until then its frames still hold the purged text.
        Best effort: while a reader (the running bot) is inside a snapshot, SQLite waits up to busy_timeout and
        then leaves the WAL as it is (reported, not raised); the next checkpoint, automatic or not, reuses it."""
        try:
            busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError as exc:  # the purge itself is committed: say so, do not fail it
            log.warning(messages.PURGE_WAL_KEPT.format(path=self.path, why=exc))
            return
        if busy:
            log.warning(messages.PURGE_WAL_KEPT.format(path=self.path, why="another connection is reading"))

    def backup(self, dest: str | Path) -> Path:
        """A consistent copy of the live database via SQLite's online backup; safe while others write."""
        dest = Path(dest)
        try:
            exists = dest.exists()
        except OSError as exc:  # a name too long, a folder it may not look into
            raise StoreError(messages.BACKUP_WRITE_FAILED.format(path=dest, error=exc.strerror or exc),
                             messages.BACKUP_PATH_FIX) from exc
        if exists:
            raise FileExistsError(f"backup destination {dest} already exists; refusing to overwrite it")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(messages.BACKUP_FOLDER_FAILED.format(path=dest, error=exc.strerror or exc),
                             messages.BACKUP_FOLDER_FAILED_FIX) from exc
        try:
            with closing(sqlite3.connect(dest)) as target:
                # pages=-1 copies the whole database in one step, i.e. from a single snapshot.
                self.db.conn.backup(target, pages=-1)
                # A damaged page is copied as it is: "Backed up" must not be the news that hides it.
                verdict = str(target.execute("PRAGMA quick_check(1)").fetchone()[0])
        except BaseException as exc:
            dest.unlink(missing_ok=True)  # a half-written copy would block the retry
            if isinstance(exc, (OSError, sqlite3.OperationalError)):
                raise StoreError(messages.BACKUP_WRITE_FAILED.format(path=dest, error=exc),
                                 messages.BACKUP_WRITE_FAILED_FIX) from exc
            raise
        if verdict != "ok":
            raise StoreError(messages.BACKUP_DAMAGED.format(path=dest, source=self.path, problem=verdict),
                             messages.BACKUP_DAMAGED_FIX.format(source=self.path))
        return dest
