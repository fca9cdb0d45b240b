"""``csbot up``, ``csbot chat`` and ``csbot serve``: the commands that run the bot.

``up`` is what ``make run`` calls: it trains the first model if there is none, then serves in
Slack when tokens are configured (with the nightly retrain schedule, exactly as ``serve``) and in
the terminal otherwise. ``chat`` talks to the bot in the terminal with the same router, store and
feedback as Slack; ``serve`` runs the Slack app (Socket Mode or HTTP) together with the nightly
retrain schedule.
"""

from __future__ import annotations

import io
import sys
from typing import TextIO

import click

from bot.cli_common import friendly, settings
from bot.config import Settings


@click.command()
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
        serve_with_schedule(cfg, http=not cfg.slack_app_token)
        return
    from bot import messages
    from bot.chat import run_chat

    click.echo(messages.CHAT_NO_SLACK)
    run_chat(Context.open(cfg), terminal_input(), sys.stdout)


@click.command()
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

    run_chat(Context.open(settings()), terminal_input(), sys.stdout)


def terminal_input() -> TextIO:
    """stdin that never fails on bytes that are not UTF-8 (a Latin-1 file piped in, an odd terminal):
    they arrive as lone surrogates, which the chat replaces with U+FFFD, instead of a UnicodeDecodeError."""
    stdin = sys.stdin
    if stdin is None:  # started with stdin closed (`csbot chat <&-`, some service managers): as at end of input
        return io.StringIO("")
    if isinstance(stdin, io.TextIOWrapper):
        stdin.reconfigure(errors="surrogateescape")
    return stdin


@click.command()
@click.option("--http", is_flag=True, help="Serve the Events API over HTTP (production) instead of Socket Mode.")
@friendly
def serve(http: bool) -> None:
    """Run the Slack app: Socket Mode (needs SLACK_APP_TOKEN), or HTTP with --http.

    \b
    Examples:
      csbot serve            # Socket Mode (development, no public URL)
      csbot serve --http     # POST /slack/events, GET /healthz, GET /metrics
    """
    serve_with_schedule(settings(), http=http)


def serve_with_schedule(cfg: Settings, http: bool) -> None:
    """The Slack app plus the nightly retrain (CSBOT_RETRAIN_CRON), for ``serve`` and ``up`` alike.

    The lock in SQLite keeps two replicas from training at once."""
    from bot.scheduler import schedule_for_this_process
    from bot.slack.server import serve as serve_slack

    schedule = schedule_for_this_process(cfg)
    try:
        serve_slack(cfg, http=http, next_run=schedule.next_run_time if schedule else None)
    finally:
        if schedule:
            schedule.shutdown()
