"""The retrain job: data -> fine-tune -> export -> parity -> evaluate -> gate -> register -> promote.

Run by ``python -m training retrain`` (a child of the bot, see ``bot.learning.start_retrain``).
Every run is a ``training_runs`` row: start, end, status (``running`` -> ``promoted`` |
``rejected`` | ``skipped`` | ``failed``), phase, mode, data manifest, metrics, gate decision and
a log excerpt. Its folder (``<data>/runs/run-NNNNN``) holds ``manifest.json``, ``report.json``,
``report.png`` (accuracy per version and the change in the confusion matrix), ``job.log`` and the
per-epoch ``metrics.jsonl``.

Full or fast
------------
``full``: fine-tune the whole encoder (from the base model, so a retrain is reproducible from
its data and never compounds an earlier run's drift) plus both heads. Cost on 2 CPU cores:
about 11 ms per training example per epoch (Banking77: 9,000 examples, ~100 s an epoch; the
default is 3 epochs), then export, parity and evaluation (~1 min for MiniLM).

``fast``: keep the active version's fine-tuned encoder (saved in its ``encoder/`` folder) frozen
and train only the two heads on cached sentence embeddings: one forward pass over the data
(about a tenth of one full epoch) plus a few seconds of head training. It can only re-draw the
decision boundaries in the embedding space the active model already has, which is enough for
a handful of corrections and not for many new phrasings.

``auto`` picks ``fast`` when all of these hold, else ``full``:

- the active version has a saved encoder and the same intents as the new data;
- at most ``FAST_MAX_NEW`` (25) training examples are new since the active version's data,
  and they are at most ``FAST_MAX_SHARE`` (5%) of the dataset.

The gate judges either kind the same way, so a fast run that cannot fit the corrections is
simply rejected and the next larger batch of data triggers a full run.

Gate
----
Promote only if (1) eval accuracy >= the active model's minus ``CSBOT_GATE_TOLERANCE`` on the
same fixed evaluation set, (2) the candidate gets right at least ``CSBOT_GATE_CORRECTIONS_SHARE``
of the corrected examples it trained on, and (3) its ONNX export passed the parity check.
Otherwise the version is registered ``rejected`` with the reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot import learning
from bot.config import Settings
from bot.store import Store, iso
from models import modeldir
from models.errors import CsbotError, ExportError
from models.registry import Registry
from training.config import DEFAULT_BASE_MODEL, TrainConfig
from training.data import Example
from training.dataset import DatasetOptions, RetrainDataset, build_dataset, text_key
from training.evaluate import classification_report

log = logging.getLogger("csbot.retrain")

ENCODER_DIR = "encoder"
DATA_KEYS_FILE = "data_keys.json"
FAST_MAX_NEW = 25
FAST_MAX_SHARE = 0.05
PARITY_MAX_DIFF = 1e-3
PARITY_MIN_AGREEMENT = 0.995
LOG_EXCERPT_LINES = 40


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


class _Heartbeat:
    """Renews the run's lock while the job works, so others know it is alive."""

    def __init__(self, store: Store, owner: str, clock: learning.Clock) -> None:
        self.store, self.owner, self.clock = store, owner, clock
        self.stop_event = threading.Event()
        self.lost = False
        self.thread = threading.Thread(target=self._loop, name="retrain-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self.stop_event.wait(learning.HEARTBEAT_SECONDS):
            try:
                if not learning.acquire_lock(self.store, self.owner, pid=os.getpid(), clock=self.clock):
                    self.lost = True
            except Exception:  # a busy database must not kill the job; the next beat retries
                log.exception("lock heartbeat failed")

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()


class _JobLog(logging.Handler):
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
            raise CsbotError(f"Training run {run_id} is not waiting to run (status {row and row['status']}).",
                             "start runs with `csbot retrain`; --run-id is for the bot's own launcher.")
        learning.update_run(store, run_id, pid=os.getpid(), host=learning.hostname())
    run_dir = settings.data_dir / "runs" / f"run-{run_id:05d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    learning.update_run(store, run_id, run_dir=str(run_dir))
    job_log = _JobLog(run_dir / "job.log")
    logger = logging.getLogger("csbot")
    logger.addHandler(job_log)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    owner = f"run:{run_id}"
    report: dict[str, Any] = {"run_id": run_id, "trigger": opts.trigger, "run_dir": str(run_dir)}
    started = time.perf_counter()
    try:
        if not learning.acquire_lock(store, owner, pid=os.getpid(), clock=clock):
            holder = learning.lock_holder(store, clock) or {}
            raise _Skip(f"another retrain holds the lock ({holder.get('owner')} on {holder.get('host')})")
        with _Heartbeat(store, owner, clock) as heartbeat:
            report.update(_run(settings, store, opts, run_id, run_dir, heartbeat, clock))
    except _Skip as skip:
        log.info("retrain skipped: %s", skip)
        report.update(status="skipped", reason=str(skip))
        learning.update_run(store, run_id, status="skipped", ended_at=iso(clock()), phase="done",
                            gate_json={"reason": str(skip)}, log_excerpt=job_log.excerpt())
    except BaseException as exc:
        log.error("retrain failed: %s", exc)
        tail = "".join(traceback.format_exception(exc)[-3:])
        report.update(status="failed", error=str(exc))
        learning.update_run(store, run_id, status="failed", ended_at=iso(clock()),
                            log_excerpt=(job_log.excerpt() + "\n" + tail)[-8000:])
        if not isinstance(exc, Exception):
            raise
    finally:
        learning.release_lock(store, owner)
        logger.removeHandler(job_log)
        store.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def _phase(store: Store, run_id: int, phase: str) -> None:
    log.info("phase: %s", phase)
    learning.update_run(store, run_id, phase=phase)


def _run(settings: Settings, store: Store, opts: RetrainOptions, run_id: int, run_dir: Path,
         heartbeat: _Heartbeat, clock: learning.Clock) -> dict[str, Any]:
    from bot.knowledge import load_knowledge_base

    registry = Registry(settings.models_dir, store)
    _clean_staging(registry.root)
    _phase(store, run_id, "data")
    watermark = learning.data_watermark(store, settings.kb_path)
    stored = store.kv_get(learning.WATERMARK_KEY)
    if not opts.force and stored is not None and json.loads(stored) == watermark:
        raise _Skip("nothing new since the last run")
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
        except CsbotError as exc:
            log.warning("the active model %s cannot be read (%s); comparing against nothing", active, exc)
    mode, mode_reason, new_count = choose_mode(opts.mode, data, active_card)
    log.info("mode: %s (%s)", mode, mode_reason)
    learning.update_run(store, run_id, mode=mode, manifest_json=data.manifest)

    config = TrainConfig().replace(**{"base_model": settings.base_model or DEFAULT_BASE_MODEL, **opts.overrides})
    if mode == "fast":
        assert active_card is not None
        config = config.replace(base_model=str(active_card.path / ENCODER_DIR), freeze_encoder=True)
    version = registry.next_version()
    _phase(store, run_id, "train")
    train_started = time.perf_counter()
    parity_error = None
    try:
        card = build_version(data, config, registry.root / version, version, run_dir, opts.progress)
    except ExportError as exc:
        card, parity_error = None, str(exc).splitlines()[0]
    train_seconds = time.perf_counter() - train_started

    _phase(store, run_id, "evaluate")
    labels = sorted(set(data.intents) | set(active_card.intents if active_card else ())
                    | {e.intent for e in data.eval if e.intent})
    cand = evaluate_model(card.path, data.eval, labels, settings) if card else None
    act = evaluate_model(active_card.path, data.eval, labels, settings) if active_card else None
    corrections = corrections_check(card.path, data.corrections, settings) if card else {"total": 0}
    parity = card.metrics.get("parity") if card else None
    gate = apply_gate(cand, act, corrections, parity, parity_error, settings.gate_tolerance,
                      settings.gate_corrections_share)
    if heartbeat.lost or not learning.acquire_lock(store, f"run:{run_id}", pid=os.getpid(), clock=clock):
        gate["passed"] = False
        gate["reasons"].append("the run lost its lock (another process took over), so it may not promote")

    _phase(store, run_id, "register")
    metrics = _metrics(cand, act, corrections, labels)
    metrics.update(mode=mode, mode_reason=mode_reason, new_examples=new_count,
                   train_seconds=round(train_seconds, 1), eval_samples=len(data.eval))
    headline = {"eval_accuracy": cand and cand.get("accuracy"), "eval_samples": cand and cand.get("samples"),
                "active_eval_accuracy": act and act.get("accuracy"),
                "validation": card and card.metrics.get("validation", {}).get("accuracy"), "run": run_id}
    if card:
        _register(store, card, headline, status="candidate", reason="")
    if gate["passed"] and card:
        learning._set_active(store, registry, card.version,
                             f"run {run_id}: gate passed" + (f" (was {active})" if active else ""))
        status = "promoted"
    else:
        status = "rejected"
        if card:  # without a model folder (export refused) there is nothing to register
            _register(store, card, headline, status="rejected", reason="; ".join(gate["reasons"]))
    pruned = registry.prune(settings.keep_versions)
    if pruned:
        with store.transaction() as db:
            for v in pruned:
                db.execute("UPDATE model_versions SET reason = trim(coalesce(reason, '') || ' [files deleted: "
                           "keep_versions]') WHERE version = ?", [v])
        log.info("pruned old versions: %s", ", ".join(pruned))
    chart = None
    if cand:
        chart = save_report_chart(run_dir / "report.png", _history(store), card.version if card else version,
                                  cand, act, labels, status == "promoted")
    store.kv_set(learning.WATERMARK_KEY, json.dumps(watermark))
    log.info("run %s %s: %s", run_id, status, "; ".join(gate["reasons"]) or "all gate checks passed")
    report = {"status": status, "version": card.version if card else None, "active_before": active,
              "active_after": registry.active(), "mode": mode, "mode_reason": mode_reason, "metrics": metrics,
              "gate": gate, "pruned": pruned, "chart": str(chart) if chart else None,
              "manifest": {k: data.manifest[k] for k in ("examples", "per_source", "hash", "excluded",
                                                          "corrections_trained")}}
    learning.update_run(store, run_id, status=status, ended_at=iso(clock()), phase="done",
                        version=card.version if card else None, metrics_json=metrics, gate_json=gate,
                        log_excerpt=_excerpt(run_dir))
    return report


def _excerpt(run_dir: Path) -> str:
    path = run_dir / "job.log"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    return "\n".join(lines[-LOG_EXCERPT_LINES:])


def _register(store: Store, card: modeldir.ModelCard, headline: dict[str, Any], status: str, reason: str) -> None:
    with store.transaction() as db:
        db.execute(
            "INSERT INTO model_versions (version, path, status, created_at, metrics_json, manifest_hash, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET status = excluded.status,"
            " metrics_json = excluded.metrics_json, reason = excluded.reason",
            [card.version, str(card.path), status, card.created_at, json.dumps(headline), card.data_hash, reason])


def _clean_staging(root: Path) -> None:
    """Remove staging folders left by killed runs (their pid is in the name)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        match = re.match(r"^\.v\d+\.staging-(\d+)$", path.name)
        if (match and not learning.pid_alive(int(match.group(1)))) or path.name.startswith(".trash-"):
            shutil.rmtree(path, ignore_errors=True)


# --- mode ----------------------------------------------------------------------------------------


def _data_keys(examples: Sequence[Example]) -> set[str]:
    return {hashlib.sha1(f"{text_key(e.text)}\x1f{e.intent}\x1f{e.sentiment}".encode()).hexdigest()[:16]
            for e in examples}


def choose_mode(requested: str, data: RetrainDataset, active: modeldir.ModelCard | None) -> tuple[str, str, int]:
    """(mode, why, number of new training examples) -- see the module docstring for the rule."""
    known: set[str] = set()
    if active and (active.path / DATA_KEYS_FILE).is_file():
        known = set(json.loads((active.path / DATA_KEYS_FILE).read_text()))
    new = len(_data_keys(data.train) - known)
    can_fast, why_not = True, ""
    if active is None:
        can_fast, why_not = False, "there is no active model to start from"
    elif not (active.path / ENCODER_DIR).is_dir():
        can_fast, why_not = False, f"the active version {active.version} has no saved encoder"
    elif set(active.intents) != set(data.intents):
        can_fast, why_not = False, "the set of intents changed"
    if requested == "full":
        return "full", "requested", new
    if requested == "fast":
        return ("fast", "requested", new) if can_fast else ("full", f"fast requested but {why_not}", new)
    if not can_fast:
        return "full", why_not, new
    limit = min(FAST_MAX_NEW, int(FAST_MAX_SHARE * len(data.train)))
    if new <= limit:
        return "fast", f"{new} new examples (<= {limit}): heads only on the active encoder", new
    return "full", f"{new} new examples (> {limit})", new


# --- train and export ----------------------------------------------------------------------------


def build_version(data: RetrainDataset, config: TrainConfig, dest: Path, version: str, run_dir: Path,
                  progress: bool = False) -> modeldir.ModelCard:
    """Fine-tune, save the encoder (for later fast runs), export with parity, and rename into place."""
    from training.finetune import train
    from training.pipeline import _write

    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = train(data.train, config, log_dir=run_dir, progress=progress)
        encoder = staging / ENCODER_DIR
        result.model.encoder.save_pretrained(encoder)
        result.tokenizer.save_pretrained(encoder)
        (staging / DATA_KEYS_FILE).write_text(json.dumps(sorted(_data_keys(data.train))))
        return _write(result, staging, dest, version, data.eval, data.manifest, progress, calibration=data.eval)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# --- evaluate and gate ---------------------------------------------------------------------------


def _classifier(path: Path, settings: Settings) -> Any:
    from models.runtime import Classifier

    return Classifier.load(path, provider=settings.onnx_provider, variant=settings.onnx_variant,
                           threads=settings.threads)


def _intent_predictions(classifier: Any, texts: list[str], labels: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    to_union = np.array([index[n] for n in classifier.intents])
    logits = np.concatenate([classifier.logits(texts[i : i + 64])[0] for i in range(0, len(texts), 64)])
    return to_union[logits.argmax(-1)]


def evaluate_model(path: Path, examples: Sequence[Example], labels: list[str], settings: Settings) -> dict[str, Any]:
    """Score the served graph (same provider and variant as the bot) on the fixed evaluation set."""
    classifier = _classifier(path, settings)
    out: dict[str, Any] = {"version": classifier.version, "samples": 0, "accuracy": None}
    with_intent = [e for e in examples if e.intent]
    if with_intent:
        index = {name: i for i, name in enumerate(labels)}
        pred = _intent_predictions(classifier, [e.text for e in with_intent], labels)
        report = classification_report([index[e.intent] for e in with_intent], pred, labels)  # type: ignore[index]
        out.update({k: report[k] for k in ("accuracy", "macro_f1", "samples", "per_label", "confusion")})
    with_sentiment = [e for e in examples if e.sentiment]
    if with_sentiment:
        logits = classifier.logits([e.text for e in with_sentiment])[1]
        pred_s = [classifier.card.sentiments[i] for i in logits.argmax(-1)]
        out["sentiment_accuracy"] = float(np.mean([p == e.sentiment for p, e in zip(pred_s, with_sentiment,
                                                                                      strict=True)]))
        out["sentiment_samples"] = len(with_sentiment)
    return out


def corrections_check(path: Path, corrections: Sequence[Example], settings: Settings) -> dict[str, Any]:
    """How many of the corrected examples it trained on the candidate now gets right."""
    items = [e for e in corrections if e.intent]
    if not items:
        return {"total": 0, "right": 0, "share": None}
    classifier = _classifier(path, settings)
    labels = list(classifier.intents)
    pred = _intent_predictions(classifier, [e.text for e in items], labels)
    right = int(sum(labels[p] == e.intent for p, e in zip(pred, items, strict=True)))
    return {"total": len(items), "right": right, "share": right / len(items),
            "missed": [e.text for p, e in zip(pred, items, strict=True) if labels[p] != e.intent][:20]}


def apply_gate(candidate: dict[str, Any] | None, active: dict[str, Any] | None, corrections: dict[str, Any],
               parity: dict[str, Any] | None, parity_error: str | None, tolerance: float,
               corrections_share: float) -> dict[str, Any]:
    """The three promotion checks; ``reasons`` says in words why a candidate was rejected."""
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    # 3. parity (first: without a valid export there is nothing to compare)
    fp32 = (parity or {}).get("fp32") or {}
    parity_ok = parity_error is None and bool(fp32) and fp32.get("max_abs_diff", 1.0) <= PARITY_MAX_DIFF and \
        fp32.get("intent_top1_agreement", 0.0) >= PARITY_MIN_AGREEMENT
    checks["parity"] = {"passed": parity_ok, "fp32": fp32, "error": parity_error}
    if not parity_ok:
        reasons.append(f"the ONNX export failed its parity check ({parity_error or fp32})")
    # 1. no worse than the active model on the fixed evaluation set
    cand_acc = candidate.get("accuracy") if candidate else None
    act_acc = active.get("accuracy") if active else None
    if candidate is None:
        eval_ok = False
    elif act_acc is None or cand_acc is None:
        eval_ok = True  # no active model (first version) or no intent examples to compare on
    else:
        eval_ok = cand_acc >= act_acc - tolerance
        if not eval_ok:
            reasons.append(f"accuracy on the fixed evaluation set is {cand_acc:.1%}, below the active model's "
                           f"{act_acc:.1%} by more than the tolerance of {tolerance:.1%}")
    checks["eval"] = {"passed": eval_ok, "candidate": cand_acc, "active": act_acc, "tolerance": tolerance}
    # 2. learned the corrections it trained on
    share = corrections.get("share")
    corr_ok = not corrections.get("total") or (share is not None and share >= corrections_share)
    if not corr_ok:
        reasons.append(f"it gets right only {corrections['right']} of the {corrections['total']} corrected examples "
                       f"it trained on ({share:.0%}); the gate needs {corrections_share:.0%}")
    checks["corrections"] = {"passed": corr_ok, "required": corrections_share,
                             **{k: v for k, v in corrections.items() if k != "missed"}}
    return {"passed": parity_ok and eval_ok and corr_ok, "checks": checks, "reasons": reasons}


def _metrics(cand: dict[str, Any] | None, act: dict[str, Any] | None, corrections: dict[str, Any],
             labels: list[str]) -> dict[str, Any]:
    def slim(m: dict[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (m or {}).items() if k not in ("per_label", "confusion")}

    out: dict[str, Any] = {"candidate": slim(cand), "active": slim(act), "corrections": corrections}
    delta: dict[str, float] = {}
    for key in ("accuracy", "macro_f1", "sentiment_accuracy"):
        if cand and act and cand.get(key) is not None and act.get(key) is not None:
            delta[key] = round(float(cand[key]) - float(act[key]), 4)
    out["delta"] = delta
    improved, worse = [], []
    if cand and act and cand.get("per_label") is not None and act.get("per_label") is not None:
        for name in labels:
            c, a = cand["per_label"].get(name), act["per_label"].get(name)
            if c is None and a is None:
                continue
            d = (c or {}).get("f1", 0.0) - (a or {}).get("f1", 0.0)
            row = {"intent": name, "delta_f1": round(d, 4), "f1": round((c or {}).get("f1", 0.0), 4)}
            if d >= 0.01:
                improved.append(row)
            elif d <= -0.01:
                worse.append(row)
    out["intents_improved"] = sorted(improved, key=lambda r: -r["delta_f1"])
    out["intents_worse"] = sorted(worse, key=lambda r: r["delta_f1"])
    return out


# --- the chart -----------------------------------------------------------------------------------


def _history(store: Store) -> list[tuple[str, float]]:
    from models.registry import version_number

    points = []
    for row in store.db.query("SELECT version, metrics_json FROM model_versions"):
        acc = json.loads(row["metrics_json"] or "{}").get("eval_accuracy")
        if acc is not None:
            points.append((row["version"], float(acc)))
    return sorted(points, key=lambda p: version_number(p[0]))


def save_report_chart(path: Path, history: list[tuple[str, float]], version: str, cand: dict[str, Any],
                      act: dict[str, Any] | None, labels: list[str], promoted: bool, top: int = 20) -> Path:
    """Left: eval accuracy per version (each measured by its own run). Right: how the confusion
    matrix changed from the active model to the candidate (share of each true label; blue on the
    diagonal and red off it is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    if history:
        names, accs = zip(*history, strict=True)
        left.plot(names, accs, marker="o", color="tab:gray")
    if cand.get("accuracy") is not None:
        left.scatter([version], [cand["accuracy"]], s=120, zorder=3,
                     color="tab:green" if promoted else "tab:red",
                     label=f"{version} ({'promoted' if promoted else 'rejected'})")
    if act and act.get("accuracy") is not None:
        left.axhline(act["accuracy"], color="tab:blue", linestyle="--",
                     label=f"active {act['version']} (same eval set)")
    left.set_ylabel("accuracy on the fixed evaluation set")
    left.set_title("Accuracy per version")
    left.tick_params(axis="x", rotation=45)
    left.legend(loc="lower right", fontsize=8)
    if act and act.get("confusion") is not None and cand.get("confusion") is not None:
        c, a = np.asarray(cand["confusion"], float), np.asarray(act["confusion"], float)
        rows = c.sum(axis=1, keepdims=True)
        diff = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0) - \
            np.divide(a, rows, out=np.zeros_like(a), where=rows > 0)
        better = -diff  # fewer mistakes off the diagonal is better ...
        np.fill_diagonal(better, np.diag(diff))  # ... and more hits on it
        order = np.sort(np.argsort(-np.abs(diff).sum(axis=1) - np.abs(diff).sum(axis=0))[:top])
        image = right.imshow(better[np.ix_(order, order)], cmap="RdBu", vmin=-1, vmax=1)
        ticks = range(len(order))
        right.set_xticks(ticks, [labels[i] for i in order], rotation=90, fontsize=7)
        right.set_yticks(ticks, [labels[i] for i in order], fontsize=7)
        right.set_xlabel("predicted")
        right.set_ylabel("true")
        right.set_title(f"Confusion change, {act['version']} -> {version} (blue better, red worse)")
        fig.colorbar(image, ax=right, fraction=0.04)
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no active model to compare with", ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
