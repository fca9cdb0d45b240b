"""Buttons and reactions: ratings, clarify choices and "Talk to a human".

Every handler runs after the ack. Store work happens on the runtime's thread pool;
Slack calls on the event loop. Values on buttons are ids the bot wrote itself, but
they are still checked against the store, because a stale message can outlive its rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
from typing import Any

from bot import messages
from bot.router import ANSWER
from bot.service import Reply
from bot.slack import blocks, spooled
from bot.slack.dedupe import claim_many
from bot.slack.events import ReactionJob, reaction_rating
from bot.slack.handoff import Handoff, post_handoff, withdraw
from bot.slack.people import tell
from bot.slack.runtime import POST_RETRY_SECONDS, Runtime
from bot.store import Row
from models.errors import CsbotError

log = logging.getLogger(__name__)
HAND_OVER = "hand_over"
FAILED = "failed"
NOT_YOURS = "not_yours"  # someone else in the channel clicked the customer's buttons

Body = dict[str, Any]


def _where(body: Body) -> tuple[str, str, str, str]:
    """(user, channel, message ts, thread ts) of the message holding the clicked button."""
    message = body.get("message") or {}
    container = body.get("container") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
    ts = message.get("ts") or container.get("message_ts") or ""
    thread_ts = message.get("thread_ts") or container.get("thread_ts") or ts
    return (body.get("user") or {}).get("id") or "", channel, ts, thread_ts


def _action(body: Body) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return actions[0]


class Actions:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    async def _update(self, body: Body, note: str) -> None:
        """Replace the clicked message's buttons with a context line."""
        _, channel, ts, _ = _where(body)
        message = body.get("message") or {}
        text = message.get("text") or note
        await self.rt.call("chat.update", channel=channel, ts=ts, text=blocks.fallback(text),
                           blocks=blocks.replace_actions(message.get("blocks"), note, text))

    # --- 👍 / 👎 buttons -------------------------------------------------------------

    async def feedback(self, body: Body, rating: int) -> None:
        user, channel, _, thread_ts = _where(body)
        try:
            reply_id = int(_action(body).get("value") or "")
        except ValueError:
            return

        def work() -> tuple[bool, bool]:
            """(the reply exists, the clicker is the customer who asked)."""
            store = self.rt.ctx.store
            reply = store.get_reply(reply_id)
            if reply is None:
                return False, False
            self.rt.ctx.bot.rate(reply_id, user, rating, "button")
            asker = (store.get_message(int(reply["message_id"])) or {}).get("user")
            return True, not asker or asker == user

        done, result = await self.rt.write(f"a {'👍' if rating > 0 else '👎'} from {user} on reply {reply_id}", work)
        if not done or result is None:
            # Kept on disk and stored later, so the customer is thanked; if even that failed, the buttons stay
            # and they are asked to click again.
            kept = spooled.keep(self.rt, spooled.VOTE, reply_id=reply_id, user=user, rating=rating, source="button")
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts,
                       text=messages.FEEDBACK_THANKS if kept else messages.SLACK_ERROR)
            return
        found, by_customer = result
        if not found:
            log.warning("a feedback click named reply %s, which does not exist", reply_id)
            return
        self.rt.metrics.inc("csbot_feedback_total", rating="up" if rating > 0 else "down", source="button")
        if by_customer:
            _, channel, ts, _ = _where(body)
            message = body.get("message") or {}
            note = messages.RATED_UP if rating > 0 else messages.RATED_DOWN
            text = message.get("text") or note
            await self.rt.call("chat.update", channel=channel, ts=ts, text=blocks.fallback(text),
                               blocks=blocks.after_vote(message.get("blocks"), note, text))
        else:  # chat.update changes the message for everyone: a bystander's vote must not take the customer's
            # buttons ("Talk to a human" among them); it is stored as theirs, and thanked privately
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.FEEDBACK_THANKS)

    # --- "Talk to a human" and "Neither" ---------------------------------------------

    async def human_from_reply(self, body: Body) -> None:
        try:
            reply_id = int(_action(body).get("value") or "")
        except ValueError:
            return
        reply = await self.rt.in_thread(self.rt.ctx.store.get_reply, reply_id)
        if reply is not None:
            await self._hand_over(body, int(reply["message_id"]))

    async def human_from_clarify(self, body: Body) -> None:
        try:
            message_id = int(_action(body).get("value") or "")
        except ValueError:
            return
        await self._hand_over(body, message_id, from_clarify=True)

    async def _hand_over(self, body: Body, message_id: int, *, checked: bool = False,
                         from_clarify: bool = False) -> None:
        """Hand the customer's thread to people, once, and only when the customer asked (``checked``: the
        caller already made sure of both, as a clarify click does). ``from_clarify``: "Neither" on a clarify
        question, which answers that question as a pick does, so whichever of the two comes first wins."""
        user, channel, _, thread_ts = _where(body)
        store = self.rt.ctx.store
        text = self.rt.ctx.kb.company.handoff_text

        def claim() -> tuple[Row, int] | str | None:
            with store.transaction():
                message = store.get_message(message_id)
                if message is None:
                    return None
                if not checked and message.get("user") and message["user"] != user:
                    return NOT_YOURS
                if from_clarify and not claim_many(store, [f"clarify:{message_id}"])[0]:
                    self.rt.metrics.inc("csbot_slack_duplicates_total", kind="click")
                    return None  # the customer already picked an intent (its answer has its own human button)
                if not checked and not claim_many(store, [f"handoff:{message_id}"])[0]:
                    self.rt.metrics.inc("csbot_slack_duplicates_total", kind="click")
                    return None  # a double click: the first one handed over
                # Recorded as a handoff reply, so the request shows in the review queue like any handoff.
                return message, store.log_reply(message_id, text=text, kind="handoff", intent=message.get("intent"),
                                                channel=channel)

        try:
            claimed = await self.rt.in_thread(claim)
        except (CsbotError, sqlite3.Error) as exc:  # a locked or full database: the customer must hear of it
            log.warning("handing message %s to a person failed, the customer can click again: %s", message_id, exc)
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.SLACK_ERROR)
            return  # privately: the clicker may not be the customer, and this is not yet known
        if claimed == NOT_YOURS:
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.NOT_YOUR_QUESTION)
            return
        if not isinstance(claimed, tuple):
            return
        message, reply_id = claimed
        if not await post_handoff(self.rt, Handoff(
                channel=channel, thread_ts=thread_ts, user=message.get("user") or user, text=message.get("text") or "",
                intent=message.get("intent"), confidence=message.get("confidence"), sentiment=message.get("sentiment"),
                sentiment_score=message.get("sentiment_score"), reason="asked_for_human", message_id=message_id)):
            # No one was paged (logged): rather than promise a reply, undo the request and keep the buttons, so
            # the customer is told to try again and can.
            claims = ([] if checked else [f"handoff:{message_id}"]) + \
                ([f"clarify:{message_id}"] if checked or from_clarify else [])
            await self.rt.write(f"the withdrawn handoff of message {message_id}", withdraw, store, reply_id, claims)
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.SLACK_ERROR)
            return
        await self.rt.call("chat.postMessage", channel=channel, thread_ts=thread_ts, text=text)
        await self._update(body, messages.HANDOFF_REQUESTED)

    # --- clarify -------------------------------------------------------------------

    async def clarify(self, body: Body) -> None:
        user, channel, _, thread_ts = _where(body)
        action = _action(body)
        try:
            message_id, intent = blocks.parse_clarify_value(action.get("value") or "")
        except (ValueError, KeyError, TypeError):
            return

        def work() -> tuple[int, Reply] | str | None:
            store = self.rt.ctx.store
            # One answer per question: a double click must not post (and label) it twice. The claim
            # and the label are one transaction, so a failed choice leaves the question answerable.
            with store.transaction():
                message = store.get_message(message_id)
                if message is None:
                    return None
                if message.get("user") and message["user"] != user:
                    return NOT_YOURS  # a bystander's pick would become the customer's training label
                if not claim_many(store, [f"clarify:{message_id}"])[0]:
                    self.rt.metrics.inc("csbot_slack_duplicates_total", kind="click")  # a double click
                    return None
                if intent not in self.rt.ctx.kb.intents:
                    return HAND_OVER  # the knowledge base lost that intent since the question was asked
                return self.rt.ctx.bot.choose(message_id, intent, user, channel)

        try:
            chosen = await self.rt.in_thread(work)
        except (CsbotError, sqlite3.Error) as exc:  # e.g. a knowledge-base reload, or a locked database
            log.warning("clarify choice for message %s failed, the customer can click again: %s", message_id, exc)
            chosen = FAILED
        if chosen == FAILED:  # to the customer alone, as for "Talk to a human": the thread may be in a channel
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.SLACK_ERROR)
            return
        if chosen == NOT_YOURS:
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.NOT_YOUR_QUESTION)
            return
        if chosen == HAND_OVER:
            await self._hand_over(body, message_id, checked=True)
            return
        if not isinstance(chosen, tuple):
            return
        reply_id, reply = chosen
        choice = ((action.get("text") or {}).get("text")) or intent
        await self._update(body, messages.CLARIFY_CHOSEN.format(choice=choice))
        posted = await self.rt.call("chat.postMessage", channel=channel, thread_ts=thread_ts,
                                    text=blocks.fallback(reply.text), blocks=blocks.answer_blocks(reply, reply_id),
                                    unfurl_links=False, retry=POST_RETRY_SECONDS)
        if posted is None:  # logged; the choice is stored, so the customer is told rather than left waiting
            await tell(self.rt, user=user, channel=channel, thread_ts=thread_ts, text=messages.SLACK_ERROR)
        elif posted.get("ts"):
            await spooled.save_reply_ts(self.rt, reply_id, channel, str(posted["ts"]))

    # --- reactions -----------------------------------------------------------------

    def react_now(self, job: ReactionJob, still: int | None = None) -> str:
        """Store one reaction. ``still``: for a removal, the rating of the user's other 👍/👎 still on the
        message (👍, then 👎, then 👎 removed leaves a 👍 that must keep counting)."""
        store = self.rt.ctx.store
        reply = store.find_reply(job.channel, job.ts)
        if reply is None:
            return "not_found"  # not claimed: the reply's ts may not be stored yet, so try again
        # The claim and the vote are one transaction: a failed write also undoes the claim, so the retry
        # in ``reaction`` stores the vote instead of finding it a duplicate.
        with store.transaction():
            return self._vote(job, reply, still)

    def _vote(self, job: ReactionJob, reply: Row, still: int | None) -> str:
        store = self.rt.ctx.store
        if not claim_many(store, [job.event_id])[0]:
            return "duplicate"
        if reply["kind"] != ANSWER:
            return "not_an_answer"
        if job.added:
            self.rt.ctx.bot.rate(int(reply["id"]), job.user, job.rating, "reaction")
            return "stored"
        # Removing 👍 withdraws only a 👍 given by reaction, never a later button vote.
        row = store.db.execute("SELECT rating, source FROM feedback WHERE reply_id = ? AND user = ?",
                               [reply["id"], job.user]).fetchone()
        if row is not None and row[0] == job.rating and row[1] == "reaction":
            if still is not None:
                self.rt.ctx.bot.rate(int(reply["id"]), job.user, still, "reaction")
                return "stored"
            store.remove_feedback(int(reply["id"]), job.user)
            return "removed"
        return "unchanged"

    async def _still_reacted(self, job: ReactionJob) -> int | None:
        """The rating of a 👍/👎 that ``job.user`` still has on the message after removing one."""
        if job.added:
            return None
        found = await self.rt.call("reactions.get", channel=job.channel, timestamp=job.ts)
        for reaction in ((found or {}).get("message") or {}).get("reactions") or []:
            rating = reaction_rating(str(reaction.get("name") or ""))
            if rating is not None and rating != job.rating and job.user in (reaction.get("users") or ()):
                return rating
        return None

    async def reaction(self, job: ReactionJob) -> None:
        still = await self._still_reacted(job)
        what = f"a {'👍' if job.rating > 0 else '👎'} from {job.user} on {job.channel}/{job.ts}"
        done, result = await self.rt.write(what, self.react_now, job, still)
        if not done:  # a reaction cannot be made again the way a button can be clicked again: keep it
            spooled.keep(self.rt, spooled.REACTION, job=dataclasses.asdict(job), still=still)
            return
        # A customer can react in the moment between the answer appearing in Slack and its ts being
        # stored (longer when a post in the same batch is rate-limited, or the write of the ts is being
        # retried: rt.write's ~10 s). Look again before giving up.
        for delay in self.rt.reaction_retry if job.on_bot_message else ():
            if result != "not_found":
                break
            await asyncio.sleep(delay)
            done, result = await self.rt.write(what, self.react_now, job, still)
            if not done:
                spooled.keep(self.rt, spooled.REACTION, job=dataclasses.asdict(job), still=still)
                return
        if result == "not_found" and job.on_bot_message:
            if self.rt.spool.has_entries():
                # The answer's ts may be among the writes the database refused: kept after it, the replay
                # stores the vote once the ts is in (and sets it aside if it still matches nothing).
                spooled.keep(self.rt, spooled.REACTION, job=dataclasses.asdict(job), still=still)
                return
            # Usually a 👍 on one of the bot's other posts (a handoff, a report).
            log.info("%s matches no stored answer; not counted", what)
            self.rt.metrics.inc("csbot_feedback_unmatched_total")
        if result == "duplicate":
            self.rt.metrics.inc("csbot_slack_duplicates_total", kind="event_id")
        elif result == "stored":
            self.rt.metrics.inc("csbot_feedback_total", rating="up" if job.rating > 0 else "down",
                                source="reaction")
