"""Socket Mode end to end: a local WebSocket server plays Slack and hands the bot an events_api envelope.

The bot calls ``apps.connections.open`` on the fake Web API with its app-level token,
connects to the returned ``ws://`` URL, must ack each envelope by its id, and must
answer a retried envelope (``retry_attempt`` 1, same event) only once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_slack import (
    APP_TOKEN,
    BOT_TOKEN,
    MODE_VERSIONS,
    FakeSlack,
    dm_event,
    event_body,
    make_data_dir,
    wait_until,
)
from websockets.asyncio.server import ServerConnection, serve

from bot.config import load_settings
from bot.context import Context
from bot.slack.server import SocketModeInThread
from bot.store import Store
from models.registry import Registry


class FakeSocketMode:
    """A WebSocket server on 127.0.0.1 that says hello, sends envelopes and collects the acks."""

    def __init__(self, envelopes: list[dict[str, Any]]) -> None:
        self.envelopes = envelopes
        self.acks: list[dict[str, Any]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _session(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FAKEAPP"},
                                  "debug_info": {"host": "applink-test", "approximate_connection_time": 18060}}))
        for envelope in self.envelopes:
            await ws.send(json.dumps(envelope))
            self.acks.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
        assert self._stop is not None
        await self._stop.wait()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._session, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


def envelope(body: dict[str, Any], envelope_id: str, retry: int = 0) -> dict[str, Any]:
    return {"envelope_id": envelope_id, "payload": body, "type": "events_api", "accepts_response_payload": False,
            "retry_attempt": retry, "retry_reason": "timeout" if retry else ""}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def socket_settings(tmp_path: Path, tiny_model: Path, fake: FakeSlack) -> Any:
    """Settings for Socket Mode against the fake, with the answering model active."""
    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    settings = load_settings(env_file=None, data_dir=data_dir, kb_path=kb_path, slack_bot_token=BOT_TOKEN,
                             slack_app_token=APP_TOKEN, slack_api_url=fake.api_url, onnx_provider="cpu", threads=1)
    with Store(settings.db_path) as store:
        Registry(settings.models_dir, store).activate(MODE_VERSIONS["answer"])
    return settings


def test_socket_mode_acks_and_replies_once(tmp_path: Path, tiny_model: Path, fake: FakeSlack) -> None:
    settings = socket_settings(tmp_path, tiny_model, fake)
    event = dm_event("where is my order", channel="D0SOCKET")
    body = event_body(event)
    envelopes = [envelope(body, "env-1"), envelope(body, "env-2", retry=1)]
    with FakeSocketMode(envelopes) as socket_server:
        fake.socket_url = f"ws://127.0.0.1:{socket_server.port}/link/?ticket=test&app_id=A0FAKEAPP"
        ctx = Context.open(settings)
        bot = SocketModeInThread(ctx).start()
        try:
            reply = fake.wait_for("chat.postMessage", channel="D0SOCKET", thread_ts=event["ts"])[0]
            wait_until(lambda: len(socket_server.acks) == 2, what="both acks")
            wait_until(lambda: bot.service.metrics.value("csbot_slack_duplicates_total", kind="event_id") == 1,
                       what="the retry to be dropped")
        finally:
            bot.stop()
            ctx.store.close()
    assert [ack["envelope_id"] for ack in socket_server.acks] == ["env-1", "env-2"]
    assert fake.of("apps.connections.open")[0].token == APP_TOKEN
    assert reply.params["blocks"][-1]["type"] == "actions"
    assert len(fake.of("chat.postMessage", channel="D0SOCKET")) == 1
    with Store(settings.db_path) as store:
        assert store.db["messages"].count == 1


def test_a_rejected_app_token_is_said_and_ends_the_run(tmp_path: Path, tiny_model: Path, fake: FakeSlack) -> None:
    # bolt's handler logged a traceback every ~10 s and never gave up: `csbot serve` ran on, answering nobody.
    import asyncio

    from bot.slack.server import run_socket_mode
    from models.errors import ConfigError

    settings = socket_settings(tmp_path, tiny_model, fake)
    fake.fail_next("apps.connections.open", "invalid_auth", times=100)
    ctx = Context.open(settings)
    try:
        with pytest.raises(ConfigError) as info:
            asyncio.run(asyncio.wait_for(run_socket_mode(ctx), timeout=30))
    finally:
        ctx.store.close()
    assert info.value.what == "Slack rejected SLACK_APP_TOKEN (invalid_auth): Socket Mode cannot connect."
    assert "connections:write" in info.value.fix and len(fake.of("apps.connections.open")) == 1
