"""The learning loop's run lock: one retrain at a time across every replica sharing the database.

A lock is a row in the SQLite ``locks`` table (owner, host, pid, expiry). The bot takes it for
``run:<id>`` *before* launching the training child; the child keeps it alive with a heartbeat
every ``HEARTBEAT_SECONDS`` and releases it at the end. A lock whose expiry has passed, or whose
holder is a dead process on this host, is stale and may be taken over. The clock, host name and
pid-liveness helpers live here too, because staleness is defined in their terms.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot.store import Store, iso

# The same logger as bot.learning: the split into modules is not visible to log filters.
log = logging.getLogger("csbot.learning")

RUN_LOCK = "retrain"
LOCK_TTL = timedelta(minutes=10)
HEARTBEAT_SECONDS = 30.0
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(timezone.utc)


def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int | None) -> bool:
    """True if ``pid`` is a live process on this host (a zombie counts as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_started(pid: int | None) -> str | None:
    """Which process ``pid`` is, beyond its number: this boot's id and the process's start time (Linux
    /proc). None where that cannot be read: the pid alone then decides, as before."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return f"{boot}:{fields[19]}"  # field 22 of stat: start time in clock ticks since boot
    except (OSError, IndexError, ValueError):
        return None


def acquire_lock(store: Store, owner: str, *, pid: int | None = None, ttl: timedelta = LOCK_TTL,
                 clock: Clock = system_clock, name: str = RUN_LOCK) -> bool:
    """Take (or refresh, if ``owner`` already holds it) the lock; False if someone else holds it."""
    now = clock()
    with store.transaction() as db:
        row = next(iter(db.query("SELECT * FROM locks WHERE name = ?", [name])), None)
        if row and row["owner"] != owner and not _lock_is_stale(row, now):
            return False
        holder = pid or os.getpid()
        db.execute(
            "INSERT INTO locks (name, owner, host, pid, pid_started, acquired_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,"
            " pid_started = excluded.pid_started,"
            " acquired_at = CASE WHEN locks.owner = excluded.owner THEN locks.acquired_at"
            " ELSE excluded.acquired_at END, expires_at = excluded.expires_at",
            [name, owner, hostname(), holder, process_started(holder), iso(now), iso(now + ttl)],
        )
    return True


def release_lock(store: Store, owner: str, name: str = RUN_LOCK) -> bool:
    with store.transaction() as db:
        return db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", [name, owner]).rowcount > 0


def lock_holder(store: Store, clock: Clock = system_clock, name: str = RUN_LOCK) -> dict[str, Any] | None:
    """The live holder of the lock, or None if it is free (or held by something dead)."""
    row = next(iter(store.db.query("SELECT * FROM locks WHERE name = ?", [name])), None)
    return None if row is None or _lock_is_stale(row, clock()) else row


def _lock_is_stale(row: dict[str, Any], now: datetime) -> bool:
    if row["expires_at"] <= iso(now):
        return True
    if row["host"] != hostname():
        return False  # another machine's process: only its expiry says it is gone
    if not pid_alive(row["pid"]):
        return True
    recorded, current = row.get("pid_started"), process_started(row["pid"])
    return bool(recorded and current and recorded != current)  # the pid now names another process


class Heartbeat:
    """Renews a held lock while a long job works (a retrain, `csbot train`), so others know it is alive."""

    def __init__(self, store: Store, owner: str, clock: Clock) -> None:
        self.store, self.owner, self.clock = store, owner, clock
        self.stop_event = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self._loop, name="lock-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                if not acquire_lock(self.store, self.owner, pid=os.getpid(), clock=self.clock):
                    self.lost = True
            except Exception:  # a busy database must not kill the job; the next beat retries
                log.exception("lock heartbeat failed")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        # Wait for a beat in flight: finishing after the job released the lock, it would take it again.
        self.thread.join(timeout=30)
