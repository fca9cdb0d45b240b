"""The learning loop, bot side: start a retrain, promote, roll back, list versions, status.

Plain functions shared by the Slack commands, the CLI and the scheduler, so ``/csbot retrain``,
``csbot retrain`` and the nightly schedule run exactly the same code (``start_retrain``).
This module never imports torch: training runs in a child process
(``python -m training retrain``), so a crash or an OOM there leaves the bot serving.

Safety rules, and where they are enforced:

- **One run at a time, across replicas.** A lock row in SQLite (``locks``: owner, host, pid,
  expiry). The bot takes it for ``run:<id>`` *before* launching the child; the child keeps it
  alive with a heartbeat and releases it at the end. A lock whose expiry has passed, or whose
  holder is a dead process on this host, may be taken over.
- **A run that dies is marked failed.** A SIGKILLed or OOM-killed child cannot write its own
  epitaph, so its ``training_runs`` row stays ``running``. ``reap_stale_runs`` (called before
  every run and by ``status``) marks such a row ``failed`` when its pid is no longer alive on
  this host (or, for another host, when its lock has expired) and frees the lock. The active
  model is untouched, because promotion is the job's last step and a single SQLite transaction.
- **Promotion is atomic.** ``promote``/``rollback`` verify the version's files first, then move
  the ``active_model`` pointer and the ``model_versions`` statuses in one transaction. Running
  bots pick the change up with ``Context.refresh_model`` (between two messages).

The code lives in one module per concern and is re-exported here, so callers keep using
``from bot import learning``: the lock (``bot.learning_locks``), run records, reaping and the data
watermark (``bot.learning_runs``), starting a run (``bot.learning_retrain``), promotion, rollback
and the version list (``bot.learning_models``), and status and reports (``bot.learning_report``).
"""

from __future__ import annotations

from bot.learning_locks import (
    HEARTBEAT_SECONDS,
    LOCK_TTL,
    RUN_LOCK,
    Clock,
    Heartbeat,
    acquire_lock,
    hostname,
    lock_holder,
    log,
    pid_alive,
    release_lock,
    system_clock,
)
from bot.learning_locks import _lock_is_stale as _lock_is_stale
from bot.learning_models import _set_active as _set_active
from bot.learning_models import models_list, promote, rollback
from bot.learning_report import post_report, report_text, status
from bot.learning_retrain import RetrainHandle, retrain_command, settings_env, start_retrain, training_installed
from bot.learning_runs import (
    UNLAUNCHED_GRACE,
    WATERMARK_KEY,
    create_run,
    data_watermark,
    get_run,
    nothing_new,
    reap_stale_runs,
    skip_run,
    update_run,
    used_versions,
)
from bot.learning_runs import _decode_run as _decode_run

__all__ = [
    "HEARTBEAT_SECONDS", "LOCK_TTL", "RUN_LOCK", "UNLAUNCHED_GRACE", "WATERMARK_KEY", "Clock", "Heartbeat",
    "RetrainHandle",
    "acquire_lock", "create_run", "data_watermark", "get_run", "hostname", "lock_holder", "log", "models_list",
    "nothing_new", "pid_alive", "post_report", "promote", "reap_stale_runs", "release_lock", "report_text",
    "retrain_command", "rollback", "settings_env", "skip_run", "start_retrain", "status", "system_clock",
    "training_installed",
    "update_run", "used_versions",
]
