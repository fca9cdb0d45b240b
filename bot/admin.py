"""Admin and agent commands as plain functions: `/csbot ...` in Slack and `csbot ...` in the CLI
call the same code and print the same text.

Each command returns an ``AdminReply`` (mrkdwn text, plus the review items when there are
some, which Slack renders with buttons). Permission checks live here too, so a refusal
reads the same everywhere and nothing is done or stored for someone who may not act.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot import learning, messages, stats
from bot.config import Settings
from bot.spool import slack_spool_path
from bot.store import Store
from bot.store_core import is_database_state, open_error
from models.errors import CsbotError
from models.registry import Registry

ADMIN_COMMANDS = ("status", "models", "retrain", "promote", "rollback", "stats")
AGENT_COMMANDS = ("review",)


@dataclass(frozen=True)
class AdminReply:
    text: str
    ok: bool = True
    review_items: list[dict[str, Any]] = field(default_factory=list)
    review_total: int = 0  # the whole queue: review_items is its first page
    retrain: learning.RetrainHandle | None = None


def is_admin(settings: Settings, user: str | None) -> bool:
    return user is None or user in settings.admins  # None: the local CLI operator


def is_agent(settings: Settings, user: str | None, usergroup_members: frozenset[str] = frozenset()) -> bool:
    return user is None or user in settings.agents or user in usergroup_members


def refusal(settings: Settings, command: str) -> AdminReply:
    who = ", ".join(f"<@{u}>" for u in sorted(settings.admins)) or messages.NOBODY_CONFIGURED
    return AdminReply(messages.ADMIN_ONLY.format(command=command, admins=who), ok=False)


MAX_STATS_DAYS = 3650  # as `csbot stats --days`
REVIEW_PAGE = 20  # items one `review` lists; the header gives the whole count
RETRAIN_MODES = ("auto", "full", "fast")


def run(settings: Settings, text: str, *, user: str | None = None, provider: str | None = None,
        next_run: datetime | None = None, usergroup_members: frozenset[str] = frozenset(),
        trigger: str = "slack") -> AdminReply:
    """Run one `/csbot` command line (``text`` is what follows `/csbot`)."""
    try:
        words = shlex.split(text or "")
    except ValueError:
        words = (text or "").split()
    command, args = (words[0].lower(), words[1:]) if words else ("help", [])
    if command in ADMIN_COMMANDS and not is_admin(settings, user):
        return refusal(settings, command)
    if command in AGENT_COMMANDS and not is_agent(settings, user, usergroup_members):
        return AdminReply(messages.AGENT_ONLY, ok=False)
    try:
        if command == "status":
            return AdminReply(render_status(settings, provider=provider, next_run=next_run))
        if command == "models":
            return AdminReply(render_models(learning.models_list(settings)))
        if command == "retrain":
            options = retrain_options(args)
            if options is None:
                return AdminReply(messages.RETRAIN_USAGE, ok=False)
            handle = learning.start_retrain(settings, trigger, force=options[0], mode=options[1])
            return AdminReply(retrain_text(handle), retrain=handle)
        if command == "promote":
            if len(args) != 1:
                return AdminReply(messages.PROMOTE_USAGE, ok=False)
            who = user or messages.WHO_CLI
            _refuse_active_without_folder(settings, args[0])
            result = learning.promote(settings, args[0], reason=messages.REASON_PROMOTED.format(who=who))
            previous = result["previous"] or messages.NO_VERSION
            return AdminReply(messages.PROMOTED.format(active=result["active"], previous=previous))
        if command == "rollback":
            return AdminReply(messages.ROLLED_BACK.format(**learning.rollback(settings, who=user or messages.WHO_CLI)))
        if command == "stats":
            # ASCII digits only: "²".isdigit() is true, and int("²") would raise.
            if args and (len(args) > 1 or not re.fullmatch(r"[0-9]{1,6}d?", args[0])):  # 6: int() refuses 4,300+
                return AdminReply(messages.STATS_DAYS.format(most=MAX_STATS_DAYS), ok=False)
            days = int(args[0].rstrip("d")) if args else 7
            if not 1 <= days <= MAX_STATS_DAYS:
                return AdminReply(messages.STATS_DAYS.format(most=MAX_STATS_DAYS), ok=False)
            with Store(settings.db_path) as store:
                return AdminReply(stats.render(stats.compute(store, days)))
        if command == "review":
            with Store(settings.db_path) as store:
                items, total = store.review_queue(limit=REVIEW_PAGE), store.review_count()
            return AdminReply(render_review(items, total), review_items=items, review_total=total)
    except CsbotError as error:
        return AdminReply(messages.ADMIN_ERROR.format(error=error), ok=False)
    except sqlite3.DatabaseError as exc:  # a read met a damaged page: said as such, in Slack and the CLI alike
        if not is_database_state(exc):
            raise
        error = open_error(settings.db_path, exc, 0)
        return AdminReply(messages.ADMIN_ERROR.format(error=error), ok=False)
    prefix = "" if command == "help" else messages.UNKNOWN_COMMAND.format(command=command) + "\n"
    return AdminReply(prefix + messages.ADMIN_HELP, ok=command == "help")


def retrain_options(args: list[str]) -> tuple[bool, str] | None:
    """``[--force] [--mode auto|full|fast]`` as (force, mode); None when anything else is there."""
    force, mode, rest = False, "auto", list(args)
    while rest:
        word = rest.pop(0)
        if word == "--force":
            force = True
        elif word == "--mode" and rest and rest[0] in RETRAIN_MODES:
            mode = rest.pop(0)
        elif word.startswith("--mode=") and word.split("=", 1)[1] in RETRAIN_MODES:
            mode = word.split("=", 1)[1]
        else:
            return None
    return force, mode


def render_status(settings: Settings, *, provider: str | None = None, next_run: datetime | None = None) -> str:
    info = learning.status(settings, provider=provider, next_run=next_run)
    with Store(settings.db_path) as store:
        week = stats.compute(store, 7)
    metrics = info.get("metrics") or {}
    accuracy = metrics_text(metrics) or messages.STATUS_NO_METRICS
    last = info.get("last_run")
    last_text = (messages.STATUS_LAST_RUN.format(id=last["id"], status=last["status"], trigger=last.get("trigger"),
                                                 started_at=last.get("started_at", "")[:16])
                 if last else messages.STATUS_NEVER)
    device = "CUDA" if (info.get("provider") or "").startswith("CUDA") else "CPU"
    running = messages.STATUS_RUNNING.format(owner=info["running"]) if info.get("running") else ""
    lines = [
        messages.STATUS_ACTIVE.format(version=info.get("active") or messages.NO_VERSION, metrics=accuracy),
        messages.STATUS_INFERENCE_NONE.format(problem=info["inference_problem"]) if info.get("inference_problem")
        else messages.STATUS_INFERENCE.format(device=device, provider=info.get("provider")),
        messages.STATUS_LAST_RETRAIN.format(run=last_text) + running,
        messages.STATUS_NEXT_RETRAIN.format(
            when=(info.get("next_run") or messages.STATUS_NOT_SCHEDULED)[:16].replace("T", " "),
            schedule=info.get("schedule")),
        messages.STATUS_FEEDBACK.format(up=week.up, down=week.down, corrections=week.corrections,
                                        messages=week.messages),
    ]
    if info.get("spooled_writes"):  # votes the database refused, waiting on disk: worth an admin's eye
        lines.append(messages.STATUS_SPOOLED.format(count=info["spooled_writes"],
                                                    path=slack_spool_path(settings.data_dir)))
    return "\n".join(lines)


def _refuse_active_without_folder(settings: Settings, version: str) -> None:
    """Promoting the active version says "already active, nothing to do": not true when its folder is gone
    (nothing answers), so raise the registry's error that names the folder and how to recover."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        if registry.active() == version:
            registry.path(version)


def metrics_text(metrics: dict[str, Any]) -> str:
    """The float metrics as "validation 91.0%, test 90.2%" (other values are left out)."""
    return ", ".join(messages.STATUS_METRIC.format(name=k, value=v) for k, v in metrics.items() if isinstance(v, float))


def render_models(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return messages.NO_MODELS
    lines = [messages.MODELS_HEADER]
    for row in rows:
        acc = metrics_text(row.get("metrics") or {})
        mark = (messages.MODELS_NOT_LOADING if row.get("load_problem")
                else messages.MODELS_ACTIVE if row["status"] == "active"
                else (messages.MODELS_PREVIOUS if row.get("previous") else ""))
        reason = (messages.MODELS_REJECTED.format(reason=row["reason"])
                  if row.get("reason") and row["status"] == "rejected" else "")
        if row.get("load_problem"):
            reason = messages.MODELS_LOAD_PROBLEM.format(what=row["load_problem"])
        lines.append(messages.MODELS_ROW.format(version=row["version"], status=row["status"], mark=mark,
                                                metrics=messages.MODELS_METRICS.format(metrics=acc) if acc else "",
                                                reason=reason))
    return "\n".join(lines)


def review_header(shown: int, total: int) -> str:
    """The queue's size, and how much of it a page shows: a team judges its backlog by this line."""
    total = max(total, shown)
    return messages.REVIEW_HEADER.format(count=total) + (
        messages.REVIEW_SHOWING.format(shown=shown) if total > shown else "")


def render_review(items: list[dict[str, Any]], total: int = 0) -> str:
    if not items:
        return messages.REVIEW_EMPTY
    return "\n".join([review_header(len(items), total), *(review_line(item) for item in items)])


def review_line(item: dict[str, Any]) -> str:
    """One queue item, the same in the CLI, `/csbot review` and App Home."""
    why = messages.REVIEW_DOWNVOTED if item.get("downvotes") else item.get("decision", "")
    guess = (messages.REVIEW_GUESS.format(intent=item.get("intent"), confidence=item.get("confidence") or 0)
             if item.get("intent") else messages.REVIEW_NO_GUESS)
    text = (item.get("text") or "").replace("\n", " ")
    return messages.REVIEW_LINE.format(message_id=item["message_id"], why=why, text=text[:120], guess=guess,
                                       created_at=item["created_at"][:16])


def retrain_text(handle: learning.RetrainHandle, then: str = messages.RETRAIN_THEN_SLACK) -> str:
    """``then``: what happens next where it is said (Slack posts progress; the CLI waits or leaves it running)."""
    if handle.started:
        return messages.RETRAIN_STARTED.format(reason=handle.reason) + then
    return messages.RETRAIN_SKIPPED.format(reason=handle.reason)


def label(settings: Settings, message_id: int, intent: str | None, *, agent: str | None,
          sentiment: str | None = None, note: str | None = None, known_intents: tuple[str, ...] = (),
          confirm_guess: bool = False, busy_timeout_ms: int = 10_000) -> str:
    """Store an agent's label for a message (the review queue's and the flag modal's action).

    ``confirm_guess`` ("Answer was right" on a handoff post) labels with the model's guess, so it must not
    overwrite another intent an agent already gave (their buttons may still show on an older post).
    ``busy_timeout_ms``: how long to wait for another writer (Slack's modal must be answered within 3 s)."""
    from bot.service import SENTIMENTS, valid_text
    from bot.store import NEW_TOPIC

    if sentiment is not None and sentiment not in SENTIMENTS:
        raise CsbotError(messages.BAD_SENTIMENT.format(sentiment=sentiment),
                         messages.BAD_SENTIMENT_FIX.format(sentiments=", ".join(SENTIMENTS)))
    # ``None`` is a sentiment-only label; any string is checked, "" too (falsy, it skipped the check and was
    # stored as an untrainable correction). No known intents means nothing can match: refuse, not accept.
    if intent is not None and intent != NEW_TOPIC and (not intent.strip() or intent not in known_intents):
        raise CsbotError(messages.UNKNOWN_INTENT.format(intent=intent, known=", ".join(sorted(known_intents))),
                         messages.UNKNOWN_INTENT_FIX)
    with Store(settings.db_path, busy_timeout_ms=busy_timeout_ms) as store:  # busy or full: StoreError
        with store.transaction() as db:  # the check and the write as one: two agents may click at once
            message = store.get_message(message_id)
            if message is None:
                raise CsbotError(messages.NO_SUCH_MESSAGE.format(message_id=message_id),
                                 messages.NO_SUCH_MESSAGE_FIX)
            if message.get("text_purged"):  # the retrain skips a label without its text: saying it will use it is false
                raise CsbotError(messages.LABEL_PURGED.format(message_id=message_id), messages.LABEL_PURGED_FIX)
            earlier = next(iter(db.query("SELECT agent, correct_intent FROM corrections WHERE message_id = ?",
                                         [message_id])), None)
            if confirm_guess and earlier and earlier["correct_intent"] and earlier["correct_intent"] != intent:
                raise CsbotError(messages.ALREADY_CORRECTED.format(agent=earlier["agent"],
                                                                   intent=earlier["correct_intent"]),
                                 messages.ALREADY_CORRECTED_FIX)
            store.record_correction(message_id, agent=agent or "cli", correct_intent=intent,
                                    correct_sentiment=sentiment, note=valid_text(note) if note else note)
    if intent == NEW_TOPIC:
        return messages.CORRECTED_NEW_TOPIC.format(message_id=message_id)
    if not intent:  # a sentiment alone: "is really '(sentiment only)'" said nothing true
        return messages.CORRECTED_SENTIMENT.format(message_id=message_id, sentiment=sentiment)
    return messages.CORRECTED.format(message_id=message_id, intent=intent)
