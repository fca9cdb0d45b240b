"""Agents in Slack: "Flag wrong answer", the handoff post's buttons and the review queue's "Label".

Every path opens the same modal (``bot.slack.modal``) and stores through ``bot.admin.label``,
the function ``csbot review label`` calls too. Non-agents get a polite refusal and nothing
is stored. Listeners ack at once; Slack calls happen after the ack, except the modal's
submission, whose answer (``response_action: errors``) must be the ack itself.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import admin, messages
from bot.slack import blocks, home, modal, review
from bot.slack.people import is_agent, tell
from bot.slack.runtime import Runtime
from bot.store import Store
from models.errors import CsbotError

log = logging.getLogger(__name__)
# A modal submission must be answered within 3 s, errors included: wait this long for another writer (a purge, a
# retrain's bookkeeping) before saying the database is busy, so the agent sees why instead of Slack's timeout.
MODAL_BUSY_TIMEOUT_MS = 2000
# How long the submission waits for Slack to say who is in the agents' user group (on a cold cache):
# this plus the busy timeout above stays inside Slack's 3 s.
MODAL_AGENT_CHECK_SECONDS = 0.8
OPEN_AGENT_CHECK_SECONDS = 1.0

Body = dict[str, Any]


def find_message_id(store: Store, channel: str, ts: str) -> int | None:
    """The customer message behind Slack message ``(channel, ts)``: one of the bot's answers to it,
    or the customer's own message."""
    reply = store.find_reply(channel, ts)
    if reply is not None:
        return int(reply["message_id"])
    row = store.db.execute(
        "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE c.channel = ? AND m.ts = ? ORDER BY m.id DESC LIMIT 1", [channel, ts]).fetchone()
    return int(row[0]) if row else None


def _user(body: Body) -> str:
    return str((body.get("user") or {}).get("id") or body.get("user_id") or "")


def _value(body: Body) -> int | None:
    try:
        return int(((body.get("actions") or [{}])[0]).get("value") or "")
    except ValueError:
        return None


class Agents:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def _refuse(self, body: Body, channel: str | None, thread_ts: str | None) -> None:
        await tell(self.rt, user=_user(body), channel=channel, thread_ts=thread_ts, text=messages.AGENT_ONLY,
                   fallback_url=body.get("response_url"))

    async def _may_open(self, body: Body) -> bool:
        """Whether the clicker may open the modal. Slack's trigger_id lasts 3 s, so a cold user-group cache gets
        ``OPEN_AGENT_CHECK_SECONDS``; when Slack is slower the modal opens anyway: its submission checks again."""
        agent = await is_agent(self.rt, _user(body), within=OPEN_AGENT_CHECK_SECONDS)
        if agent is None:
            log.info("opening the modal for %s before Slack confirmed the agents' group", _user(body))
        return agent is not False

    async def open_modal(self, body: Body, message_id: int, target: modal.Target) -> bool:
        message = await self.rt.in_thread_urgent(self.rt.ctx.store.get_message, message_id)
        if message is None:
            await tell(self.rt, user=_user(body), channel=target.channel, thread_ts=target.thread_ts,
                       text=messages.FLAG_GONE, fallback_url=target.response_url)
            return False
        return await self.rt.call("views.open", trigger_id=body.get("trigger_id"),
                                  view=modal.flag_view(message, target)) is not None

    # --- the message shortcut -----------------------------------------------------------

    async def shortcut(self, body: Body) -> None:
        channel = (body.get("channel") or {}).get("id") or ""
        message = body.get("message") or {}
        ts = str(message.get("ts") or body.get("message_ts") or "")
        thread_ts = str(message.get("thread_ts") or ts) or None
        if not await self._may_open(body):
            await self._refuse(body, channel, thread_ts)
            return
        message_id = await self.rt.in_thread_urgent(find_message_id, self.rt.ctx.store, channel, ts)
        if message_id is None:
            await tell(self.rt, user=_user(body), channel=channel, thread_ts=thread_ts, text=messages.FLAG_NOT_OURS,
                       fallback_url=body.get("response_url"))
            return
        await self.open_modal(body, message_id, modal.Target(message_id, channel, thread_ts, "flag",
                                                             response_url=body.get("response_url")))

    # --- buttons: the handoff post and the review queue ---------------------------------

    @staticmethod
    def _where(body: Body) -> tuple[str | None, str | None, bool]:
        """(channel, message ts, in App Home) of the clicked button."""
        container = body.get("container") or {}
        if container.get("type") == "view":
            return None, None, True
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
        message = body.get("message") or {}
        return channel, message.get("ts") or container.get("message_ts"), False

    async def correct_button(self, body: Body) -> None:
        message_id = _value(body)
        channel, ts, _ = self._where(body)
        if message_id is None:
            return
        if not await self._may_open(body):
            await self._refuse(body, channel, ts)
            return
        await self.open_modal(body, message_id, modal.Target(message_id, channel, ts, "handoff", ts,
                                                             response_url=body.get("response_url")))

    async def label_button(self, body: Body) -> None:
        message_id = _value(body)
        channel, _, in_home = self._where(body)
        if message_id is None:
            return
        if not await self._may_open(body):
            if in_home:  # a Home click has no channel to answer in: the tab itself becomes what they may see
                await home.publish(self.rt, _user(body))
                return
            await self._refuse(body, channel, None)
            return
        source = "home" if in_home else "review"
        await self.open_modal(body, message_id, modal.Target(message_id, channel, None, source,
                                                             response_url=body.get("response_url")))

    async def right_button(self, body: Body) -> None:
        """"Answer was right": the model's guess is the label."""
        user, message_id = _user(body), _value(body)
        channel, ts, _ = self._where(body)
        if message_id is None:
            return
        if not await is_agent(self.rt, user):
            await self._refuse(body, channel, ts)
            return
        message = await self.rt.in_thread(self.rt.ctx.store.get_message, message_id)
        if message is None or not message.get("intent"):
            await tell(self.rt, user=user, channel=channel, thread_ts=ts, fallback_url=body.get("response_url"),
                       text=messages.FLAG_GONE if message is None else messages.HANDOFF_NO_GUESS)
            return
        settings, intent, known = self.rt.ctx.settings, str(message["intent"]), tuple(self.rt.ctx.kb.intents)
        try:  # the guess may name an intent the knowledge base no longer has: refused, never stored untrainable
            text = await self.rt.in_thread(lambda: admin.label(settings, message_id, intent, agent=user,
                                                               known_intents=known, confirm_guess=True))
        except CsbotError as error:
            await tell(self.rt, user=user, channel=channel, thread_ts=ts, text=f"{messages.ERROR_PREFIX}{error}",
                       fallback_url=body.get("response_url"))
            return
        posted = body.get("message") or {}
        note = messages.HANDOFF_CONFIRMED.format(user=user, intent=intent)
        if channel and ts:
            await self.rt.call("chat.update", channel=channel, ts=ts, text=blocks.fallback(posted.get("text") or note),
                               blocks=blocks.replace_actions(posted.get("blocks"), note, posted.get("text") or ""))
        await tell(self.rt, user=user, channel=channel, thread_ts=ts, text=text, fallback_url=body.get("response_url"))

    # --- the modal's submission -----------------------------------------------------------

    async def submit(self, ack: AsyncAck, body: Body) -> None:
        user = _user(body)
        try:
            submission = modal.read_submission(body.get("view") or {})
        except (ValueError, KeyError, TypeError):
            await ack(response_action="errors", errors={modal.INTENT_BLOCK: messages.FLAG_GONE})
            return
        kb, settings = self.rt.ctx.kb, self.rt.ctx.settings
        errors = modal.validate(submission, kb)
        if not errors:
            agent = await is_agent(self.rt, user, within=MODAL_AGENT_CHECK_SECONDS)
            if not agent:
                errors = {modal.INTENT_BLOCK: messages.AGENT_ONLY if agent is False else messages.AGENT_CHECK_SLOW}
        text = ""
        if not errors:
            target = submission.target
            try:
                text = await self.rt.in_thread_urgent(lambda: admin.label(
                    settings, target.message_id, submission.intent, agent=user, sentiment=submission.sentiment,
                    note=submission.note, known_intents=tuple(kb.intents), busy_timeout_ms=MODAL_BUSY_TIMEOUT_MS))
            except CsbotError as error:
                errors = {modal.INTENT_BLOCK: blocks.error_text(error)}
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        self.rt.spawn(self._confirm(user, submission, text))

    async def _confirm(self, user: str, submission: modal.Submission, text: str) -> None:
        target = submission.target
        self.rt.metrics.inc("csbot_corrections_total", source=target.source)
        if target.source == "home":
            await home.publish(self.rt, user, show_queue=True)
            return
        # Closed only by an intent: after a sentiment alone the post still needs its label ("corrected it: None").
        if target.source == "handoff" and target.channel and target.post_ts and submission.intent:
            await self._close_handoff_post(target.channel, target.post_ts,
                                           messages.HANDOFF_CORRECTED.format(user=user, intent=submission.intent))
        await tell(self.rt, user=user, channel=target.channel, thread_ts=target.thread_ts, text=text,
                   fallback_url=target.response_url)

    async def _close_handoff_post(self, channel: str, ts: str, note: str) -> None:
        """Swap the handoff post's buttons for who labelled it, so nobody clicks an outdated "Answer was right".

        A modal submission does not carry the post, so its blocks are read back (channels:history)."""
        found = await self.rt.call("conversations.history", channel=channel, latest=ts, inclusive=True, limit=1)
        posts = [m for m in (found or {}).get("messages") or [] if m.get("ts") == ts]
        if posts:
            post = posts[0]
            await self.rt.call("chat.update", channel=channel, ts=ts, text=blocks.fallback(post.get("text") or note),
                               blocks=blocks.replace_actions(post.get("blocks"), note, post.get("text") or ""))


def extension(app: AsyncApp, rt: Runtime) -> None:
    """Register the agents' listeners (an ``Extension`` for ``SlackService``)."""
    agents = Agents(rt)

    def later(handler: Any) -> Any:
        async def listener(ack: AsyncAck, body: Body) -> None:
            await ack()
            rt.spawn(handler(body))
        return listener

    async def options(ack: AsyncAck, body: Body) -> None:
        await ack(options=modal.intent_options(rt.ctx.kb, str(body.get("value") or "")))

    app.shortcut(modal.SHORTCUT)(later(agents.shortcut))
    app.options(modal.INTENT_ACTION)(options)
    app.view(modal.CALLBACK)(agents.submit)
    app.action(blocks.HANDOFF_RIGHT)(later(agents.right_button))
    app.action(blocks.HANDOFF_CORRECT)(later(agents.correct_button))
    app.action(review.LABEL)(later(agents.label_button))
