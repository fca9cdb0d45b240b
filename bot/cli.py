"""``csbot``: a thin CLI over the library. Domain errors become one clear message.

Training commands (``train``, ``eval``) run ``python -m training`` in a child
process, so this process, like the bot, never imports torch.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot.config import Settings, load_settings
from models.errors import CsbotError

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print CsbotError as 'Error: what / Fix: how' and exit 1, never a traceback."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CsbotError as error:
            logging.getLogger("csbot").debug("command failed", exc_info=True)
            click.echo(f"Error: {error}", err=True)
            sys.exit(1)
    return wrapper


def settings() -> Settings:
    return load_settings()


@click.group()
@click.version_option(package_name="csbot")
def main() -> None:
    """csbot: a customer-service bot for Slack that learns from its own agents."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
@friendly
def up() -> None:
    """Set up and run: train the first model if needed, then serve in Slack or the terminal.

    \b
    Example:
      csbot up        # what `make run` calls
    """
    from bot.context import Context, ensure_model
    from bot.store import Store

    cfg = settings()
    with Store(cfg.db_path) as store:
        ensure_model(cfg, store)
    if cfg.slack_configured:
        from bot.slack.server import serve as serve_slack

        serve_slack(cfg, http=not cfg.slack_app_token)
        return
    from bot import messages
    from bot.chat import run_chat

    click.echo(messages.CHAT_NO_SLACK)
    run_chat(Context.open(cfg), sys.stdin, sys.stdout)


@main.command()
@friendly
def chat() -> None:
    """Talk to the bot in the terminal (same router, store and feedback as Slack).

    \b
    Example:
      csbot chat
      echo "where is my order" | csbot chat
    """
    from bot.chat import run_chat
    from bot.context import Context

    run_chat(Context.open(settings()), sys.stdin, sys.stdout)


@main.command()
@click.option("--http", is_flag=True, help="Serve the Events API over HTTP (production) instead of Socket Mode.")
@friendly
def serve(http: bool) -> None:
    """Run the Slack app: Socket Mode when SLACK_APP_TOKEN is set, or HTTP with --http.

    \b
    Examples:
      csbot serve            # Socket Mode (development, no public URL)
      csbot serve --http     # POST /slack/events, GET /healthz, GET /metrics
    """
    from bot.scheduler import RetrainScheduler
    from bot.slack.server import serve as serve_slack

    cfg = settings()
    # The nightly retrain (CSBOT_RETRAIN_CRON); the lock in SQLite keeps replicas from training twice.
    schedule = RetrainScheduler(cfg).start()
    try:
        serve_slack(cfg, http=http, next_run=schedule.next_run_time)
    finally:
        schedule.shutdown()


@main.command(context_settings=PASS_THROUGH)
@click.pass_context
def train(ctx: click.Context) -> None:
    """Fine-tune and export a model (runs `python -m training train`; see `csbot train --help`).

    \b
    Example:
      csbot train --epochs 4
    """
    sys.exit(subprocess.call([sys.executable, "-m", "training", "train", *ctx.args]))


@main.command("eval", context_settings=PASS_THROUGH)
@click.pass_context
def evaluate(ctx: click.Context) -> None:
    """Score a model and save a confusion matrix PNG (see `csbot eval --help`).

    \b
    Example:
      csbot eval v0001 --data ../shared/data/banking77/test.csv --intent-column category
    """
    sys.exit(subprocess.call([sys.executable, "-m", "training", "eval", *ctx.args]))


@main.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--model", default=None, help="A version name or model directory (default: the active one).")
@click.option("--top-k", default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def predict(text: tuple[str, ...], model: str | None, top_k: int, as_json: bool) -> None:
    """Classify a message and show the routing decision.

    \b
    Example:
      csbot predict "where is my parcel??"
    """
    from bot.knowledge import load_knowledge_base
    from bot.normalize import normalize
    from bot.router import route
    from bot.store import Store
    from models.registry import Registry
    from models.runtime import Classifier

    cfg = settings()
    if model and Path(model).is_dir():
        path = Path(model)
    else:
        with Store(cfg.db_path) as store:
            registry = Registry(cfg.models_dir, store)
            version = model or registry.active()
            if version is None:
                raise CsbotError("There is no active model yet.", "train one with `csbot train`.")
            path = registry.path(version)
    classifier = Classifier.load(path, provider=cfg.onnx_provider, variant=cfg.onnx_variant)
    message = normalize(" ".join(text), cfg.max_message_chars)
    prediction = classifier.predict([message.text], top_k=top_k)[0] if not message.empty else None
    decision = route(message, prediction, load_knowledge_base(cfg.kb_path), classifier.card.thresholds)
    if as_json:
        click.echo(json.dumps({
            "model": classifier.version, "provider": classifier.provider, "decision": decision.decision,
            "reason": decision.reason, "detail": decision.detail,
            "intents": [{"intent": s.intent, "probability": round(s.probability, 4)}
                        for s in (prediction.intents if prediction else ())],
            "sentiment": prediction.sentiment if prediction else None,
            "sentiment_probs": prediction.sentiment_probs if prediction else None}, indent=2))
        return
    click.echo(f"model {classifier.version} on {classifier.device} ({classifier.provider}, {classifier.variant})")
    if prediction:
        for score in prediction.intents:
            click.echo(f"  {score.intent:<32} {score.probability:6.1%}")
        sentiment = ", ".join(f"{k} {v:.0%}" for k, v in prediction.sentiment_probs.items())
        click.echo(f"sentiment: {prediction.sentiment} ({sentiment})")
    click.echo(f"decision: {decision.decision} ({decision.reason}: {decision.detail})")


@main.group()
def kb() -> None:
    """Knowledge-base tools."""


@kb.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@friendly
def kb_check(path: Path | None) -> None:
    """Validate a knowledge-base YAML file and list every problem with its line.

    \b
    Example:
      csbot kb check bot/kb/default.yaml
    """
    from bot.knowledge import load_knowledge_base

    base = load_knowledge_base(path or settings().kb_path)
    examples = sum(len(i.examples) for i in base.intents.values())
    sentiments = sum(len(v) for v in base.sentiment_examples.values())
    click.echo(f"{base.path}: OK. {base.company.name}: {len(base.intents)} intents, {examples} examples, "
               f"{sentiments} sentiment examples.")


@main.group()
def db() -> None:
    """Database maintenance: retention and backups."""


@db.command("purge")
@click.option("--older-than", required=True, help="Age such as 90d, 12w or 48h.")
@friendly
def db_purge(older_than: str) -> None:
    """Blank the text of old messages; labelled corrections are kept.

    \b
    Example:
      csbot db purge --older-than 90d
    """
    from bot.store import Store, parse_age

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise CsbotError(f"--older-than {older_than!r}: {exc}", "write e.g. --older-than 90d.") from exc
    with Store(settings().db_path) as store:
        counts = store.purge(age)
    click.echo(f"Purged the text of {counts['messages']} messages and {counts['replies']} replies older than "
               f"{older_than}; kept {counts['kept']} labelled messages.")


@db.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@friendly
def db_backup(path: Path) -> None:
    """Copy the database with SQLite's online backup (safe while the bot runs).

    \b
    Example:
      csbot db backup backups/csbot-2026-11-28.db
    """
    from bot.store import Store

    with Store(settings().db_path) as store:
        try:
            dest = store.backup(path)
        except FileExistsError as exc:
            raise CsbotError(f"{path} already exists.", "choose a new file name; backups never overwrite.") from exc
    click.echo(f"Backed up to {dest}.")


# --- the learning loop and the agents' queue: the same functions (bot.admin) back /csbot in Slack,
# so each command prints exactly what Slack shows, errors included.


def echo_reply(reply: Any) -> None:
    """Print an ``AdminReply``; a failed one goes to stderr with exit status 1 (as `friendly` does)."""
    if not reply.ok:
        click.echo(reply.text, err=True)
        sys.exit(1)
    click.echo(reply.text)


def run_admin(text: str) -> None:
    from bot import admin

    echo_reply(admin.run(settings(), text, user=None, trigger="cli"))


@main.command()
@click.option("--force", is_flag=True, help="Train even if nothing new came in since the last run.")
@click.option("--mode", type=click.Choice(["auto", "full", "fast"]), default="auto", show_default=True,
              help="full fine-tune, fast (heads only on the active encoder), or auto.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the run and print its report.")
@click.option("--set", "overrides", multiple=True, help="A training option for this run, e.g. --set epochs=2.")
@friendly
def retrain(force: bool, mode: str, wait: bool, overrides: tuple[str, ...]) -> None:
    """Learn from feedback now: build the dataset, fine-tune, check, gate and promote (in a child process).

    \b
    Examples:
      csbot retrain                 # what the nightly schedule and `/csbot retrain` run
      csbot retrain --force --mode full --no-wait
    """
    from bot import admin, learning

    cfg = settings()
    extra = [arg for item in overrides for arg in ("--set", item)]
    handle = learning.start_retrain(cfg, "cli", force=force, mode=mode, extra_args=extra)
    click.echo(admin.retrain_text(handle))
    if not handle.started:
        return
    click.echo(f"Log: {handle.log_path} (pid {handle.process.pid if handle.process else '?'})")
    if not wait:
        return
    run = handle.wait()
    click.echo(learning.report_text(run))
    if run.get("run_dir"):
        click.echo(f"Report: {run['run_dir']}/report.json, chart: {run['run_dir']}/report.png")
    if run.get("status") == "failed":
        sys.exit(1)


@main.group("models")
def models_group() -> None:
    """Model versions: list them; see also `csbot promote` and `csbot rollback`."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def models_list(as_json: bool) -> None:
    """List model versions, newest first, with status and metrics (as `/csbot models`).

    \b
    Example:
      csbot models list
    """
    from bot import learning

    if as_json:
        click.echo(json.dumps(learning.models_list(settings()), indent=2, default=str))
        return
    run_admin("models")


@main.command()
@click.argument("version")
@friendly
def promote(version: str) -> None:
    """Make VERSION the active model (atomic; a running bot swaps it in without a restart).

    \b
    Example:
      csbot promote v0007
    """
    import shlex

    run_admin(f"promote {shlex.quote(version)}")


@main.command()
@friendly
def rollback() -> None:
    """Restore the previously active model version.

    \b
    Example:
      csbot rollback
    """
    run_admin("rollback")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def status(as_json: bool) -> None:
    """Show the active model, its metrics, the last and the next retrain, the provider and 7-day feedback.

    \b
    Example:
      csbot status
    """
    from bot import learning

    if as_json:
        click.echo(json.dumps(learning.status(settings()), indent=2, default=str))
        return
    run_admin("status")


@main.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650), help="The period, in days.")
@friendly
def stats(days: int) -> None:
    """Answer and handoff rates, 👍 share, top intents and most corrected intents (as `/csbot stats`).

    \b
    Example:
      csbot stats --days 30
    """
    run_admin(f"stats {days}")


@main.group(invoke_without_command=True)
@click.pass_context
def review(ctx: click.Context) -> None:
    """The review queue: 👎 answers and handoffs no agent has labelled yet, oldest first (as `/csbot review`).

    \b
    Examples:
      csbot review
      csbot review label 42 refund --note "asked about a refund"
    """
    if ctx.invoked_subcommand is None:
        friendly(run_admin)("review")


@review.command("label")
@click.argument("message_id", type=int)
@click.argument("intent")
@click.option("--sentiment", type=click.Choice(["negative", "neutral", "positive"]), default=None)
@click.option("--note", default=None, help="A note for the team.")
@friendly
def review_label(message_id: int, intent: str, sentiment: str | None, note: str | None) -> None:
    """Label message MESSAGE_ID as INTENT (or `new-topic`), as the Slack modal does.

    \b
    Example:
      csbot review label 42 track_order --sentiment negative
    """
    from bot import admin
    from bot.knowledge import load_knowledge_base
    from bot.store import NEW_TOPIC

    cfg = settings()
    known = tuple(load_knowledge_base(cfg.kb_path).intents)
    chosen = NEW_TOPIC if intent.lower() in ("new-topic", "new_topic", NEW_TOPIC) else intent
    click.echo(admin.label(cfg, message_id, chosen, agent=None, sentiment=sentiment, note=note,
                           known_intents=known))


if __name__ == "__main__":
    main()
