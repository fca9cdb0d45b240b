"""Handing a conversation to people: the post in the agents' channel.

Agents need to act without opening the database: the customer's words, a link to
the thread, what the model guessed and how sure it was, the mood, and why the bot
stepped aside. Escalations are marked as priority.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot import messages
from bot.normalize import quiet_mentions
from bot.slack import blocks
from bot.slack.runtime import POST_RETRY_SECONDS, Runtime
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Handoff:
    channel: str  # where the customer is
    thread_ts: str  # the customer's first message, the thread's parent
    user: str
    text: str
    intent: str | None
    confidence: float | None
    sentiment: str | None
    sentiment_score: float | None
    reason: str  # a key of messages.REASONS
    priority: bool = False
    message_id: int | None = None  # the customer's stored message: the post gets label buttons


def archive_link(team_url: str, channel: str, ts: str) -> str:
    """The link Slack itself would give, built locally when chat.getPermalink is unavailable."""
    base = team_url.rstrip("/") or "https://slack.com"
    return f"{base}/archives/{channel}/p{ts.replace('.', '')}"


async def post_handoff(rt: Runtime, handoff: Handoff) -> bool:
    """Post to the agents' channel; False if no channel is configured or the post failed."""
    channel = rt.ctx.settings.agents_channel
    if not channel:
        log.warning("a conversation needs a person but CSBOT_AGENTS_CHANNEL is not set")
        return False
    found = await rt.call("chat.getPermalink", channel=handoff.channel, message_ts=handoff.thread_ts)
    link = (found or {}).get("permalink") or archive_link(rt.team_url, handoff.channel, handoff.thread_ts)
    title = messages.AGENTS_ESCALATE_TITLE if handoff.priority else messages.AGENTS_HANDOFF_TITLE
    reason = messages.REASONS.get(handoff.reason, handoff.reason)
    quoted = quiet_mentions(handoff.text)  # quoted in the agents' channel: a customer's @channel pages no one
    rendered = blocks.agents_blocks(
        title=title, user=handoff.user, text=quoted, intent=handoff.intent, confidence=handoff.confidence,
        sentiment=handoff.sentiment, sentiment_score=handoff.sentiment_score, reason=reason, link=link,
        priority=handoff.priority, message_id=handoff.message_id,
        guess_known=handoff.intent in rt.ctx.kb.intents)
    text = messages.AGENTS_FALLBACK.format(title=title, user=handoff.user, text=blocks.cut(quoted, 300),
                                           reason=reason)
    # Retried like an answer: the customer is told a person will reply, so the page must not be lost to one 5xx.
    posted = await rt.call("chat.postMessage", channel=channel, text=blocks.fallback(text), blocks=rendered,
                           unfurl_links=False, retry=POST_RETRY_SECONDS)
    kind = "escalate" if handoff.priority else "handoff"
    if posted is None:
        log.error("%s", messages.HANDOFF_PAGE_FAILED.format(channel=channel, link=link))
        rt.metrics.inc("csbot_handoff_failures_total", kind=kind)
        return False
    rt.metrics.inc("csbot_handoffs_total", kind=kind)
    return True


def withdraw(store: Store, reply_id: int, claims: list[str]) -> None:
    """Undo a requested handoff whose page reached no one: its reply of kind 'handoff' (which would keep the bot
    out of the thread, see ``dedupe.handed_off``) and its click claims, so the customer can ask again."""
    with store.transaction() as db:
        db.execute("DELETE FROM replies WHERE id = ? AND kind = 'handoff'", [reply_id])
        for key in claims:
            db.execute("DELETE FROM slack_events WHERE event_id = ?", [key])
