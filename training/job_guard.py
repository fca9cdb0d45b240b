"""What watches a running retrain job: its log capture, its time limit, and how its errors read.

``JobLog`` copies the job's log lines to the run's ``job.log`` and keeps the last ones for the
``training_runs`` row; ``Watchdog`` stops a job that runs past CSBOT_RETRAIN_MAX_MINUTES;
``describe_error`` is a failed run's reason as admins read it.
"""

from __future__ import annotations

import errno
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from bot import messages
from models.errors import CsbotError

LOG_EXCERPT_LINES = 40


class Watchdog:
    """Stops a job that runs past CSBOT_RETRAIN_MAX_MINUTES: records the failure, frees the lock, exits.

    A hung child (a deadlock, a stuck file system) would otherwise keep its lock alive through the
    heartbeat forever, and every later retrain on every replica would be skipped. A run that already
    promoted is left to finish its housekeeping."""

    def __init__(self, seconds: float, on_overrun: Any) -> None:
        self.timer = threading.Timer(seconds, on_overrun) if seconds > 0 else None
        if self.timer:
            self.timer.daemon = True

    def __enter__(self) -> Watchdog:
        if self.timer:
            self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.timer:
            self.timer.cancel()


class JobLog(logging.Handler):
    def __init__(self, path: Path) -> None:
        super().__init__(logging.INFO)
        self.path = path
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.lines.append(line)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def excerpt(self) -> str:
        return "\n".join(self.lines[-LOG_EXCERPT_LINES:])


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _disk_error(exc: OSError) -> CsbotError | None:
    """A full or read-only data directory, said as such with the fix (not "OSError: [Errno 28] ...")."""
    path = exc.filename or "?"
    if exc.errno in _DISK_FULL:
        return CsbotError(messages.RETRAIN_DISK_FULL.format(path=path), messages.RETRAIN_DISK_FULL_FIX)
    if exc.errno in _NOT_WRITABLE:
        return CsbotError(messages.RETRAIN_CANNOT_WRITE.format(path=path, error=exc.strerror or exc),
                          messages.RETRAIN_CANNOT_WRITE_FIX)
    return None


def describe_error(exc: BaseException) -> str:
    """A failed run's reason as admins read it: a CsbotError's text, else the exception's type and text."""
    if isinstance(exc, OSError) and (disk := _disk_error(exc)) is not None:
        exc = disk
    if isinstance(exc, CsbotError):
        return f"{messages.ERROR_PREFIX}{exc}"
    if isinstance(exc, SystemExit) and isinstance(exc.code, int) and exc.code > 128:  # retrain_cli's signal exit
        try:
            name = signal.Signals(exc.code - 128).name
        except ValueError:
            name = f"signal {exc.code - 128}"
        return messages.ERROR_PREFIX + messages.RUN_STOPPED_BY_SIGNAL.format(signal=name)
    return messages.ERROR_PREFIX + (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def log_excerpt(run_dir: Path) -> str:
    path = run_dir / "job.log"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    return "\n".join(lines[-LOG_EXCERPT_LINES:])
