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
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.store import Store, iso, utcnow
from models import modeldir
from models.errors import CsbotError, RegistryError
from models.registry import Registry

log = logging.getLogger("csbot.learning")

RUN_LOCK = "retrain"
LOCK_TTL = timedelta(minutes=10)
HEARTBEAT_SECONDS = 30.0
WATERMARK_KEY = "retrain_watermark"
UNLAUNCHED_GRACE = timedelta(minutes=5)
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


# --- the lock ------------------------------------------------------------------------------


def acquire_lock(store: Store, owner: str, *, pid: int | None = None, ttl: timedelta = LOCK_TTL,
                 clock: Clock = system_clock, name: str = RUN_LOCK) -> bool:
    """Take (or refresh, if ``owner`` already holds it) the lock; False if someone else holds it."""
    now = clock()
    with store.transaction() as db:
        row = next(iter(db.query("SELECT * FROM locks WHERE name = ?", [name])), None)
        if row and row["owner"] != owner and not _lock_is_stale(row, now):
            return False
        db.execute(
            "INSERT INTO locks (name, owner, host, pid, acquired_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,"
            " acquired_at = CASE WHEN locks.owner = excluded.owner THEN locks.acquired_at"
            " ELSE excluded.acquired_at END, expires_at = excluded.expires_at",
            [name, owner, hostname(), pid or os.getpid(), iso(now), iso(now + ttl)],
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
    return row["host"] == hostname() and not pid_alive(row["pid"])


# --- runs ----------------------------------------------------------------------------------


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
        if row["host"] == hostname() and row["pid"]:
            dead = not pid_alive(row["pid"])
            why = (f"the training process (pid {row['pid']}) ended without finishing: killed, out of memory or "
                   "crashed. The active model was not changed.")
        elif row["pid"] is None:
            dead = row["started_at"] < iso(now - UNLAUNCHED_GRACE) and lock is None
            why = "the training process never started."
        else:
            dead = lock is None or lock["expires_at"] <= iso(now)
            why = f"the run on {row['host']} stopped renewing its lock (host down or process killed)."
        if not dead:
            continue
        with store.transaction() as db:
            changed = db.execute(
                "UPDATE training_runs SET status = 'failed', ended_at = ?, log_excerpt = coalesce(log_excerpt, '')"
                " || ? WHERE id = ? AND status = 'running'", [iso(now), f"\n[reaped] {why}", row["id"]]).rowcount
            db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", [RUN_LOCK, f"run:{row['id']}"])
        if changed:
            log.warning("training run %s marked failed: %s", row["id"], why)
            reaped.append(row["id"])
    return reaped


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


# --- starting a run ------------------------------------------------------------------------


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


def start_retrain(settings: Settings, trigger: str, *, force: bool = False, mode: str = "auto",
                  extra_args: Sequence[str] = (), clock: Clock = system_clock) -> RetrainHandle:
    """Start a retrain in a child process, unless one is running or nothing changed.

    The same function serves ``/csbot retrain`` (trigger ``slack``), ``csbot retrain`` (``cli``)
    and the schedule (``schedule``). ``force`` trains even when no new data came in.
    """
    with Store(settings.db_path) as store:
        reap_stale_runs(store, clock)
        holder = lock_holder(store, clock)
        if holder:
            reason = f"a retrain is still going ({holder['owner']} on {holder['host']}, since {holder['acquired_at']})"
            return RetrainHandle("skipped", reason, skip_run(store, trigger, reason, clock), settings)
        if not force and nothing_new(store, settings.kb_path):
            reason = "nothing new since the last run (no new corrections, labels, ratings or knowledge-base edits)"
            return RetrainHandle("skipped", reason, skip_run(store, trigger, reason, clock), settings)
        run_id = create_run(store, trigger, clock=clock, phase="starting")
        if not acquire_lock(store, f"run:{run_id}", clock=clock):
            reason = "another replica started a retrain at the same moment"
            update_run(store, run_id, status="skipped", ended_at=iso(clock()), log_excerpt=reason)
            return RetrainHandle("skipped", reason, run_id, settings)
        run_dir = settings.data_dir / "runs" / f"run-{run_id:05d}"
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "train.log"
        try:
            with log_path.open("ab") as out:
                process = subprocess.Popen(
                    retrain_command(trigger, run_id, mode=mode, force=force, extra_args=extra_args),
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=settings_env(settings),
                    start_new_session=True)
        except OSError as exc:
            update_run(store, run_id, status="failed", ended_at=iso(clock()), log_excerpt=f"could not start: {exc}")
            release_lock(store, f"run:{run_id}")
            raise CsbotError(f"Could not start the training process: {exc}",
                             "check that the training extras are installed (pip install -e .[train]).") from exc
        update_run(store, run_id, pid=process.pid, run_dir=str(run_dir))
        acquire_lock(store, f"run:{run_id}", pid=process.pid, clock=clock)
    log.info("retrain run %s started (%s, pid %s), log %s", run_id, trigger, process.pid, log_path)
    return RetrainHandle("started", f"run {run_id} started", run_id, settings, process, log_path)


# --- promotion and rollback ------------------------------------------------------------------


def _set_active(store: Store, registry: Registry, version: str, reason: str) -> None:
    """Check the files, then move the pointer and the statuses in one transaction."""
    card = registry.check(version)
    now = utcnow()
    with store.transaction() as db:
        registry.switch(version)
        db.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'active' AND version != ?",
                   [version])
        db.execute(
            "INSERT INTO model_versions (version, path, status, created_at, promoted_at, manifest_hash, reason)"
            " VALUES (?, ?, 'active', ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET status = 'active',"
            " promoted_at = excluded.promoted_at, reason = excluded.reason",
            [version, str(card.path), card.created_at or now, now, card.data_hash, reason])


def promote(settings: Settings, version: str, *, reason: str = "promoted by an admin") -> dict[str, Any]:
    """Make ``version`` the active model (atomic; running bots swap it in between two messages)."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        before = registry.active()
        if before == version:
            raise RegistryError(f"Version {version} is already active.", "nothing to do.")
        _set_active(store, registry, version, reason)
        log.info("model %s promoted (was %s): %s", version, before, reason)
        return {"active": version, "previous": before}


def rollback(settings: Settings) -> dict[str, Any]:
    """Restore the previously active version, the same way as ``promote``."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        before, target = registry.active(), registry.rollback_target()
        _set_active(store, registry, target, f"rollback from {before}")
        log.info("rolled back from %s to %s", before, target)
        return {"active": target, "previous": before}


def models_list(settings: Settings) -> list[dict[str, Any]]:
    """Every version on disk or in the database, newest first, with status and headline metrics."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        active, previous = registry.active(), registry.previous()
        rows = {r["version"]: dict(r) for r in store.db.query("SELECT * FROM model_versions")}
        on_disk = set(registry.versions())
    from models.registry import version_number

    out = []
    for version in sorted(set(rows) | on_disk, key=lambda v: (version_number(v), v), reverse=True):
        row = rows.get(version, {"version": version, "status": "candidate"})
        metrics = json.loads(row.get("metrics_json") or "{}")
        out.append({"version": version, "status": "active" if version == active else row.get("status"),
                    "previous": version == previous, "on_disk": version in on_disk,
                    "created_at": row.get("created_at"), "promoted_at": row.get("promoted_at"),
                    "metrics": metrics, "reason": row.get("reason") or ""})
    return out


def status(settings: Settings, *, provider: str | None = None, next_run: datetime | None = None,
           clock: Clock = system_clock) -> dict[str, Any]:
    """The learning loop at a glance: active version and metrics, last and next retrain, provider."""
    from bot.scheduler import next_retrain_time

    with Store(settings.db_path) as store:
        reap_stale_runs(store, clock)
        registry = Registry(settings.models_dir, store)
        active = registry.active()
        card = None
        if active:
            try:
                card = modeldir.read(registry.path(active), verify_hashes=False)
            except CsbotError:
                card = None
        last = next(iter(store.db.query("SELECT * FROM training_runs ORDER BY id DESC LIMIT 1")), None)
        last_done = next(iter(store.db.query(
            "SELECT * FROM training_runs WHERE status IN ('promoted', 'rejected', 'failed') ORDER BY id DESC LIMIT 1")),
            None)
        holder = lock_holder(store, clock)
        row = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = ?", [active])), None)
        previous = registry.previous() if active else None
    if provider is None:
        try:
            import onnxruntime as ort

            provider = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() \
                and settings.onnx_provider != "cpu" else "CPUExecutionProvider"
        except ImportError:  # pragma: no cover
            provider = "unknown"
    metrics = {}
    if card:
        metrics = {k: card.metrics.get(k, {}).get("accuracy") for k in ("validation", "test")
                   if isinstance(card.metrics.get(k), dict)}
    if row and row.get("metrics_json"):
        metrics.update(json.loads(row["metrics_json"]))
    nxt = next_run or next_retrain_time(settings, clock())
    return {
        "active": active, "previous": previous,
        "active_created_at": card.created_at if card else None, "metrics": metrics,
        "provider": provider, "running": holder["owner"] if holder else None,
        "last_run": _decode_run(last) if last else None, "last_completed_run": _decode_run(last_done)
        if last_done else None, "next_run": nxt.isoformat() if nxt else None,
        "schedule": f"{settings.retrain_cron} ({settings.timezone or 'local time'})",
    }


# --- reporting to the admins' channel ---------------------------------------------------------


def report_text(run: dict[str, Any]) -> str:
    """A short human summary of a finished run (Slack mrkdwn and the CLI)."""
    metrics, gate = run.get("metrics") or {}, run.get("gate") or {}
    head = f"Retrain run {run.get('id')} ({run.get('trigger')}, {run.get('mode') or '-'} mode): *{run.get('status')}*"
    if run.get("version"):
        head += f", version {run['version']}"
    lines = [head]
    cand, act = metrics.get("candidate") or {}, metrics.get("active") or {}
    if cand.get("accuracy") is not None:
        line = f"eval accuracy {cand['accuracy']:.1%}"
        if act.get("accuracy") is not None:
            line += f" vs active {act['accuracy']:.1%} ({cand['accuracy'] - act['accuracy']:+.1%})"
        lines.append(line + f" on {cand.get('samples', 0)} fixed evaluation examples")
    if metrics.get("corrections", {}).get("total"):
        c = metrics["corrections"]
        lines.append(f"corrections learned: {c['right']}/{c['total']} ({c['share']:.0%})")
    for key, label in (("intents_improved", "improved"), ("intents_worse", "worse")):
        names = metrics.get(key) or []
        if names:
            lines.append(f"{label}: " + ", ".join(f"{n['intent']} ({n['delta_f1']:+.2f})" for n in names[:8]))
    if gate.get("reasons"):
        lines.append("gate: " + "; ".join(gate["reasons"]))
    elif gate.get("reason"):
        lines.append(gate["reason"])
    if run.get("status") == "failed" and run.get("log_excerpt"):
        lines.append("log: " + run["log_excerpt"].strip().splitlines()[-1][:300])
    return "\n".join(lines)


def post_report(settings: Settings, run: dict[str, Any], client: Any = None) -> bool:
    """Post the run's summary and chart to CSBOT_ADMINS_CHANNEL (``files_upload_v2``); False if
    Slack is not configured. Errors are logged, never raised: reporting must not break serving."""
    if not settings.admins_channel or not (client or settings.slack_bot_token):
        return False
    try:
        if client is None:
            from slack_sdk import WebClient

            client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
        text = report_text(run)
        chart = Path(run.get("run_dir") or ".") / "report.png"
        if chart.is_file():
            client.files_upload_v2(channel=settings.admins_channel, file=str(chart), filename="retrain.png",
                                   title=f"Retrain run {run.get('id')}", initial_comment=text)
        else:
            client.chat_postMessage(channel=settings.admins_channel, text=text)
        return True
    except Exception:  # noqa: BLE001 - a Slack outage must not stop the loop
        log.exception("could not post the retrain report to %s", settings.admins_channel)
        return False
