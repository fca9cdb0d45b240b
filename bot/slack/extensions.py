"""The listeners beyond answering customers: agents' corrections, `/csbot` and App Home."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from slack_bolt.async_app import AsyncApp

from bot.slack import agents, commands, home
from bot.slack.app import Extension
from bot.slack.runtime import Runtime

ALL: tuple[Extension, ...] = (agents.extension, commands.extension, home.extension)


def default_extensions(next_run: Callable[[], datetime | None] | None = None) -> tuple[Extension, ...]:
    """Every extension; ``next_run`` (the process's RetrainScheduler.next_run_time) feeds status."""

    def schedule(app: AsyncApp, rt: Runtime) -> None:
        rt.next_run = next_run

    return (schedule, *ALL) if next_run else ALL
