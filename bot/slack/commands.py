"""The `/csbot` slash command: ack at once, then answer with ``bot.admin.run``'s text.

`retrain` posts "started" in the channel and follows the child process in the background:
each new phase, then the report (``learning.report_text``), in a thread under that post.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import subprocess
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import admin, learning, messages
from bot.slack.blocks import fallback, long_text_blocks
from bot.slack.people import tell, usergroup_members
from bot.slack.review import review_blocks
from bot.slack.runtime import Runtime
from bot.store import Store

log = logging.getLogger(__name__)

COMMAND = "/csbot"
Body = dict[str, Any]


def _command(text: str) -> str:
    try:
        words = shlex.split(text or "")
    except ValueError:
        words = (text or "").split()
    return words[0].lower() if words else "help"


async def run_command(rt: Runtime, body: Body) -> None:
    settings = rt.ctx.settings
    user, channel = str(body.get("user_id") or ""), str(body.get("channel_id") or "") or None
    text, response_url = str(body.get("text") or ""), body.get("response_url")
    command = _command(text)
    members: frozenset[str] = frozenset()
    if command in admin.AGENT_COMMANDS and user not in settings.agents:
        members = await usergroup_members(rt) or frozenset()
    provider, next_run = rt.ctx.live.current.provider, rt.next_retrain()
    reply = await rt.in_thread(lambda: admin.run(settings, text, user=user, provider=provider, next_run=next_run,
                                                 usergroup_members=members, trigger="slack"))
    rt.metrics.inc("csbot_commands_total", command=command if command in (
        *admin.ADMIN_COMMANDS, *admin.AGENT_COMMANDS, "help") else "unknown", ok=str(reply.ok).lower())
    if reply.retrain is not None and reply.retrain.started:
        await _follow_retrain(rt, reply.retrain, reply.text, user=user, channel=channel, response_url=response_url)
        return
    if reply.review_items:
        rendered = review_blocks(reply.review_items, reply.review_total)
    else:
        rendered = long_text_blocks(reply.text)
    await tell(rt, user=user, channel=channel, text=fallback(reply.text), blocks=rendered, response_url=response_url)


async def _follow_retrain(rt: Runtime, handle: learning.RetrainHandle, started: str, *, user: str,
                          channel: str | None, response_url: str | None) -> None:
    posted = await rt.call("chat.postMessage", channel=channel, text=started) if channel else None
    thread_ts = str((posted or {}).get("ts") or "") or None

    async def say(text: str) -> bool:
        if thread_ts:
            posted = await rt.call("chat.postMessage", channel=channel, thread_ts=thread_ts, text=fallback(text),
                                   blocks=long_text_blocks(text))
            return posted is not None
        # The bot is not in that channel: answer privately instead, through the response URL, which Slack
        # honours 5 times within 30 minutes. So only "started" and the report go that way (no phases), and
        # a report after the URL expired goes to the admin's DM with the bot.
        if await tell(rt, user=user, channel=channel, text=fallback(text), blocks=long_text_blocks(text),
                      response_url=response_url):
            return True
        return await rt.call("chat.postMessage", channel=user, text=fallback(text),
                             blocks=long_text_blocks(text)) is not None

    if not thread_ts:
        await say(started)
    phase = None
    while True:
        try:
            run = await asyncio.to_thread(handle.wait, rt.ctx.settings.retrain_progress_seconds)
            break
        except subprocess.TimeoutExpired:
            now = await asyncio.to_thread(_phase, rt, handle.run_id)
            if now and now != phase and thread_ts:
                phase = now
                await say(messages.RETRAIN_PHASE.format(phase=now))
    await rt.in_thread(rt.ctx.refresh_model_or_keep)
    await say(learning.report_text(run) if run.get("id") else
              messages.RETRAIN_DONE_FALLBACK.format(status=run.get("status")))


def _phase(rt: Runtime, run_id: int | None) -> str | None:
    if run_id is None:
        return None
    with Store(rt.ctx.settings.db_path) as store:
        run = learning.get_run(store, run_id) or {}
    return run.get("phase")


def extension(app: AsyncApp, rt: Runtime) -> None:
    async def listener(ack: AsyncAck, body: Body) -> None:
        await ack()
        rt.spawn(run_command(rt, body))

    app.command(COMMAND)(listener)
