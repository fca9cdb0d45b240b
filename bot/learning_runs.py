"""The learning loop's run records: ``training_runs`` rows, reaping dead runs, and the data watermark.

Every retrain trigger leaves a ``training_runs`` row: ``running`` while a child trains, then
``promoted``, ``rejected``, ``failed`` or ``skipped`` (with the reason, so ``status`` can say why).
A SIGKILLed or OOM-killed child cannot write its own epitaph, so ``reap_stale_runs`` (called
before every run and by ``status``) marks a ``running`` row ``failed`` once its process is gone
and frees its lock. The watermark (``data_watermark``, ``nothing_new``) is a cheap fingerprint of
what a retrain learns from, so a trigger with nothing new can skip without training.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot import messages
from bot.learning_locks import RUN_LOCK, Clock, _lock_is_stale, hostname, pid_alive, system_clock
from bot.store import Store, iso
from models import modeldir

# The same logger as bot.learning: the split into modules is not visible to log filters.
log = logging.getLogger("csbot.learning")

WATERMARK_KEY = "retrain_watermark"
UNLAUNCHED_GRACE = timedelta(minutes=5)


def create_run(store: Store, trigger: str, *, status: str = "running", pid: int | None = None,
               clock: Clock = system_clock, **fields: Any) -> int:
    row = {"started_at": iso(clock()), "status": status, "trigger": trigger, "pid": pid, "host": hostname(),
           **fields}
    columns = ", ".join(f"[{k}]" for k in row)
    with store.transaction() as db:
        cursor = db.execute(f"INSERT INTO training_runs ({columns}) VALUES ({', '.join('?' * len(row))})",
                            list(row.values()))
        return int(cursor.lastrowid or 0)


def update_run(store: Store, run_id: int, **fields: Any) -> None:
    values = {k: json.dumps(v, default=str) if isinstance(v, dict | list) else v for k, v in fields.items()}
    sets = ", ".join(f"[{k}] = ?" for k in values)
    with store.transaction() as db:
        db.execute(f"UPDATE training_runs SET {sets} WHERE id = ?", [*values.values(), run_id])


def get_run(store: Store, run_id: int) -> dict[str, Any] | None:
    row = next(iter(store.db.query("SELECT * FROM training_runs WHERE id = ?", [run_id])), None)
    return _decode_run(row) if row else None


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for key in ("manifest_json", "metrics_json", "gate_json"):
        if out.get(key):
            try:
                out[key[:-5]] = json.loads(out[key])
            except ValueError:
                out[key[:-5]] = None
    return out


def skip_run(store: Store, trigger: str, reason: str, clock: Clock = system_clock) -> int:
    """Record a trigger that did not train (and log it), so `status` can say why."""
    log.info("retrain (%s) skipped: %s", trigger, reason)
    now = iso(clock())
    return create_run(store, trigger, status="skipped", ended_at=now, gate_json=json.dumps({"reason": reason}),
                      log_excerpt=reason, clock=clock)


def reap_stale_runs(store: Store, clock: Clock = system_clock) -> list[int]:
    """Mark ``running`` rows whose process is gone as failed, and free their lock."""
    now = clock()
    reaped = []
    for row in list(store.db.query("SELECT * FROM training_runs WHERE status = 'running'")):
        lock = next(iter(store.db.query("SELECT * FROM locks WHERE name = ? AND owner = ?",
                                        [RUN_LOCK, f"run:{row['id']}"])), None)
        lock_lapsed = lock is None or _lock_is_stale(lock, now)  # expired, or its pid is now another process
        if row["host"] == hostname() and row["pid"] and not pid_alive(row["pid"]):
            dead = True
            why = (f"the training process (pid {row['pid']}) ended without finishing: killed, out of memory or "
                   "crashed. The active model was not changed.")
        elif row["host"] == hostname() and row["pid"]:
            # A live run renews its lock every HEARTBEAT_SECONDS and frees it only after recording its end, so a
            # live pid without a live lock is a hung run, or the pid now belongs to another process (a container
            # restarted, pids reused); either way the run will not finish.
            dead = lock_lapsed
            why = (f"the run (pid {row['pid']}) stopped renewing its lock: hung, or that pid is now another "
                   "process. The active model was not changed.")
        elif row["pid"] is None:
            dead = row["started_at"] < iso(now - UNLAUNCHED_GRACE) and lock is None
            why = "the training process never started."
        else:
            dead = lock_lapsed
            why = f"the run on {row['host']} stopped renewing its lock (host down or process killed)."
        if not dead:
            continue
        with store.transaction() as db:
            changed = db.execute(
                "UPDATE training_runs SET status = 'failed', ended_at = ?, log_excerpt = coalesce(log_excerpt, '')"
                " || ? WHERE id = ? AND status = 'running'", [iso(now), f"\n[reaped] {why}", row["id"]]).rowcount
            db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", [RUN_LOCK, f"run:{row['id']}"])
            # A version the run built but never took through the gate: not a candidate an admin could mistake
            # for one that passed (promote still can, by name, on purpose).
            db.execute("UPDATE model_versions SET status = 'rejected', reason = ? WHERE version = ? AND "
                       "status = 'candidate'", [messages.VERSION_RUN_DIED.format(run_id=row["id"]), row["version"]])
        if changed:
            log.warning("training run %s marked failed: %s", row["id"], why)
            reaped.append(row["id"])
    return reaped


def used_versions(store: Store) -> list[str]:
    """Every version name the records hold (registered versions, and the runs that named one): a new
    version must not take one of them again, even when its folder is gone (``Registry.next_version``)."""
    rows = store.db.query("SELECT version FROM model_versions UNION "
                          "SELECT version FROM training_runs WHERE version IS NOT NULL")
    return [row["version"] for row in rows]


# --- what is new since the last run ----------------------------------------------------------


def data_watermark(store: Store, kb_path: Path | None) -> dict[str, Any]:
    """A cheap fingerprint of everything a retrain learns from (counts and latest changes)."""
    from bot.knowledge import default_path

    row = next(iter(store.db.query(
        """SELECT (SELECT count(*) FROM corrections) AS corrections,
                  (SELECT max(updated_at) FROM corrections) AS corrections_at,
                  (SELECT count(*) FROM labels) AS labels,
                  (SELECT max(id) FROM labels) AS labels_id,
                  (SELECT count(*) FROM feedback) AS feedback,
                  (SELECT max(updated_at) FROM feedback) AS feedback_at""")))
    path = Path(kb_path) if kb_path else default_path()
    row["kb"] = modeldir.sha256_file(path) if path.is_file() else ""
    return dict(row)


def nothing_new(store: Store, kb_path: Path | None) -> bool:
    """True if the data is unchanged since the last completed run."""
    stored = store.kv_get(WATERMARK_KEY)
    return stored is not None and json.loads(stored) == data_watermark(store, kb_path)
