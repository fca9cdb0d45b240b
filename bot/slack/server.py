"""Running the Slack app: uvicorn for HTTP (``/slack/events``, ``/healthz``, ``/metrics``) or Socket Mode.

``serve`` is what ``csbot serve`` and ``csbot up`` call. The ``*InThread`` helpers run
the same servers in a background thread, for the tests and the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import datetime
from typing import Any

import uvicorn
from slack_bolt.adapter.asgi.aiohttp import AsyncSlackRequestHandler
from slack_bolt.adapter.asgi.http_request import AsgiHttpRequest
from slack_bolt.adapter.asgi.http_response import AsgiHttpResponse
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot import messages
from bot.config import Settings, apply_log_level
from bot.context import Context
from bot.slack.app import Extension, SlackService
from models.errors import ConfigError, CsbotError

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
EVENTS_PATH = "/slack/events"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REFUSAL_LOG_SECONDS = 60.0  # a flood of forged requests logs one warning a minute, not one each


def _plausible_timestamp(scope: Scope) -> bool:
    """Slack signs a Unix time in seconds: a few ASCII digits. Anything else cannot carry its signature."""
    value = next((v for k, v in scope.get("headers", []) if k.lower() == b"x-slack-request-timestamp"), b"")
    return 0 < len(value) <= 12 and value.isdigit()


class SlackAsgi:
    """The ASGI application: bolt on ``POST /slack/events``, plus health and metrics."""

    def __init__(self, service: SlackService) -> None:
        self.service = service
        self._handler: AsyncSlackRequestHandler | None = None
        self.startup_error: BaseException | None = None
        self.banner = ""  # printed once the app is ready (by `csbot serve`, not in tests)
        self._refused = 0  # requests refused as unsigned since the last warning
        self._refusal_logged_at = -REFUSAL_LOG_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.service.start()
                except Exception as exc:  # e.g. a wrong token: auth.test fails; uvicorn then exits
                    if not isinstance(exc, CsbotError):
                        log.exception("the Slack app could not start")
                    self.startup_error = exc  # re-raised by serve() so the CLI prints it once, plainly
                    await send({"type": "lifespan.startup.failed", "message": "the Slack app could not start"})
                    return
                assert self.service.app is not None
                self._handler = AsyncSlackRequestHandler(self.service.app, path=EVENTS_PATH)
                await send({"type": "lifespan.startup.complete"})
                if self.banner:
                    print(self.banner, flush=True)
            elif message["type"] == "lifespan.shutdown":
                await self.service.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if path == EVENTS_PATH and method == "POST" and self._handler is not None:
            started = time.perf_counter()
            try:
                if not _plausible_timestamp(scope):
                    # Bolt turns a timestamp that is not a number into a 500 and a traceback: refuse it as
                    # what it is, a request Slack did not sign.
                    response = AsgiHttpResponse(401, {"content-type": ["text/plain"]}, "")
                else:
                    bolt = await self._handler.dispatch(AsgiHttpRequest(scope, receive))  # type: ignore[arg-type]
                    response = AsgiHttpResponse(status=bolt.status, headers=bolt.headers, body=bolt.body)
            except (ValueError, AttributeError, TypeError) as error:
                # Bolt decodes and parses the body before it checks the signature, so a body that is
                # not UTF-8, JSON or form data raises ValueError here, and JSON that is not an object
                # (`[1]`, `payload=null`) an AttributeError. It cannot be from Slack: refuse it. (Errors
                # in listeners never reach this: bolt answers those itself.)
                log.warning("refused a request whose body is not a Slack payload: %s", error)
                response = AsgiHttpResponse(400, {"content-type": ["text/plain"]}, messages.BAD_REQUEST_BODY)
            await self._send(send, response)
            if response.status == 401:
                self._log_refusal()
            metrics = self.service.metrics
            metrics.observe("csbot_ack_seconds", time.perf_counter() - started)
            metrics.inc("csbot_slack_requests_total", status=str(response.status))
        elif path == "/healthz" and method == "GET":
            await self._send(send, self._health())
        elif path == "/metrics" and method == "GET":
            await self._send(send, AsgiHttpResponse(200, {"content-type": [PROMETHEUS_TYPE]},
                                                    self.service.metrics.render()))
        else:
            await self._send(send, AsgiHttpResponse(404, {"content-type": ["text/plain"]}, "Not Found"))

    def _log_refusal(self) -> None:
        """Bolt answers 401 to a bad signature or an old timestamp and says nothing an operator sees. When
        it is Slack's own requests being refused (a wrong signing secret, a skewed clock), say so and how to fix it."""
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_SECONDS:
            log.warning(messages.REFUSED_UNSIGNED.format(count=self._refused))
            self._refused, self._refusal_logged_at = 0, now

    def _health(self) -> AsgiHttpResponse:
        service = self.service
        # The database file deleted or moved under a running bot: answers would go to a file nobody reads.
        database = service.ctx.settings.db_path.is_file()
        ok = service.ready and database
        body = {"ok": ok, "model": service.ctx.live.current.version, "device": service.ctx.live.current.device,
                "pending": service.pending, "database": "ok" if database else "missing"}
        return AsgiHttpResponse(200 if ok else 503, {"content-type": ["application/json"]}, json.dumps(body))

    @staticmethod
    async def _send(send: Send, response: AsgiHttpResponse) -> None:
        await send(response.get_response_start())
        await send(response.get_response_body())


def http_server(ctx: Context, *, extensions: tuple[Extension, ...] = (), **batch: Any) -> uvicorn.Server:
    settings = ctx.settings
    config = uvicorn.Config(SlackAsgi(SlackService(ctx, extensions=extensions, **batch)), host=settings.http_host,
                            port=settings.http_port, lifespan="on", access_log=False, log_level="warning",
                            timeout_graceful_shutdown=10, backlog=2048)
    return uvicorn.Server(config)


async def check_app_token(settings: Settings) -> None:
    """Ask for a Socket Mode connection once ourselves: with a token Slack refuses, bolt's handler logs a
    traceback every few seconds and never gives up, and the bot never says why it is not answering."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.runtime import slack_trouble

    client = AsyncWebClient(base_url=settings.slack_api_url)
    try:
        await client.apps_connections_open(app_token=settings.slack_app_token)
    except SlackApiError as exc:
        if slack_trouble(exc):
            return  # the handler's own reconnects deal with it
        raise ConfigError(messages.SLACK_APP_TOKEN_REJECTED.format(error=exc.response.get("error")),
                          messages.SLACK_APP_TOKEN_REJECTED_FIX) from exc
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
        return  # auth.test has just reached the API; a blip here is the handler's to retry


async def run_socket_mode(ctx: Context, stop: asyncio.Event | None = None,
                          service: SlackService | None = None) -> None:
    """Connect over Socket Mode and serve until ``stop`` is set (or forever)."""
    service = service or SlackService(ctx, socket_mode=True)
    await service.start()
    assert service.app is not None
    handler = AsyncSocketModeHandler(service.app, ctx.settings.slack_app_token)
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, `docker stop`) drains like Ctrl+C: answers in flight get their ts stored.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await check_app_token(ctx.settings)
        await handler.connect_async()
        print(messages.SOCKET_MODE_READY.format(version=ctx.live.current.version), flush=True)
        await stop.wait()
    finally:
        await handler.close_async()
        await service.stop()


def bind_http_socket(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a port in use or a host that is not this machine's is a clear error
    naming the setting, not uvicorn's "[Errno 98]" after csbot has already said it is serving."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
    except OSError as exc:  # socket.gaierror too: a name that does not resolve
        raise ConfigError(messages.HTTP_BIND_FAILED.format(host=host, port=port, error=exc.strerror or exc),
                          messages.HTTP_BIND_FAILED_FIX) from exc
    return sock


@contextlib.contextmanager
def _signals_end_the_run() -> Iterator[None]:
    """uvicorn drains on SIGTERM or Ctrl+C, then raises the signal again under the handler it found: with the
    default one, the process died there (rc 143, or "Aborted!"), before the scheduler and the store were closed.
    Found this one instead, the signal just ends the run, and the clean-up after it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            log.info("stopped by %s; in-flight messages were answered", signal.Signals(received[0]).name)


def serve(settings: Settings, http: bool, next_run: Callable[[], datetime | None] | None = None) -> None:
    """Run the Slack app until interrupted: HTTP (production) or Socket Mode (development).

    ``next_run`` tells `/csbot status` when this process's retrain schedule fires next."""
    from bot.slack.extensions import default_extensions

    settings.require_slack(socket_mode=not http)
    extensions = default_extensions(next_run)
    # INFO unless CSBOT_LOG_LEVEL says otherwise, so e.g. "retrain skipped: nothing new" shows.
    apply_log_level(settings.log_level_for(serving_slack=True))
    ctx = Context.open(settings)
    stop_watching = ctx.watch_model()
    try:
        if http:
            server = http_server(ctx, extensions=extensions)
            asgi: SlackAsgi = server.config.app
            asgi.banner = messages.HTTP_READY.format(host=settings.http_host, port=settings.http_port,
                                                     path=EVENTS_PATH, version=ctx.live.current.version)
            sock = bind_http_socket(settings.http_host, settings.http_port)  # before "serving" is said
            try:
                with _signals_end_the_run():
                    server.run(sockets=[sock])
            except SystemExit:  # uvicorn exits when startup fails; say why in csbot's words
                if asgi.startup_error is not None:
                    raise asgi.startup_error from None
                raise
        else:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(run_socket_mode(ctx, service=SlackService(ctx, socket_mode=True, extensions=extensions)))
    finally:
        stop_watching.set()
        ctx.store.close()


class HttpInThread:
    """The HTTP server on a background thread, bound to a free loopback port (tests, benchmark)."""

    def __init__(self, ctx: Context, **batch: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = http_server(ctx, **batch)
        self.service: SlackService = self.server.config.app.service
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 20.0) -> HttpInThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Slack HTTP server did not start (see the log)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=20)
        self.sock.close()


class SocketModeInThread:
    """Socket Mode on a background thread with its own event loop (tests)."""

    def __init__(self, ctx: Context, extensions: tuple[Extension, ...] = ()) -> None:
        self.ctx = ctx
        self.service = SlackService(ctx, socket_mode=True, extensions=extensions)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await run_socket_mode(self.ctx, self._stop, self.service)
        asyncio.run(main())

    def start(self) -> SocketModeInThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
