"""Starting a retrain: the one entry point behind ``/csbot retrain``, ``csbot retrain`` and the schedule.

``start_retrain`` reaps dead runs, skips (and records why) when another run holds the lock or
nothing changed since the last run, otherwise records a new run, takes the lock for it and
launches ``python -m training retrain`` as a child process with the same settings
(``settings_env``). Training in a child means the bot never imports torch, and a crash or an OOM
there leaves the bot serving. ``RetrainHandle`` is what the caller gets back, and can wait on.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import messages
from bot.config import Settings
from bot.learning_locks import Clock, acquire_lock, lock_holder, release_lock, system_clock
from bot.learning_runs import create_run, get_run, nothing_new, reap_stale_runs, skip_run, update_run
from bot.store import Store, iso
from models.errors import CsbotError

# The same logger as bot.learning: the split into modules is not visible to log filters.
log = logging.getLogger("csbot.learning")


@dataclass
class RetrainHandle:
    """What ``start_retrain`` did: ``started`` (a child process is training) or ``skipped``."""

    status: str
    reason: str
    run_id: int | None
    settings: Settings
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return self.status == "started"

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the child; return its training_runs row (a dead child's run is marked failed)."""
        if self.run_id is None:
            return {"status": self.status, "reason": self.reason}
        if self.process is not None:
            self.process.wait(timeout)
        with Store(self.settings.db_path) as store:
            reap_stale_runs(store)
            self.result = get_run(store, self.run_id) or {}
        return self.result


def retrain_command(trigger: str, run_id: int | None = None, *, mode: str = "auto", force: bool = False,
                    extra_args: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "training", "retrain", "--trigger", trigger, "--mode", mode]
    if run_id is not None:
        cmd += ["--run-id", str(run_id)]
    if force:
        cmd.append("--force")
    return [*cmd, *extra_args]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process read the same settings as this one."""
    env = dict(os.environ)
    for name, info in Settings.model_fields.items():
        value = getattr(settings, name)
        if info.alias and value is not None and value != "":
            env[info.alias] = str(value)
    return env


def training_installed() -> bool:
    """Whether this interpreter (the one the child runs on) has the training packages."""
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("torch", "transformers"))
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        return False


def start_retrain(settings: Settings, trigger: str, *, force: bool = False, mode: str = "auto",
                  extra_args: Sequence[str] = (), clock: Clock = system_clock) -> RetrainHandle:
    """Start a retrain in a child process, unless one is running or nothing changed.

    The same function serves ``/csbot retrain`` (trigger ``slack``), ``csbot retrain`` (``cli``)
    and the schedule (``schedule``). ``force`` trains even when no new data came in.
    """
    if not training_installed():  # before the lock: a replica that cannot train must not block one that can
        raise CsbotError(messages.TRAINING_NOT_INSTALLED, messages.TRAINING_NOT_INSTALLED_FIX)
    with Store(settings.db_path) as store:
        reap_stale_runs(store, clock)
        holder = lock_holder(store, clock)
        if holder:
            reason = messages.SKIP_STILL_RUNNING.format(owner=holder["owner"], host=holder["host"],
                                                        since=holder["acquired_at"])
            return RetrainHandle("skipped", reason, skip_run(store, trigger, reason, clock), settings)
        if not force and nothing_new(store, settings.kb_path):
            reason = messages.SKIP_NOTHING_NEW
            return RetrainHandle("skipped", reason, skip_run(store, trigger, reason, clock), settings)
        run_id = create_run(store, trigger, clock=clock, phase="starting")
        if not acquire_lock(store, f"run:{run_id}", clock=clock):
            reason = messages.SKIP_RACE
            update_run(store, run_id, status="skipped", ended_at=iso(clock()), log_excerpt=reason)
            return RetrainHandle("skipped", reason, run_id, settings)
        run_dir = settings.data_dir / "runs" / f"run-{run_id:05d}"
        log_path = run_dir / "train.log"
        try:  # a run folder that cannot be made (read-only or full disk) must not leave the lock held
            run_dir.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as out:
                process = subprocess.Popen(
                    retrain_command(trigger, run_id, mode=mode, force=force, extra_args=extra_args),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=settings_env(settings),
                    start_new_session=True)
        except OSError as exc:
            update_run(store, run_id, status="failed", ended_at=iso(clock()), log_excerpt=f"could not start: {exc}")
            release_lock(store, f"run:{run_id}")
            raise CsbotError(messages.TRAINING_START_FAILED.format(error=exc),
                             messages.TRAINING_START_FAILED_FIX) from exc
        update_run(store, run_id, pid=process.pid, run_dir=str(run_dir))
        acquire_lock(store, f"run:{run_id}", pid=process.pid, clock=clock)
    log.info("retrain run %s started (%s, pid %s), log %s", run_id, trigger, process.pid, log_path)
    return RetrainHandle("started", f"run {run_id} started", run_id, settings, process, log_path)
