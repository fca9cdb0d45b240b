"""What every ``csbot`` command shares: error handling, settings, and printing ``bot.admin`` replies.

``friendly`` turns a ``CsbotError`` into one clear "Error: what / Fix: how" line and exit status 1
instead of a traceback; ``settings`` loads the configuration; ``run_admin`` and ``echo_reply`` run
an admin command through ``bot.admin`` (the same code behind ``/csbot`` in Slack) and print its
reply. The command modules (``bot.cli_*``) import these from here rather than from ``bot.cli``,
so that ``python -m bot.cli`` (which runs ``bot.cli`` as ``__main__``) never imports it twice.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import click

from bot import messages
from bot.config import Settings, apply_log_level, load_settings
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
            click.echo(f"{messages.ERROR_PREFIX}{error}", err=True)
            sys.exit(1)
        except sqlite3.DatabaseError as exc:  # a read met a damaged page (writes say so in Store.transaction)
            from bot.store_core import is_database_state, open_error

            if not is_database_state(exc):
                raise
            logging.getLogger("csbot").debug("command failed", exc_info=True)
            click.echo(f"{messages.ERROR_PREFIX}{open_error(load_settings().db_path, exc, 0)}", err=True)
            sys.exit(1)
    return wrapper


def settings() -> Settings:
    """Load the settings and apply CSBOT_LOG_LEVEL (WARNING when unset; `csbot serve` raises it to INFO)."""
    cfg = load_settings()
    apply_log_level(cfg.log_level_for(serving_slack=False))
    return cfg


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
