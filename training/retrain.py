"""The retrain job: data -> fine-tune -> export -> parity -> evaluate -> gate -> register -> promote.

Run by ``python -m training retrain`` (a child of the bot, see ``bot.learning.start_retrain``).
Every run is a ``training_runs`` row: start, end, status (``running`` -> ``promoted`` |
``rejected`` | ``skipped`` | ``failed``), phase, mode, data manifest, metrics, gate decision and
a log excerpt. Its folder (``<data>/runs/run-NNNNN``) holds ``manifest.json``, ``report.json``,
``report.png`` (accuracy per version and the change in the confusion matrix), ``job.log`` and the
per-epoch ``metrics.jsonl``.

This module runs the job (lock, heartbeat, phases, registration; log capture and the time limit are in
``training.job_guard``); the steps live in:

- ``training.modes``: full or fast. ``full`` fine-tunes the whole encoder from the base model;
  ``fast`` trains only the heads on the active version's frozen encoder. ``auto`` picks ``fast``
  when the active version has a saved encoder and the same intents, and the new training examples
  are at most ``FAST_MAX_NEW`` (25) and at most ``FAST_MAX_SHARE`` (5%) of the dataset; else
  ``full``. The rule and the cost of each are in that module's docstring. With
  ``distill_weight`` > 0 a full run also distils from the active version where it is right
  (``training.distill``), so fewer right answers flip to wrong from one version to the next.
- ``training.gate``: promote only if (1) eval accuracy >= the active model's minus
  ``CSBOT_GATE_TOLERANCE`` on the same fixed evaluation set (less what would favour one side:
  ``training.gate.comparison_set``), (2) the candidate gets right at least
  ``CSBOT_GATE_CORRECTIONS_SHARE`` of the corrected examples it trained on, and (3) its ONNX export
  passed the parity check. Otherwise the version is registered ``rejected`` with the reasons.
- ``training.report_chart``: the run's ``report.png``.

Their public names are re-exported here, so ``from training.retrain import apply_gate`` keeps working.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import learning
from bot import messages as bot_messages
from bot.config import Settings
from bot.store import Store, iso
from models import messages, modeldir
from models.errors import ConfigError, CsbotError, ExportError
from models.registry import Registry
from training.config import DEFAULT_BASE_MODEL, TrainConfig
from training.dataset import DatasetOptions, RetrainDataset, build_dataset, example_key
from training.gate import PARITY_MAX_DIFF as PARITY_MAX_DIFF
from training.gate import PARITY_MIN_AGREEMENT as PARITY_MIN_AGREEMENT
from training.gate import _metrics, apply_gate, comparison_set, corrections_check, evaluate_model, served_classifier
from training.job_guard import JobLog, Watchdog, describe_error, log_excerpt
from training.modes import DATA_KEYS_FILE as DATA_KEYS_FILE
from training.modes import ENCODER_DIR, build_version, choose_mode, trained_keys
from training.modes import FAST_MAX_NEW as FAST_MAX_NEW
from training.modes import FAST_MAX_SHARE as FAST_MAX_SHARE
from training.report_chart import _history, save_report_chart
from training.versions import clean_staging, prune_versions, register_version

log = logging.getLogger("csbot.retrain")

@dataclass
class RetrainOptions:
    trigger: str = "manual"
    run_id: int | None = None
    mode: str = "auto"  # auto | full | fast
    force: bool = False  # train even if nothing changed since the last run
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    dataset: DatasetOptions = field(default_factory=DatasetOptions)
    progress: bool = False


class _Skip(Exception):
    pass


def fail_prepared_run(settings: Settings, run_id: int, exc: BaseException) -> None:
    """Record an error raised before the job started (e.g. a bad ``--set``) on the run the bot
    prepared, so the report says what was wrong instead of the reaper's "killed or crashed"."""
    with Store(settings.db_path) as store:
        run = learning.get_run(store, run_id)
        if run is not None and run.get("status") == "running":
            learning.update_run(store, run_id, status="failed", ended_at=iso(learning.system_clock()),
                                phase="done", gate_json={"reason": describe_error(exc)}, log_excerpt=str(exc))


def run_retrain(settings: Settings, options: RetrainOptions | None = None,
                clock: learning.Clock = learning.system_clock) -> dict[str, Any]:
    """Run the whole job once and return its report (also stored in ``training_runs``)."""
    opts = options or RetrainOptions()
    store = Store(settings.db_path)
    learning.reap_stale_runs(store, clock)
    run_id = opts.run_id
    if run_id is None:
        run_id = learning.create_run(store, opts.trigger, pid=os.getpid(), clock=clock, phase="starting")
    else:
        row = learning.get_run(store, run_id)
        if row is None or row["status"] != "running":
            store.close()
            raise CsbotError(messages.RUN_NOT_WAITING.format(run_id=run_id, status=row and row["status"]),
                             messages.RUN_NOT_WAITING_FIX)
        learning.update_run(store, run_id, pid=os.getpid(), host=learning.hostname())
    run_dir = settings.data_dir / "runs" / f"run-{run_id:05d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    learning.update_run(store, run_id, run_dir=str(run_dir))
    job_log = JobLog(run_dir / "job.log")
    logger = logging.getLogger("csbot")
    logger.addHandler(job_log)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    owner = f"run:{run_id}"
    report: dict[str, Any] = {"run_id": run_id, "trigger": opts.trigger, "run_dir": str(run_dir)}
    started = time.perf_counter()

    def overrun() -> None:
        if (learning.get_run(store, run_id) or {}).get("status") == "promoted":
            return
        reason = (bot_messages.RETRAIN_OVERRUN.format(minutes=settings.retrain_max_minutes)
                  + bot_messages.RETRAIN_OVERRUN_FIX)
        log.error("%s", reason)
        learning.update_run(store, run_id, status="failed", ended_at=iso(clock()), phase="done",
                            gate_json={"reason": reason}, log_excerpt=job_log.excerpt())
        learning.release_lock(store, owner)
        os._exit(3)  # from this thread: the main one may be stuck where no exception can reach it

    try:
        if not learning.acquire_lock(store, owner, pid=os.getpid(), clock=clock):
            holder = learning.lock_holder(store, clock) or {}
            raise _Skip(f"another retrain holds the lock ({holder.get('owner')} on {holder.get('host')})")
        with Watchdog(settings.retrain_max_minutes * 60, overrun), \
                learning.Heartbeat(store, owner, clock) as heartbeat:
            report.update(_run(settings, store, opts, run_id, run_dir, heartbeat, clock))
    except _Skip as skip:
        log.info("retrain skipped: %s", skip)
        report.update(status="skipped", reason=str(skip))
        learning.update_run(store, run_id, status="skipped", ended_at=iso(clock()), phase="done",
                            gate_json={"reason": str(skip)}, log_excerpt=job_log.excerpt())
    except BaseException as exc:
        # After the promotion only housekeeping (pruning, the chart) can fail: the new model is live.
        promoted = (learning.get_run(store, run_id) or {}).get("status") == "promoted"
        log.error("retrain %s: %s", "promoted, then its housekeeping failed" if promoted else "failed",
                  exc if promoted else describe_error(exc))  # "stopped by SIGTERM", not a bare "143"
        tail = "".join(traceback.format_exception(exc)[-3:])
        status = "promoted" if promoted else "failed"
        report.update(status=status, error=str(exc))
        # The error itself (what, then Fix:) is what admins need; the log's last line is often only the Fix.
        why = {} if promoted else {"gate_json": {"reason": describe_error(exc)}}
        learning.update_run(store, run_id, status=status, ended_at=iso(clock()),
                            log_excerpt=(job_log.excerpt() + "\n" + tail)[-8000:], **why)
        if not isinstance(exc, Exception):
            raise
    finally:
        learning.release_lock(store, owner)
        logger.removeHandler(job_log)
        store.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


# Why a candidate that passed the gate is not promoted: an admin moved the active model during the run.
ACTIVE_CHANGED = ("the active model changed during the run (it was gated against {gated}; {now} is active now, "
                  "promoted or rolled back meanwhile), so it was not promoted; run the retrain again to gate it "
                  "against {now}")


def _phase(store: Store, run_id: int, phase: str) -> None:
    log.info("phase: %s", phase)
    learning.update_run(store, run_id, phase=phase)


def _run(settings: Settings, store: Store, opts: RetrainOptions, run_id: int, run_dir: Path,
         heartbeat: learning.Heartbeat, clock: learning.Clock) -> dict[str, Any]:
    from bot.knowledge import load_knowledge_base

    registry = Registry(settings.models_dir, store)
    clean_staging(registry.root)
    _phase(store, run_id, "data")
    watermark = learning.data_watermark(store, settings.kb_path)
    stored = store.kv_get(learning.WATERMARK_KEY)
    if not opts.force and stored is not None and json.loads(stored) == watermark:
        raise _Skip(bot_messages.SKIP_NOTHING_NEW)
    data = build_dataset(store, load_knowledge_base(settings.kb_path), opts.dataset)
    data.manifest["watermark"] = watermark
    modeldir.write_json(run_dir / "manifest.json", data.manifest)
    log.info("dataset: %s training examples %s, %s evaluation examples, %s corrections trained on",
             len(data.train), data.manifest["per_source"], len(data.eval), len(data.corrections))

    active = registry.active()
    active_card = None
    if active:
        try:
            active_card = registry.check(active)
            served_classifier(active_card.path, settings)  # matching checksums do not make the graph load
        except CsbotError as exc:
            # The run is what replaces such a version: it must not fail on it night after night.
            log.warning("the active model %s cannot be read (%s); comparing against nothing", active, exc)
            active_card = None
    active_trained = trained_keys(active_card)
    mode, mode_reason, new_count = choose_mode(opts.mode, data, active_card, active_trained)
    log.info("mode: %s (%s)", mode, mode_reason)
    learning.update_run(store, run_id, mode=mode, manifest_json=data.manifest)

    version = registry.next_version(learning.used_versions(store))
    learning.update_run(store, run_id, version=version)  # said now: a run killed later still names its version
    _phase(store, run_id, "train")
    train_started = time.perf_counter()
    card, parity_error, mode, mode_reason = _train_candidate(settings, store, opts, run_id, run_dir, data, registry,
                                                             version, active_card, active_trained, mode, mode_reason)
    train_seconds = time.perf_counter() - train_started

    _phase(store, run_id, "evaluate")
    candidate_intents = card.intents if card else data.intents
    compared, labels, left_out = comparison_set(data.eval, candidate_intents, active if active_card else None,
                                                active_card.intents if active_card else None, active_trained)
    cand = evaluate_model(card.path, compared, labels, settings) if card else None
    act = evaluate_model(active_card.path, compared, labels, settings) if active_card else None
    corrections = corrections_check(card.path, data.corrections, settings) if card else {"total": 0}
    parity = card.metrics.get("parity") if card else None
    gate = apply_gate(cand, act, corrections, parity, parity_error, settings.gate_tolerance,
                      settings.gate_corrections_share, settings.gate_alpha)
    # A rejection for a reason other than the candidate itself must not mark this data as seen: the
    # next retrain (nightly or `csbot retrain`) would skip it as "nothing new" and never gate it.
    superseded = False
    if heartbeat.lost or not learning.acquire_lock(store, f"run:{run_id}", pid=os.getpid(), clock=clock):
        gate["passed"], superseded = False, True
        gate["reasons"].append("the run lost its lock (another process took over), so it may not promote")

    _phase(store, run_id, "register")
    metrics = _metrics(cand, act, corrections, labels)
    metrics.update(mode=mode, mode_reason=mode_reason, new_examples=new_count,
                   train_seconds=round(train_seconds, 1), eval_samples=len(data.eval), compared=left_out)
    headline = {"eval_accuracy": cand and cand.get("accuracy"), "eval_samples": cand and cand.get("samples"),
                "active_eval_accuracy": act and act.get("accuracy"),
                "validation": card and card.metrics.get("validation", {}).get("accuracy"), "run": run_id}
    if card:
        register_version(store, card, headline, status="candidate", reason="")
    if gate["passed"] and card and not learning._set_active(
            store, registry, card.version, f"run {run_id}: gate passed" + (f" (was {active})" if active else ""),
            expected=active, promoting_run=run_id):
        if registry.active() != card.version:  # else an admin promoted this very candidate during the run
            gate["passed"], superseded = False, True
            gate["reasons"].append(ACTIVE_CHANGED.format(gated=active or "none", now=registry.active() or "none"))
    if gate["passed"] and card:
        status = "promoted"
        # Recorded at once: should the housekeeping below fail or the job be killed, the run still
        # says that it promoted (the reaper only marks 'running' runs failed).
        learning.update_run(store, run_id, status=status, version=card.version, gate_json=gate)
    else:
        status = "rejected"
        if card:  # without a model folder (export refused) there is nothing to register
            register_version(store, card, headline, status="rejected", reason="; ".join(gate["reasons"]))
    pruned = prune_versions(store, registry, settings.keep_versions)
    chart = None
    if cand:
        chart = save_report_chart(run_dir / "report.png", _history(store), card.version if card else version,
                                  cand, act, labels, status == "promoted")
    if not superseded:
        store.kv_set(learning.WATERMARK_KEY, json.dumps(watermark))
    log.info("run %s %s: %s", run_id, status, "; ".join(gate["reasons"]) or "all gate checks passed")
    report = {"status": status, "version": card.version if card else None, "active_before": active,
              "active_after": registry.active(), "mode": mode, "mode_reason": mode_reason, "metrics": metrics,
              "gate": gate, "pruned": pruned, "chart": str(chart) if chart else None,
              "manifest": {k: data.manifest[k] for k in ("examples", "per_source", "hash", "excluded",
                                                          "corrections_trained")}}
    learning.update_run(store, run_id, status=status, ended_at=iso(clock()), phase="done",
                        version=card.version if card else None, metrics_json=metrics, gate_json=gate,
                        log_excerpt=log_excerpt(run_dir))
    return report


def _train_candidate(settings: Settings, store: Store, opts: RetrainOptions, run_id: int, run_dir: Path,
                     data: RetrainDataset, registry: Registry, version: str, active_card: modeldir.ModelCard | None,
                     active_trained: set[str], mode: str, mode_reason: str
                     ) -> tuple[modeldir.ModelCard | None, str | None, str, str]:
    """Build ``version``: (its card, or None with the export's parity error; the mode and why, which change when
    a fast run's saved encoder does not load). The card is registered as a candidate before the gate."""
    full_config = TrainConfig().replace(**{"base_model": settings.base_model or DEFAULT_BASE_MODEL,
                                           **opts.overrides})

    def build(mode: str) -> modeldir.ModelCard:
        config = full_config
        if mode == "fast":
            assert active_card is not None
            config = config.replace(base_model=str(active_card.path / ENCODER_DIR), freeze_encoder=True)
        teacher = active_card.path if active_card and mode == "full" and config.distill_weight else None
        # A fast run keeps the active encoder, so its thresholds may only be fitted on what that encoder never saw.
        unseen = [e for e in data.eval if example_key(e) not in active_trained] if mode == "fast" else None
        return build_version(data, config, registry.root / version, version, run_dir, opts.progress, teacher, unseen)

    card, parity_error = None, None
    try:
        try:
            card = build(mode)
        except ConfigError as exc:
            if mode != "fast":
                raise
            # The active version's saved encoder does not load (damaged, or half copied): every fast run would
            # fail the same way, night after night, so this one trains in full from the base model.
            mode, mode_reason = "full", messages.FAST_ENCODER_UNLOADABLE.format(
                version=active_card.version if active_card else "?", error=exc.what.splitlines()[0])
            log.warning("mode: full (%s)", mode_reason)
            learning.update_run(store, run_id, mode=mode)
            card = build(mode)
    except ExportError as exc:
        parity_error = str(exc).splitlines()[0]
    if card is not None:  # registered before the gate: a run killed from here leaves a row the reaper closes
        register_version(store, card, {}, "candidate", bot_messages.VERSION_AWAITING_GATE.format(run_id=run_id))
    return card, parity_error, mode, mode_reason
