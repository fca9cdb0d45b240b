"""What the admins see of the learning loop: ``status`` and the report of a finished retrain.

``status`` gathers the active version and its metrics, the last and the next retrain, a run in
progress and the ONNX provider for ``/csbot status`` and ``csbot status``. ``report_text`` turns a
finished ``training_runs`` row into a short summary (Slack mrkdwn and the CLI), and
``post_report`` posts it, with the run's chart, to CSBOT_ADMINS_CHANNEL without ever letting a
Slack error break serving.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from bot import messages
from bot.config import Settings
from bot.learning_locks import Clock, lock_holder, system_clock
from bot.learning_runs import _decode_run, reap_stale_runs
from bot.spool import Spool, slack_spool_path
from bot.store import Store
from models import modeldir
from models.errors import CsbotError
from models.registry import Registry

# The same logger as bot.learning: the split into modules is not visible to log filters.
log = logging.getLogger("csbot.learning")


def status(settings: Settings, *, provider: str | None = None, next_run: datetime | None = None,
           clock: Clock = system_clock) -> dict[str, Any]:
    """The learning loop at a glance: active version and metrics, last and next retrain, provider."""
    from bot.scheduler import next_retrain_time

    with Store(settings.db_path) as store:
        reap_stale_runs(store, clock)
        registry = Registry(settings.models_dir, store)
        active = registry.active()
        card, unreadable = None, None
        if active:
            try:
                card = modeldir.read(registry.path(active), verify_hashes=False)
            except CsbotError as exc:  # shown as the inference line: "none · the active model does not load: ..."
                unreadable = exc
        last = next(iter(store.db.query("SELECT * FROM training_runs ORDER BY id DESC LIMIT 1")), None)
        last_done = next(iter(store.db.query(
            "SELECT * FROM training_runs WHERE status IN ('promoted', 'rejected', 'failed') ORDER BY id DESC LIMIT 1")),
            None)
        holder = lock_holder(store, clock)
        row = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = ?", [active])), None)
        previous = registry.previous() if active else None
    problem = None  # why nothing answers: the status line says it plainly instead of a provider name
    if provider is None:
        if unreadable is not None:
            provider = messages.PROVIDER_LOAD_FAILED.format(what=unreadable.what)
            problem = messages.INFERENCE_LOAD_FAILED.format(what=unreadable.what)
        else:
            provider, problem = _provider_in_use(settings, registry.path(active) if card else None)
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
        "provider": provider, "inference_problem": problem, "running": holder["owner"] if holder else None,
        "last_run": _decode_run(last) if last else None, "last_completed_run": _decode_run(last_done)
        if last_done else None, "next_run": nxt.isoformat() if nxt else None,
        "spooled_writes": Spool(slack_spool_path(settings.data_dir)).pending(),
        "schedule": messages.STATUS_SCHEDULE.format(cron=settings.retrain_cron,
                                                    timezone=settings.timezone or messages.STATUS_LOCAL_TIME)
        if settings.retrain_scheduled else messages.STATUS_SCHEDULE_OFF,
    }


def _provider_in_use(settings: Settings, model_path: Path | None) -> tuple[str, str | None]:
    """The provider a session on this machine really gets for the active model, and why none can answer
    (None when one can).

    ``get_available_providers()`` lists CUDA whenever onnxruntime-gpu is installed, even where
    CUDA or cuDNN is missing and sessions fall back to CPU, so only a loaded session can tell."""
    if model_path is None:
        return messages.PROVIDER_NO_MODEL, messages.INFERENCE_NO_MODEL
    from models.runtime import Classifier

    try:
        return Classifier.load(model_path, provider=settings.onnx_provider, variant=settings.onnx_variant,
                               threads=1).provider, None
    except CsbotError as exc:
        return (messages.PROVIDER_LOAD_FAILED.format(what=exc.what),
                messages.INFERENCE_LOAD_FAILED.format(what=exc.what))


def report_text(run: dict[str, Any]) -> str:
    """A short human summary of a finished run (Slack mrkdwn and the CLI); the text is in bot.messages."""
    metrics, gate = run.get("metrics") or {}, run.get("gate") or {}
    head = messages.REPORT_HEAD.format(id=run.get("id"), trigger=run.get("trigger"), mode=run.get("mode") or "-",
                                       status=run.get("status"))
    if run.get("version"):
        head += messages.REPORT_VERSION.format(version=run["version"])
    lines = [head]
    cand, act = metrics.get("candidate") or {}, metrics.get("active") or {}
    if cand.get("accuracy") is not None:
        line = messages.REPORT_EVAL.format(accuracy=cand["accuracy"])
        if act.get("accuracy") is not None:
            line += messages.REPORT_VS_ACTIVE.format(active=act["accuracy"], delta=cand["accuracy"] - act["accuracy"])
        lines.append(line + messages.REPORT_EVAL_SET.format(samples=cand.get("samples", 0)))
    if metrics.get("corrections", {}).get("total"):
        lines.append(messages.REPORT_CORRECTIONS.format(**metrics["corrections"]))
    for key, label in (("intents_improved", messages.REPORT_IMPROVED), ("intents_worse", messages.REPORT_WORSE)):
        names = metrics.get(key) or []
        if names:
            lines.append(messages.REPORT_INTENTS.format(label=label, intents=", ".join(
                messages.REPORT_INTENT_DELTA.format(intent=n["intent"], delta=n["delta_f1"]) for n in names[:8])))
    eval_check = (gate.get("checks") or {}).get("eval") or {}
    if eval_check.get("within_chance"):
        lines.append(messages.REPORT_WITHIN_CHANCE.format(**eval_check))
    if gate.get("reasons"):
        lines.append(messages.REPORT_GATE.format(reasons="; ".join(gate["reasons"])))
    elif gate.get("reason"):
        lines.append(gate["reason"])
    if run.get("status") == "failed" and run.get("log_excerpt"):
        lines.append(messages.REPORT_LOG.format(line=run["log_excerpt"].strip().splitlines()[-1][:300]))
    return "\n".join(lines)


def post_report(settings: Settings, run: dict[str, Any], client: Any = None) -> bool:
    """Post the run's summary and chart to CSBOT_ADMINS_CHANNEL (``files_upload_v2``); False if
    Slack is not configured. Errors are logged, never raised: reporting must not break serving."""
    if not settings.admins_channel or not (client or settings.slack_bot_token):
        return False
    try:
        if client is None:
            from slack_sdk import WebClient
            from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

            client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
            client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=3))
        text = report_text(run)
        chart = Path(run.get("run_dir") or ".") / "report.png"
        if chart.is_file():
            client.files_upload_v2(channel=settings.admins_channel, file=str(chart), filename="retrain.png",
                                   title=messages.REPORT_CHART_TITLE.format(id=run.get("id")),
                                   initial_comment=text)
        else:
            client.chat_postMessage(channel=settings.admins_channel, text=text)
        return True
    except Exception:  # noqa: BLE001 - a Slack outage must not stop the loop
        log.exception("could not post the retrain report to %s", settings.admins_channel)
        return False
