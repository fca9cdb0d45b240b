"""Who may act, and how to answer one person privately.

Agents are the CSBOT_AGENT_USERS allow-list (admins included) or members of the
CSBOT_AGENT_USERGROUP user group, read with ``usergroups.users.list`` (kept for 30 s) so a
change in Slack needs no restart. Admins are the CSBOT_ADMIN_USERS allow-list (bot.admin).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.runtime import Runtime

log = logging.getLogger(__name__)


# Long enough that a burst of agent actions makes one API call (modal submissions must be acked
# within 3 s, after this check), short enough that a change in Slack shows within a minute.
USERGROUP_TTL_SECONDS = 30.0


async def usergroup_members(rt: Runtime, *, within: float | None = None) -> frozenset[str] | None:
    """The agents' user group, from the cache or from Slack.

    ``within`` bounds the wait for Slack (a modal submission is answered in its ack, within 3 s). When
    Slack is slower, the lookup goes on in the background to fill the cache, and this returns the last
    membership read, however old, or None when there is none yet.
    """
    group = rt.ctx.settings.agent_usergroup
    if not group:
        return frozenset()
    cached = rt.usergroup_cache
    if cached and time.monotonic() - cached[0] < USERGROUP_TTL_SECONDS:
        return cached[1]
    if rt.usergroup_lookup is None or rt.usergroup_lookup.done():
        # One lookup at a time: a burst of clicks on a cold cache makes one API call, not one each.
        rt.usergroup_lookup = asyncio.get_running_loop().create_task(_read_usergroup(rt, group))
    try:
        return await asyncio.wait_for(asyncio.shield(rt.usergroup_lookup), within)
    except asyncio.TimeoutError:  # not the builtin TimeoutError: they differ before Python 3.11
        log.warning("usergroups.users.list took over %.1f s; using the membership read before", within)
        return cached[1] if cached else None


async def _read_usergroup(rt: Runtime, group: str) -> frozenset[str]:
    found = await rt.call("usergroups.users.list", usergroup=group)
    if found is None:
        # A failure (a mistyped group, a missing usergroups:read scope, Slack down) is remembered too, with the
        # last membership read: otherwise every thread reply would ask again and wait behind Slack's errors.
        # rt.call has logged the error.
        members = rt.usergroup_cache[1] if rt.usergroup_cache else frozenset()
    else:
        members = frozenset(str(u) for u in found.get("users") or ())
    rt.usergroup_cache = (time.monotonic(), members)
    return members


async def is_agent(rt: Runtime, user: str, *, within: float | None = None) -> bool | None:
    """Whether ``user`` is an agent; None when Slack did not say ``within`` seconds (see usergroup_members)."""
    if not user:
        return False
    if user in rt.ctx.settings.agents:
        return True
    members = await usergroup_members(rt, within=within)
    return None if members is None else user in members


async def tell(rt: Runtime, *, user: str, channel: str | None, text: str, thread_ts: str | None = None,
               blocks: list[dict[str, Any]] | None = None, response_url: str | None = None,
               fallback_url: str | None = None) -> bool:
    """Say something only ``user`` sees: through the response URL when there is one, else an ephemeral, and
    when that fails, through ``fallback_url`` (an interaction's response URL: a message shortcut works where
    the bot is no member, and there the ephemeral fails)."""
    if await _tell(rt, user=user, channel=channel, text=text, thread_ts=thread_ts, blocks=blocks,
                   response_url=response_url):
        return True
    return bool(fallback_url) and await _tell(rt, user=user, channel=None, text=text, thread_ts=None, blocks=blocks,
                                              response_url=fallback_url)


async def _tell(rt: Runtime, *, user: str, channel: str | None, text: str, thread_ts: str | None,
                blocks: list[dict[str, Any]] | None, response_url: str | None) -> bool:
    if response_url:
        try:
            response = await AsyncWebhookClient(response_url, timeout=15).send(
                text=text, blocks=blocks, response_type="ephemeral")
            if response.status_code == 200:
                return True
            log.warning("response_url answered %s: %s", response.status_code, response.body)
        except Exception as exc:  # network errors; fall back to an ephemeral message
            log.warning("response_url failed: %r", exc)
    if not channel:
        return False
    kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
    if thread_ts:
        kwargs["thread_ts"] = thread_ts
    if blocks:
        kwargs["blocks"] = blocks
    return await rt.call("chat.postEphemeral", **kwargs) is not None
