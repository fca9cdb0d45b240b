"""``csbot``: a thin CLI over the library. Domain errors become one clear message.

Training commands (``train``, ``eval``) run ``python -m training`` in a child
process, so this process, like the bot, never imports torch.

This module holds the ``main`` click group (the ``csbot`` entry point) and registers the
commands, which live in one module per concern: running the bot (``bot.cli_serve``), training
and trying a model (``bot.cli_train``), the learning loop and model versions (``bot.cli_models``),
status, stats and the review queue (``bot.cli_admin``), and the knowledge base and database tools
(``bot.cli_data``). Shared helpers live in ``bot.cli_common`` and are re-exported here.
"""

from __future__ import annotations

import logging

import click

from bot.cli_admin import review, review_label, stats, status
from bot.cli_common import PASS_THROUGH, echo_reply, friendly, run_admin, settings
from bot.cli_data import db, db_backup, db_purge, kb, kb_check
from bot.cli_models import models_group, models_list, promote, retrain, rollback
from bot.cli_serve import chat, serve, up
from bot.cli_train import evaluate, predict, train

__all__ = [
    "PASS_THROUGH", "chat", "db", "db_backup", "db_purge", "echo_reply", "evaluate", "friendly", "kb", "kb_check",
    "main", "models_group", "models_list", "predict", "promote", "retrain", "review", "review_label", "rollback",
    "run_admin", "serve", "settings", "stats", "status", "train", "up",
]


@click.group()
@click.version_option(package_name="csbot")
def main() -> None:
    """csbot: a customer-service bot for Slack that learns from its own agents.

    \b
    Examples:
      csbot up                      # first-run training, then Slack (tokens in .env) or the terminal
      csbot predict "where is my parcel?"
      csbot retrain && csbot status
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# `csbot --help` lists commands sorted by name, so the order here does not show.
for command in (up, chat, serve, train, evaluate, predict, kb, db, retrain, models_group, promote, rollback,
                status, stats, review):
    main.add_command(command)


if __name__ == "__main__":
    main()
