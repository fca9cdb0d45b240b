"""From raw Events API payloads to jobs: which messages the bot answers, and how reactions vote.

Pure functions, so the rules (what is ignored, which thread a reply goes to) are
tested without Slack and read in one place.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.service import Incoming

# Messages with these subtypes carry a customer's words; every other subtype is an edit,
# a deletion, a join, a bot post or a system notice and is ignored.
ANSWERED_SUBTYPES = (None, "file_share", "thread_broadcast")
UP_REACTIONS = frozenset({"+1", "thumbsup"})
DOWN_REACTIONS = frozenset({"-1", "thumbsdown"})


@dataclass(frozen=True)
class MessageJob:
    """One customer message to answer, with what is needed to dedupe and time it."""

    event_id: str
    incoming: Incoming
    received: float = field(default_factory=time.perf_counter)
    # A thread reply in a channel the bot does not watch: answered only if the bot
    # already has a conversation in that thread (it was mentioned there before).
    needs_known_thread: bool = False

    @property
    def message_key(self) -> str:
        # app_mention and message.* both fire for one message; their event ids differ,
        # so the message itself is claimed too and only the first event is answered.
        return f"msg:{self.incoming.channel}:{self.incoming.ts}"


def message_job(body: Mapping[str, Any], *, bot_user_id: str | None, support_channels: frozenset[str],
                mention: bool = False) -> MessageJob | None:
    """The job for a ``message`` or ``app_mention`` event, or None when the bot should stay silent."""
    event = body.get("event") or {}
    if event.get("subtype") not in ANSWERED_SUBTYPES or event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not user or not channel or not ts or user == bot_user_id:
        return None
    thread_ts = event.get("thread_ts")
    in_thread = bool(thread_ts) and thread_ts != ts
    needs_known_thread = False
    if not mention:
        direct = event.get("channel_type") == "im" or channel in support_channels
        if not direct:
            if not in_thread:
                return None  # a channel message not addressed to the bot; app_mention covers mentions
            needs_known_thread = True
    incoming = Incoming(text=event.get("text") or "", user=user, channel=channel, thread_ts=thread_ts or ts,
                        ts=ts, source="slack")
    event_id = str(body.get("event_id") or f"{channel}:{ts}")
    return MessageJob(event_id, incoming, needs_known_thread=needs_known_thread)


def reaction_rating(name: str) -> int | None:
    """+1 for 👍, -1 for 👎 (any skin tone), None for every other emoji."""
    base = name.split("::", 1)[0]
    if base in UP_REACTIONS:
        return 1
    if base in DOWN_REACTIONS:
        return -1
    return None


@dataclass(frozen=True)
class ReactionJob:
    event_id: str
    user: str
    channel: str
    ts: str
    rating: int
    added: bool
    # Whether the reacted-to message is the bot's own (Slack's item_user; True when Slack omits it).
    on_bot_message: bool = True


def reaction_job(body: Mapping[str, Any], *, bot_user_id: str | None, added: bool) -> ReactionJob | None:
    event = body.get("event") or {}
    item = event.get("item") or {}
    rating = reaction_rating(str(event.get("reaction") or ""))
    user = event.get("user")
    if item.get("type") != "message" or rating is None or not user or user == bot_user_id:
        return None
    if not item.get("channel") or not item.get("ts"):
        return None
    event_id = str(body.get("event_id") or f"{item['channel']}:{item['ts']}:{user}:{event.get('event_ts')}")
    item_user = event.get("item_user")
    on_bot_message = not item_user or not bot_user_id or item_user == bot_user_id
    return ReactionJob(event_id, user, item["channel"], item["ts"], rating, added, on_bot_message)
