"""The store's retention and backups: blank old message text, copy the live database.

``RetentionMixin`` backs ``csbot db purge`` and ``csbot db backup``: ``purge`` blanks the text of
messages and replies older than a given age while keeping labelled messages (they are training
data) and, unless told otherwise, messages still waiting in the review queue (an agent has yet to
label them, and a blank one would drop out of the queue), and ``backup`` copies the database
with SQLite's online backup so it is safe while the bot keeps writing. ``parse_age`` turns the
CLI's ``90d``/``12h``/``2w`` into a ``timedelta``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bot import messages
from bot.store_core import StoreBase, _scalar, iso
from bot.store_feedback import AWAITING_REVIEW
from models.errors import StoreError

log = logging.getLogger(__name__)

_AGE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)
_AGE_UNITS = {"d": "days", "h": "hours", "w": "weeks"}
_MAX_AGE = timedelta(days=100 * 366)
# Messages the review queue holds (store_feedback.AWAITING_REVIEW, written for a message aliased m).
_AWAITING_REVIEW = f"id IN (SELECT m.id FROM messages m WHERE {AWAITING_REVIEW})"


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
    def purge(self, older_than: timedelta, *, include_unreviewed: bool = False) -> dict[str, int]:
        """Blank message and reply text older than ``older_than``; returns how many rows of each.

        Messages with a correction or a label keep their text (``kept``): they are training data.
        ``rated_up``: purged messages whose answer got a 👍, which trained the model as silver examples.
        Messages waiting in the review queue keep theirs too (``awaiting_review``), unless
        ``include_unreviewed``: purged, they would leave the queue unlabelled.
        """
        cutoff = [iso(datetime.now(timezone.utc) - older_than)]
        old = "created_at < ? AND text_purged = 0"
        labelled = "(id IN (SELECT message_id FROM corrections) OR id IN (SELECT message_id FROM labels))"
        keep = labelled if include_unreviewed else f"({labelled} OR {_AWAITING_REVIEW})"
        rated_up = ("id IN (SELECT r.message_id FROM replies r JOIN feedback f ON f.reply_id = r.id "
                    "WHERE f.rating = 1)")
        with self.transaction() as db:
            # Counted before the purge. In the queue and not labelled: a label keeps a message's text anyway, so
            # only these are kept for the queue (or, with include_unreviewed, purged out of it); the CLI says so.
            waiting = _scalar(db, f"SELECT count(*) FROM messages WHERE {old} AND {_AWAITING_REVIEW} "
                                  f"AND NOT {labelled}", cutoff)
            # 👍-rated answers the nightly retrain learns from (silver examples): without their text it cannot.
            silver = _scalar(db, f"SELECT count(*) FROM messages WHERE {old} AND NOT {keep} AND {rated_up}", cutoff)
            messages = db.execute(
                "UPDATE messages SET text = '', normalized_text = '', text_purged = 1"
                f" WHERE {old} AND NOT {keep}",
                cutoff,
            ).rowcount
            kept = _scalar(db, f"SELECT count(*) FROM messages WHERE {old} AND {labelled}", cutoff)
            sql = "UPDATE replies SET text = '' WHERE created_at < ? AND text != ''"
            replies = db.execute(sql, cutoff).rowcount
        self._checkpoint()
        return {"messages": messages, "replies": replies, "kept": int(kept), "awaiting_review": int(waiting),
                "rated_up": int(silver)}

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
