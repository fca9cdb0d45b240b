"""What every Slack handler needs: the bot context, the Web API client, metrics and a thread pool.

The store and the classifier are synchronous (SQLite, onnxruntime), so the event
loop hands them to a small thread pool; the loop itself only parses, acks and does
network I/O. A bounded pool also bounds the number of SQLite connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import Context
from bot.slack.metrics import Metrics
from bot.spool import Apply, Spool, slack_spool_path

log = logging.getLogger(__name__)

R = TypeVar("R")
WRITE_RETRY_SECONDS = (0.5, 2.0, 8.0)
# A reaction that finds no stored answer looks again this often: the answer's ts may not be stored yet.
REACTION_RETRY_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
# When Slack is down or rate-limiting past its own retries, an answer is tried again for about a minute.
POST_RETRY_SECONDS = (1.0, 4.0, 15.0, 40.0)
# Slack's own trouble, worth another try; any other error is about the request and would fail again.
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})

# Methods that create something each time they run. After a timeout or a lost connection the request may have
# reached Slack, which then created the message: trying again could answer a customer twice. So for these only a
# failure to connect, before anything was sent, is tried again (a Slack error answer, 429 or 5xx included, says
# nothing was posted); otherwise the caller hears of the failure (an answer then becomes an apology).
NOT_IDEMPOTENT = frozenset({"chat.postMessage"})
BEFORE_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def may_send_again(method: str, exc: BaseException) -> bool:
    """Whether a call of ``method`` that raised ``exc`` (a network error, not Slack's answer) may be made again."""
    return method not in NOT_IDEMPOTENT or isinstance(exc, BEFORE_SENT)


def slack_trouble(exc: SlackApiError) -> bool:
    """Whether a failed call is Slack's trouble (a 5xx, rate limits, internal_error), worth trying again,
    rather than something about the request or the token."""
    error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    return error in TRANSIENT_ERRORS or exc.response.status_code >= 500


@dataclass
class Runtime:
    ctx: Context
    client: AsyncWebClient
    metrics: Metrics
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="csbot"))
    # Work that must be done within Slack's 3 s (a modal submission's ack, the reads before views.open uses
    # a trigger_id): its own threads, so it never queues behind the pool's writes, each of which can wait
    # out SQLite's busy timeout while another process holds the write lock.
    ack_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="csbot-ack"))
    bot_user_id: str | None = None
    team_url: str = ""
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # When the retrain schedule fires next (the process's RetrainScheduler), for /csbot status and App Home.
    next_run: Callable[[], datetime | None] | None = None
    # CSBOT_AGENT_USERGROUP's members and when they were read (bot.slack.people caches them briefly).
    usergroup_cache: tuple[float, frozenset[str]] | None = None
    usergroup_lookup: asyncio.Task[frozenset[str]] | None = None  # the read in flight, shared by all who wait
    # Writes the database refused past ``write``'s retries (bot.slack.spooled), and how to store them.
    spool: Spool = field(init=False)
    write_retry: tuple[float, ...] = WRITE_RETRY_SECONDS  # seconds before each further try of a failed write
    reaction_retry: tuple[float, ...] = REACTION_RETRY_SECONDS  # before each further look for a reaction's answer
    spool_apply: Apply | None = None

    def __post_init__(self) -> None:
        self.spool = Spool(slack_spool_path(self.ctx.settings.data_dir))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` after the ack (extensions' listeners); failures are logged, never lost."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a Slack handler failed", exc_info=task.exception())

    def next_retrain(self) -> datetime | None:
        try:
            return self.next_run() if self.next_run else None
        except Exception:  # the schedule is informative here; status falls back to the cron
            log.exception("could not read the next retrain time")
            return None

    async def in_thread(self, func: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def in_thread_urgent(self, func: Callable[..., R], *args: Any) -> R:
        """``in_thread`` on ``ack_pool``, for work Slack waits on (see ``ack_pool``)."""
        return await asyncio.get_running_loop().run_in_executor(self.ack_pool, func, *args)

    async def write(self, what: str, func: Callable[..., R], *args: Any) -> tuple[bool, R | None]:
        """Run the database write ``func`` in a thread, retrying a failure (a lock held past the busy
        timeout, a full disk) for about 10 s: (done, its result). The event is acked, so Slack will not
        send it again; ``what`` names the write in the warnings and the final error. A caller whose
        write must not be lost keeps it in ``spool`` when this gives up (bot.slack.spooled)."""
        for delay in (*self.write_retry, None):
            try:
                result = await self.in_thread(func, *args)
            except Exception as exc:
                if delay is None:
                    log.error("could not store %s: %r", what, exc, exc_info=exc)
                    self.metrics.inc("csbot_store_write_failures_total")
                    return False, None
                log.warning("storing %s failed (%r); retrying in %s s", what, exc, delay)
                await asyncio.sleep(delay)
            else:
                if self.spool.has_entries():  # the database takes writes again: store what it refused before
                    await self.replay_spool()
                return True, result
        raise AssertionError("unreachable")

    async def replay_spool(self) -> int:
        if self.spool_apply is None or not self.spool.has_entries():
            return 0
        try:
            return await self.in_thread(self.spool.replay, self.spool_apply)
        except OSError as exc:  # the spool file itself cannot be read or rewritten; it stays as it is
            log.error("replaying %s failed: %r", self.spool.path, exc)
            return 0

    async def call(self, method: str, *, retry: Sequence[float] = (), **kwargs: Any) -> dict[str, Any] | None:
        """Call a Web API method; on failure log it, count it and return None.

        A failed post must not take the batch or the process down with it; the rate-limit retry
        handler has already retried what can be retried at once. ``retry``: seconds to wait before
        each further try, for failures that are Slack's trouble (network, 5xx, rate limits), not the
        request's (channel_not_found, invalid_blocks).
        """
        for delay in (*retry, None):
            response, transient = await self._attempt(method, kwargs)
            if response is not None:
                return response
            self.metrics.inc("csbot_slack_api_errors_total", method=method)
            if delay is None or not transient:
                return None
            log.info("trying Slack %s again in %s s", method, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attempt(self, method: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
        """(the answer, or None and whether another try could succeed)."""
        try:
            # The named methods know each API's encoding (JSON for writes, query for reads).
            response = await getattr(self.client, method.replace(".", "_"))(**kwargs)
            return (dict(response.data) if isinstance(response.data, dict) else {}), False
        except SlackApiError as exc:
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            log.warning("Slack %s failed: %s", method, error or f"HTTP {exc.response.status_code}")
            return None, slack_trouble(exc)
        except Exception as exc:  # network errors: aiohttp, timeouts
            log.warning("Slack %s failed: %r", method, exc)
            return None, may_send_again(method, exc)
