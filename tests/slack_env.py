"""A running csbot (HTTP mode, every extension) against the fake Slack, shared by the agents' and
admins' end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fake_slack import (
    BOT_TOKEN,
    BOT_USER,
    MODE_VERSIONS,
    SIGNING_SECRET,
    Call,
    FakeSlack,
    Response,
    dm_event,
    event_body,
    make_data_dir,
    post_action,
    post_command,
    post_event,
    slash_command_form,
    wait_until,
)

from bot.config import load_settings
from bot.context import Context
from bot.slack.extensions import ALL
from bot.slack.server import HttpInThread
from bot.store import Store
from models.registry import Registry

AGENTS_CHANNEL, AGENT, ADMIN, GROUP_AGENT, CUSTOMER = "C0AGENTS", "U0AGENT", "U0ADMIN", "U0GROUPIE", "UCUSTOMER1"
USERGROUP = "S0AGENTS"


@dataclass
class Env:
    fake: FakeSlack
    ctx: Context
    server: HttpInThread

    @property
    def url(self) -> str:
        return self.server.url + "/slack/events"

    def use(self, mode: str) -> None:
        Registry(self.ctx.settings.models_dir, self.ctx.store).activate(MODE_VERSIONS[mode])
        self.ctx.refresh_model()

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.ctx.store.db.query(sql, params))

    def ask(self, text: str, channel: str, mode: str = "answer") -> tuple[dict[str, Any], dict[str, Any], int]:
        """A customer DM answered in ``mode``: (event, the bot's message as Slack holds it, message id)."""
        self.use(mode)
        event = dm_event(text, channel=channel)
        assert post_event(self.url, event_body(event)).status == 200
        call = self.fake.wait_for("chat.postMessage", channel=channel, thread_ts=event["ts"])[0]
        message_id = wait_until(lambda: self.rows("SELECT id FROM messages WHERE ts = ?", [event["ts"]]))[0]["id"]
        reply = wait_until(lambda: self.rows("SELECT * FROM replies WHERE message_id = ? AND ts IS NOT NULL",
                                             [message_id]), what="the reply's ts")[0]
        message = {"type": "message", "user": BOT_USER, "ts": reply["ts"], "thread_ts": event["ts"],
                   "text": call.params["text"], "blocks": call.params.get("blocks", [])}
        return event, message, message_id

    def command(self, user: str, text: str, channel: str = "C0SUPPORT") -> Call:
        """`/csbot text` from ``user``; returns what was POSTed to the response URL."""
        hook = self.fake.response_url("cmd")
        started = len(self.fake.of("response_url", url=hook))
        response: Response = post_command(self.url, slash_command_form(user=user, channel=channel, text=text,
                                                                       response_url=hook))
        assert response.status == 200 and response.body == "", response
        return self.fake.wait_for("response_url", started + 1, url=hook)[-1]

    def action(self, payload: dict[str, Any]) -> Response:
        response = post_action(self.url, payload)
        assert response.status == 200, response
        return response

    def opened_view(self, count: int = 1) -> tuple[Call, dict[str, Any]]:
        call = self.fake.wait_for("views.open", count)[count - 1]
        view = {**call.params["view"], "id": f"V{count:08d}"}
        return call, view

    @staticmethod
    def errors(response: Response) -> dict[str, str]:
        body = json.loads(response.body or "{}")
        assert body.get("response_action") == "errors", body
        return body["errors"]


@contextmanager
def running(root: Path, model: Path, *, service: dict[str, Any] | None = None, **overrides: Any) -> Iterator[Env]:
    """``overrides``: settings; ``service``: SlackService's own options (such as ``api_timeout``)."""
    data_dir, kb_path = make_data_dir(root, model)
    with FakeSlack() as fake:
        fake.usergroups[USERGROUP] = [GROUP_AGENT]
        settings = load_settings(env_file=None, data_dir=data_dir, kb_path=kb_path, slack_bot_token=BOT_TOKEN,
                                 slack_signing_secret=SIGNING_SECRET, slack_api_url=fake.api_url,
                                 agents_channel=AGENTS_CHANNEL, agent_users=AGENT, admin_users=ADMIN,
                                 agent_usergroup=USERGROUP, onnx_provider="cpu", threads=1, timezone="UTC",
                                 **overrides)
        with Store(settings.db_path) as store:
            Registry(settings.models_dir, store).activate(MODE_VERSIONS["answer"])
        ctx = Context.open(settings)
        server = HttpInThread(ctx, extensions=ALL, **(service or {})).start()
        try:
            yield Env(fake, ctx, server)
        finally:
            server.stop()
            ctx.store.close()
