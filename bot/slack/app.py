"""The bolt ``AsyncApp`` and its listeners, the same for Socket Mode and HTTP.

``process_before_response=True`` makes bolt run a listener inline and answer once it
returns, instead of polling every 10 ms for the ack from a background task (which
alone would miss the 10 ms ack target). So every listener here only acks and hands
the work on: messages to the batching pipeline, clicks and reactions to tasks.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot import messages
from bot.context import Context
from bot.slack import blocks, spooled
from bot.slack.actions import Actions
from bot.slack.events import message_job, reaction_job
from bot.slack.metrics import Metrics
from bot.slack.pipeline import MessagePipeline
from bot.slack.runtime import Runtime, may_send_again, slack_trouble
from models.errors import ConfigError

log = logging.getLogger(__name__)

Body = dict[str, Any]
# Later features (agents' shortcuts, App Home, /csbot) register their listeners through this.
Extension = Callable[[AsyncApp, Runtime], None]


class _SameTokenFilter(logging.Filter):
    """Drop bolt's warning that our client's token wins over SLACK_BOT_TOKEN: bolt reads the
    environment on its own, and the two are the same token (settings read that variable)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


BOLT_LOG = logging.getLogger("csbot.bolt")
AUTH_RETRY_SECONDS = (1.0, 3.0)  # Slack down for a moment at start-up: tried again, then said
BOLT_LOG.addFilter(_SameTokenFilter())


class _ConnectionRetry(AsyncConnectionErrorRetryHandler):
    """slack_sdk's one retry of a lost connection, except where Slack may already have created the message
    (runtime.NOT_IDEMPOTENT): a connection reset or dropped after the request went out."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest,
                               response: HttpResponse | None = None, error: Exception | None = None) -> bool:
        method = request.url.rstrip("/").rsplit("/", 1)[-1]
        return error is not None and may_send_again(method, error) and await super()._can_retry_async(
            state=state, request=request, response=response, error=error)


# How long one Web API call may take. slack_sdk applies its own ``timeout`` only to sessions it creates itself, so
# the service's shared session carries the same limit (SlackService.start).
API_TIMEOUT_SECONDS = 15.0


def make_client(token: str | None, base_url: str, session: aiohttp.ClientSession | None = None,
                timeout: float = API_TIMEOUT_SECONDS) -> AsyncWebClient:
    """A Web API client for ``base_url`` (GovSlack, or the tests' fake) that waits out rate limits."""
    retries: list[AsyncRetryHandler] = [_ConnectionRetry(), AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
    return AsyncWebClient(token=token, base_url=base_url, session=session, timeout=max(1, round(timeout)),
                          retry_handlers=retries)


class SlackService:
    """Owns the client, the app, the pipeline and background tasks of one running bot."""

    def __init__(self, ctx: Context, *, socket_mode: bool = False, extensions: tuple[Extension, ...] = (),
                 max_batch: int = 64, max_wait: float = 0.002, max_inflight: int = 1,
                 api_timeout: float = API_TIMEOUT_SECONDS) -> None:
        self.ctx = ctx
        self.api_timeout = api_timeout
        self.socket_mode = socket_mode
        self.extensions = extensions
        self.metrics = Metrics()
        self.batch = {"max_size": max_batch, "max_wait": max_wait, "max_inflight": max_inflight}
        self._session: aiohttp.ClientSession | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._replayer: asyncio.Task[None] | None = None
        self.rt: Runtime | None = None
        self.app: AsyncApp | None = None
        self.pipeline: MessagePipeline | None = None
        self.ready = False

    async def start(self) -> None:
        settings = self.ctx.settings
        # One shared session keeps connections to Slack alive between calls. Its timeout is the one every call
        # gets (aiohttp's default is 300 s): a stalled Slack must not hold an answer, or the shutdown, that long.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                              timeout=aiohttp.ClientTimeout(total=self.api_timeout))
        client = make_client(settings.slack_bot_token, settings.slack_api_url, self._session, self.api_timeout)
        try:
            auth = await self._auth_test(client)
        except BaseException:
            await self._session.close()
            raise
        self.rt = rt = Runtime(self.ctx, client, self.metrics, bot_user_id=auth.get("user_id"),
                               team_url=str(auth.get("url") or ""))
        self.ctx.bot.bot_user_id = rt.bot_user_id  # so "<@bot> where is my order" reads "where is my order"
        self.pipeline = MessagePipeline(rt, **self.batch)  # type: ignore[arg-type]
        self.pipeline.start()
        # Given the token, bolt would call auth.test on the first request, before its ack, and drop that event if
        # Slack failed to answer. The call above has the answer: bolt gets it through ``authorize`` and a client
        # without the token (one with it would make bolt warn that the token is ignored). Listeners use rt.client.
        authorized = AuthorizeResult.from_auth_test_response(auth_test_response=auth,  # type: ignore[arg-type]
                                                             bot_token=settings.slack_bot_token)

        async def authorize() -> AuthorizeResult:
            return authorized

        # The secret is passed even when empty: bolt would otherwise read the environment itself.
        self.app = AsyncApp(client=make_client(None, settings.slack_api_url, self._session, self.api_timeout),
                            authorize=authorize,
                            signing_secret=settings.slack_signing_secret, process_before_response=True,
                            request_verification_enabled=not self.socket_mode, name="csbot", logger=BOLT_LOG)
        actions = Actions(rt)
        rt.spool_apply = spooled.make_apply(rt, actions.react_now)
        self._register(self.app, rt, actions)
        for extend in self.extensions:
            extend(self.app, rt)
        loop = asyncio.get_running_loop()
        self._pruner = loop.create_task(self._prune_events(rt))
        self._replayer = loop.create_task(self._replay_spool(rt))  # votes kept by an earlier run go in first
        self.ready = True
        log.info("Slack app ready as %s (%s), API %s", auth.get("user"), rt.bot_user_id, settings.slack_api_url)

    async def _auth_test(self, client: AsyncWebClient, retry: tuple[float, ...] = AUTH_RETRY_SECONDS
                         ) -> dict[str, Any]:
        """Who the bot is; also the first check that the token and the API URL work. Slack's own trouble (a
        5xx, internal_error) is tried again a few times: it is no reason to tell anyone their token is bad."""
        url = self.ctx.settings.slack_api_url
        for delay in (*retry, None):
            try:
                return dict((await client.auth_test()).data)  # type: ignore[arg-type]
            except SlackApiError as exc:
                error = exc.response.get("error")
                if not slack_trouble(exc):
                    raise ConfigError(messages.SLACK_TOKEN_REJECTED.format(error=error),
                                      messages.SLACK_TOKEN_REJECTED_FIX) from exc
                failure: Exception = exc
                reason = f"{error}, HTTP {exc.response.status_code}"
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                failure, reason = exc, str(exc) or type(exc).__name__
            if delay is None:
                raise ConfigError(messages.SLACK_API_UNREACHABLE.format(url=url, error=reason),
                                  messages.SLACK_API_UNREACHABLE_FIX) from failure
            log.warning("Slack's auth.test failed (%s); trying again in %s s", reason, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _prune_events(self, rt: Runtime, every: float = 3600.0) -> None:
        """Forget claimed event ids after a day: Slack's last retry comes within the hour."""
        while True:
            try:
                await rt.in_thread(self.ctx.store.prune_events, timedelta(days=1))
            except Exception:  # a locked database now is no reason to stop pruning later
                log.exception("pruning old Slack event ids failed")
            await asyncio.sleep(every)

    async def _replay_spool(self, rt: Runtime, every: float = spooled.REPLAY_SECONDS) -> None:
        """Store the writes the database refused, once it takes writes again (bot.slack.spooled)."""
        while True:
            try:
                await rt.replay_spool()
            except Exception:  # a bug in one entry's replay must not stop the next round
                log.exception("replaying kept writes failed")
            await asyncio.sleep(every)

    async def stop(self) -> None:
        self.ready = False
        for task in (self._pruner, self._replayer):
            if task:
                task.cancel()
        if self.pipeline:
            await self.pipeline.drain()
        pending = set(self.rt.tasks) if self.rt else set()
        if pending:
            await asyncio.wait(pending, timeout=10)
        if self._session:
            await self._session.close()
        if self.rt:
            self.rt.pool.shutdown(wait=True)
            self.rt.ack_pool.shutdown(wait=True)

    @property
    def pending(self) -> int:
        return (len(self.rt.tasks) if self.rt else 0) + (self.pipeline.pending if self.pipeline else 0)

    def _register(self, app: AsyncApp, rt: Runtime, actions: Actions) -> None:
        settings, metrics = self.ctx.settings, self.metrics
        pipeline = self.pipeline
        assert pipeline is not None

        def on_message(mention: bool) -> Callable[..., Awaitable[None]]:
            async def listener(ack: AsyncAck, body: Body) -> None:
                await ack()
                metrics.inc("csbot_slack_events_total", type="app_mention" if mention else "message")
                job = message_job(body, bot_user_id=rt.bot_user_id, support_channels=settings.support_channel_ids,
                                  mention=mention)
                if job is None:
                    metrics.inc("csbot_slack_ignored_total", reason="not_for_bot")
                    return
                pipeline.submit(job)
            return listener

        def on_reaction(added: bool) -> Callable[..., Awaitable[None]]:
            async def listener(ack: AsyncAck, body: Body) -> None:
                await ack()
                metrics.inc("csbot_slack_events_total", type="reaction_added" if added else "reaction_removed")
                job = reaction_job(body, bot_user_id=rt.bot_user_id, added=added)
                if job is not None:
                    rt.spawn(actions.reaction(job))
            return listener

        def on_action(name: str, handler: Callable[[Body], Coroutine[Any, Any, None]]
                      ) -> Callable[..., Awaitable[None]]:
            async def listener(ack: AsyncAck, body: Body) -> None:
                await ack()
                metrics.inc("csbot_slack_events_total", type=name)
                rt.spawn(handler(body))
            return listener

        app.event("message")(on_message(False))
        app.event("app_mention")(on_message(True))
        app.event("reaction_added")(on_reaction(True))
        app.event("reaction_removed")(on_reaction(False))
        app.action(blocks.UP)(on_action("feedback_up", lambda body: actions.feedback(body, 1)))
        app.action(blocks.DOWN)(on_action("feedback_down", lambda body: actions.feedback(body, -1)))
        app.action(blocks.HUMAN)(on_action("handoff_request", actions.human_from_reply))
        app.action(blocks.CLARIFY_NONE)(on_action("clarify_none", actions.human_from_clarify))
        app.action(re.compile(rf"^{blocks.CLARIFY_PREFIX}\d+$"))(on_action("clarify", actions.clarify))
