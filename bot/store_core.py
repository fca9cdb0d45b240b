"""The store's core: time stamps, per-thread SQLite connections, write transactions and migrations.

``StoreBase`` owns everything about *how* the store talks to SQLite (one connection per thread,
WAL, ``BEGIN IMMEDIATE`` transactions, closing every connection, applying migrations); the query
mixins in ``bot.store_messages``, ``bot.store_feedback``, ``bot.store_state`` and
``bot.store_retention`` only say *what* to read and write, and ``bot.store.Store`` combines them.
The module also holds the small helpers those mixins share (``iso``, ``utcnow``, ``_insert``,
``_scalar``, ``_check``) and the ``Row`` and ``Params`` aliases.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from bot import messages
from bot.migrations import MIGRATIONS, Migration
from models.errors import StoreError

Row = dict[str, Any]
Params = Sequence[Any] | dict[str, Any]

_StoreT = TypeVar("_StoreT", bound="StoreBase")


def iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC, so comparing the text compares the times. Naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def utcnow() -> str:
    return iso(datetime.now(timezone.utc))


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


# SQLite result codes that describe the database file's state (not a mistake in csbot's SQL).
_DATABASE_STATE = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN",
                   "SQLITE_PERM", "SQLITE_IOERR")
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # a page of the file is damaged, or it is not a database


# Python < 3.11 has no ``sqlite_errorname``: the same codes, read from SQLite's own error text.
_CODE_BY_TEXT = (("malformed", "SQLITE_CORRUPT"), ("not a database", "SQLITE_NOTADB"), ("locked", "SQLITE_BUSY"),
                 ("busy", "SQLITE_BUSY"), ("disk is full", "SQLITE_FULL"), ("readonly", "SQLITE_READONLY"),
                 ("unable to open", "SQLITE_CANTOPEN"), ("disk i/o", "SQLITE_IOERR"))


def _error_code(exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorname", "")
    if code:
        return str(code)
    text = str(exc).lower()
    return next((name for needle, name in _CODE_BY_TEXT if needle in text), "")


def is_database_state(exc: sqlite3.DatabaseError) -> bool:
    """Whether ``exc`` is about the database file (busy, full, read-only, damaged), not about a statement."""
    return _error_code(exc).startswith(_DATABASE_STATE + _DAMAGED)


def open_error(path: Path, exc: sqlite3.DatabaseError, busy_timeout_ms: int) -> StoreError:
    """Say what kept the database from opening or from taking a write. Only a damaged file gets "move it
    away": a busy, full or read-only one holds every message and correction, and moving it would lose them."""
    code = _error_code(exc)
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        what, fix = messages.DB_BUSY.format(path=path, seconds=busy_timeout_ms / 1000), messages.DB_BUSY_FIX
    elif code.startswith("SQLITE_FULL"):
        what, fix = messages.DB_FULL.format(path=path), messages.DB_FULL_FIX
    elif code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR")):
        what, fix = messages.DB_CANNOT_WRITE.format(path=path, error=exc), messages.DB_CANNOT_WRITE_FIX
    else:  # SQLITE_NOTADB, SQLITE_CORRUPT, or a schema csbot did not write
        what, fix = messages.DB_DAMAGED.format(path=path, error=exc), messages.DB_DAMAGED_FIX
    return StoreError(what, fix)


class StoreBase:
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
        self.busy_timeout_ms = busy_timeout_ms
        self._migrations = list(migrations)
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(messages.DATA_DIR_CANNOT_CREATE.format(path=self.path.parent, error=exc.strerror or exc),
                             messages.DATA_DIR_CANNOT_CREATE_FIX) from exc
        try:
            self.migrate()
        except StoreError:  # busy, full or read-only, already said as such by transaction()
            self.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.close()
            raise open_error(self.path, exc, self.busy_timeout_ms) from exc

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
        self._use_wal(conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Freed cells are zeroed, not left in the file: purged customer text must not survive in csbot.db or in
        # its backups. Off in SQLite builds without SQLITE_SECURE_DELETE, so set here rather than assumed.
        conn.execute("PRAGMA secure_delete=ON")
        with self._lock:
            self._opened.append(conn)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new file to WAL. While another process is still creating it (two csbot commands started at once
        on a fresh data dir), SQLite answers "database is locked" at once rather than waiting out busy_timeout
        (a lock it cannot wait for without deadlock), so this waits itself, up to the same timeout."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _error_code(exc).startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A write transaction (``BEGIN IMMEDIATE``); nested use joins the outer one."""
        db = self.db
        if db.conn.in_transaction:
            yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: a transaction left open would swallow later writes.
                if db.conn.in_transaction:
                    db.conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            # Busy past the timeout, a full disk, a read-only file, a damaged page: the StoreError every surface
            # shows (chat, CLI, Slack, logs) instead of a traceback. Any other error is a bug and stays one.
            if not is_database_state(exc):
                raise
            raise open_error(self.path, exc, self.busy_timeout_ms) from exc

    def close(self) -> None:
        """Close every connection this store opened, whichever thread opened it."""
        with self._lock:
            self._closed = True
            for conn in self._opened:
                conn.close()
            self._opened.clear()

    def __enter__(self: _StoreT) -> _StoreT:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, params: Params = ()) -> Row | None:
        return next(iter(self.db.query(sql, params)), None)

    def migrate(self) -> list[str]:
        """Apply pending migrations in order, each in its own transaction; returns the names applied."""
        applied: list[str] = []
        if self._is_current():
            return applied  # the common case: no write lock taken just to open the store
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

    def _is_current(self) -> bool:
        """Whether every migration is recorded, read without a lock (a plain read never waits in WAL mode)."""
        found = self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'")
        if found.fetchone() is None:
            return False
        recorded = {int(r[0]) for r in self.db.execute("SELECT id FROM migrations")}
        if recorded and max(recorded) > len(MIGRATIONS):
            # A newer csbot migrated it: this code would write to a schema it does not know.
            raise StoreError(messages.DB_NEWER.format(path=self.path, version=max(recorded), known=len(MIGRATIONS)),
                             messages.DB_NEWER_FIX)
        return recorded >= set(range(1, len(self._migrations) + 1))

    @property
    def schema_version(self) -> int:
        return int(_scalar(self.db, "SELECT coalesce(max(id), 0) FROM migrations"))
