"""Writes the database refused for longer than a handler can wait, kept on disk until it takes them.

When a Slack event has been acked, Slack will not send it again, and a customer cannot repeat a
reaction the way they can click a button again. So a vote that SQLite keeps refusing (another
process holds the write lock, a disk briefly full) is not dropped: it is appended here, one JSON
object per line, flushed and fsynced, and replayed in order once the database takes writes again.

The file lives in the data directory beside the database. A line that cannot be read back, or names
a kind nobody handles, moves to ``<file>.rejected`` with the reason: kept for an admin, never dropped.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.store_core import iso

try:
    import fcntl
except ImportError:  # not on Windows: there, only this process's threads are kept apart
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)


def slack_spool_path(data_dir: Path) -> Path:
    """Where the Slack app keeps the votes and answer timestamps the database refused."""
    return data_dir / "spool" / "slack-writes.jsonl"


class UnknownEntry(ValueError):
    """Raised by an ``apply`` function for an entry it cannot handle: the entry is set aside, not retried."""


Apply = Callable[[str, dict[str, Any]], None]


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected_path = path.with_name(path.name + ".rejected")
        self.lock_path = path.with_name(path.name + ".lock")  # appends, and a replay's read and final rewrite
        self.replay_lock_path = path.with_name(path.name + ".replay.lock")  # one replay at a time
        self._append_lock = threading.Lock()
        self._replay_lock = threading.Lock()

    @contextmanager
    def _locked(self, path: Path, thread_lock: threading.Lock, *, wait: bool = True) -> Iterator[bool]:
        """Exclusive use of ``path`` among this process's threads and other processes on the same data
        directory (replicas, the CLI); yields False when ``wait`` is off and someone else has it."""
        if not thread_lock.acquire(blocking=wait):
            yield False
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                if fcntl is not None:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                    except BlockingIOError:
                        yield False
                        return
                yield True  # the flock goes with the handle
        finally:
            thread_lock.release()

    def add(self, kind: str, **fields: Any) -> None:
        """Keep one write for later. Raises OSError if even the file cannot be written (logged by the caller).
        Quick: it waits only for another append or a replay's final rewrite, never for a replay's writes."""
        entry = {"kind": kind, "at": iso(datetime.now(timezone.utc)), **fields}
        data = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        with self._locked(self.lock_path, self._append_lock):
            with self.path.open("a+b") as out:  # "a": every write goes to the end, whatever was read
                out.seek(0, os.SEEK_END)
                if out.tell():
                    out.seek(-1, os.SEEK_END)
                    if out.read(1) != b"\n":  # a torn append (a crash before its fsync): start a line of our own,
                        data = b"\n" + data  # or this entry would be glued onto it and set aside with it
                out.write(data)
                out.flush()
                os.fsync(out.fileno())

    def has_entries(self) -> bool:
        """Cheap enough for every write: whether a replay has anything to do."""
        return self.path.exists()

    def pending(self) -> int:
        return len(self._read()[0])  # a read: the file is only ever appended to or replaced whole

    def replay(self, apply: Apply) -> int:
        """Apply the kept writes in order; return how many were applied.

        Stops at the first entry whose write fails (the database is still unwell) and keeps it and
        everything after it for the next replay, so the order of one person's votes is kept. One replay
        at a time (another that is running makes this one return 0); writes kept while it applies are
        appended as usual and stay for the next.
        """
        with self._locked(self.replay_lock_path, self._replay_lock, wait=False) as mine:
            if not mine:
                return 0
            with self._locked(self.lock_path, self._append_lock):
                lines, end = self._read()
            done, left = self._apply_all(lines, apply)
            if not lines:
                return 0
            with self._locked(self.lock_path, self._append_lock):
                # Only a replay rewrites the file, and this one holds the replay lock: its first ``end`` bytes are
                # still what was read, followed by whatever was appended meanwhile. A byte offset, not a line
                # count: an append after a torn line adds a newline, so the lines after it need not line up.
                self._rewrite(left + self._read(start=end)[0])
            if done:
                log.info("stored %d kept write(s) from %s", done, self.path)
            return done

    def _apply_all(self, lines: list[bytes], apply: Apply) -> tuple[int, list[bytes]]:
        """(how many were applied, the lines to keep)."""
        done = 0
        for i, line in enumerate(lines):
            try:
                # Each line decoded on its own: one cut inside a character (a torn append) is a bad line, set
                # aside like any other, instead of an error that stops every replay.
                entry = json.loads(line.decode("utf-8"))
                kind = str(entry.pop("kind"))
                apply(kind, entry)
            except (ValueError, KeyError, TypeError, AttributeError, sqlite3.IntegrityError) as exc:
                # json, a missing field, UnknownEntry; or a row the entry names that the database does not have (it
                # was restored from a backup, or replaced): retrying would fail the same way and block every later
                # entry, so it is set aside, not dropped.
                self._reject(line, exc)
            except Exception as exc:
                log.warning("a kept write still fails (%r); %d kept for the next try", exc, len(lines) - i)
                return done, lines[i:]
            else:
                done += 1
        return done, []

    def _read(self, start: int = 0) -> tuple[list[bytes], int]:
        """The non-blank lines from byte ``start`` on, undecoded, and the file's length in bytes."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(start)
                data = handle.read()
        except FileNotFoundError:
            return [], start
        # Split on b"\n" only: an entry's strings may hold U+2028 and the other breaks splitlines() sees.
        return [line for line in data.split(b"\n") if line.strip()], start + len(data)

    def _rewrite(self, lines: list[bytes]) -> None:
        if not lines:
            self.path.unlink(missing_ok=True)
            return
        staging = self.path.with_name(self.path.name + ".tmp")
        with staging.open("wb") as out:
            out.write(b"".join(line + b"\n" for line in lines))
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, self.path)

    def _reject(self, line: bytes, exc: Exception) -> None:
        log.error("a kept write cannot be applied (%r); moved to %s", exc, self.rejected_path)
        text = line.decode("utf-8", "backslashreplace")  # an undecodable byte kept visible, as \xc3
        with self.rejected_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"line": text, "error": repr(exc)}, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
