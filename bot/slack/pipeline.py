"""From acked message events to replies: claim, classify in batches, post, remember the ts.

Each step is placed so the ack never waits for it:

1. the listener acks and ``submit``s a job (no I/O);
2. a worker thread claims the batch's event ids (and message keys) in one
   transaction, so a retried or doubly delivered event is dropped here, on every
   replica, before anything is posted; replies in a thread that a person has taken
   over (handed off, or an agent writing) are left to the person;
3. the same thread classifies and stores the batch with one ``Bot.handle_many``;
4. the event loop posts the replies (and agents' posts) concurrently, in a task of
   their own, so the next batch is classified while this one is being posted;
5. one more transaction records each reply's ``ts`` so reactions and buttons map back.

Claiming before answering makes delivery at-most-once: a crash between claim and
post loses that reply rather than sending two, which is the better failure in a chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from typing import Any

from bot import messages
from bot.service import Outcome
from bot.slack import blocks, spooled
from bot.slack.batcher import Batcher
from bot.slack.dedupe import claim_many, handed_off, known_thread
from bot.slack.events import MessageJob
from bot.slack.handoff import Handoff, post_handoff
from bot.slack.people import usergroup_members
from bot.slack.runtime import POST_RETRY_SECONDS, Runtime

log = logging.getLogger(__name__)
# How long a batch with a thread reply in it waits for Slack to say who the group's agents are. Past
# it, the last membership read is used (a group agent's reply may then be taken for a customer's).
GROUP_LOOKUP_SECONDS = 0.5
APOLOGISED_REMEMBERED = 10_000  # message keys; Slack retries within the hour


class MessagePipeline:
    """``max_inflight`` bounds concurrent classifications. One is right for a CPU: onnxruntime
    already spreads one batch over every core, and two at once would fight over them while
    the queue behind them could have joined the next, bigger batch."""

    def __init__(self, rt: Runtime, *, max_size: int = 64, max_wait: float = 0.002, max_inflight: int = 1
                 ) -> None:
        self.rt = rt
        self._deliveries: set[asyncio.Task[None]] = set()
        # Messages that got the apology because the claim failed: with the database down, this process is the only
        # one that can tell a retry (or the message's app_mention twin) from a new message. Oldest forgotten first.
        self._apologised: OrderedDict[str, None] = OrderedDict()
        self.batcher: Batcher[MessageJob] = Batcher(self._process, max_size=max_size, max_wait=max_wait,
                                                    max_inflight=max_inflight)

    def start(self) -> None:
        self.batcher.start()

    def submit(self, job: MessageJob) -> None:
        self.batcher.submit(job)

    @property
    def pending(self) -> int:
        return self.batcher.pending + len(self._deliveries)

    async def drain(self, timeout: float = 10.0) -> None:
        await self.batcher.drain(timeout)
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=timeout)

    # --- worker thread -------------------------------------------------------------

    def _claim(self, jobs: Sequence[MessageJob], group_agents: frozenset[str]) -> list[MessageJob]:
        store, metrics = self.rt.ctx.store, self.rt.metrics
        fresh: list[MessageJob] = []
        with store.transaction():
            for job, claimed in zip(jobs, claim_many(store, [j.event_id for j in jobs]), strict=True):
                if not claimed:
                    metrics.inc("csbot_slack_duplicates_total", kind="event_id")
                elif job.needs_known_thread and not known_thread(store, job.incoming.channel,
                                                                 job.incoming.thread_ts or ""):
                    metrics.inc("csbot_slack_ignored_total", reason="unknown_thread")
                elif (reason := self._stay_out(job, group_agents)) is not None:
                    metrics.inc("csbot_slack_ignored_total", reason=reason)
                else:
                    fresh.append(job)
            claimed_messages = claim_many(store, [j.message_key for j in fresh])
        for claimed in claimed_messages:
            if not claimed:
                metrics.inc("csbot_slack_duplicates_total", kind="message")
        return [job for job, claimed in zip(fresh, claimed_messages, strict=True) if claimed]

    def _stay_out(self, job: MessageJob, group_agents: frozenset[str]) -> str | None:
        """Why the bot should not answer a reply in a thread: a person is handling it.

        ``group_agents``: members of CSBOT_AGENT_USERGROUP, read on the event loop (an API call)."""
        incoming = job.incoming
        if not incoming.thread_ts or incoming.thread_ts == incoming.ts:
            return None  # a new question is always answered
        if incoming.user in self.rt.ctx.settings.agents or incoming.user in group_agents:
            # An agent talking to the customer is not a customer, and from now on the thread is theirs.
            self.rt.ctx.store.take_over(incoming.channel, incoming.thread_ts, incoming.user or "")
            return "agent_in_thread"
        if handed_off(self.rt.ctx.store, incoming.channel, incoming.thread_ts):
            return "handed_off"
        return None

    def _classify(self, jobs: Sequence[MessageJob], group_agents: frozenset[str] = frozenset(),
                  ) -> tuple[list[MessageJob], list[Outcome], list[MessageJob]]:
        """(the claimed jobs that were handled, their outcomes, the claimed jobs that failed)."""
        fresh = self._claim(jobs, group_agents)
        if not fresh:
            return [], [], []
        try:
            return fresh, self.rt.ctx.bot.handle_many([job.incoming for job in fresh]), []
        except Exception:
            log.exception("classifying a batch of %d messages failed", len(fresh))
        if len(fresh) == 1:
            return [], [], fresh
        # One bad message must not cost the others their answer: try each on its own. (handle_many writes
        # the batch's rows in one transaction, so a failure leaves none of them stored twice.)
        handled, outcomes, failed = [], [], []
        for job in fresh:
            try:
                outcomes.append(self.rt.ctx.bot.handle(job.incoming))
                handled.append(job)
            except Exception:
                log.exception("classifying message %s failed", job.incoming.ts)
                failed.append(job)
        return handled, outcomes, failed

    # --- event loop ----------------------------------------------------------------

    async def _process(self, jobs: list[MessageJob]) -> None:
        started = time.perf_counter()
        replies = any(job.incoming.thread_ts and job.incoming.thread_ts != job.incoming.ts for job in jobs)
        # Bounded: the batcher handles one batch at a time, so a slow Slack here would hold up every customer.
        members = await usergroup_members(self.rt, within=GROUP_LOOKUP_SECONDS) if replies else None
        group_agents = members or frozenset()
        try:
            fresh, outcomes, failed = await self.rt.in_thread(self._classify, jobs, group_agents)
        except Exception:
            # The claim itself failed (the database is locked, full or gone). The events are acked, so Slack
            # will not send them again: every customer in the batch gets the apology rather than silence.
            log.exception("claiming a batch of %d messages failed", len(jobs))
            # Not to a thread the bot may not be part of, nor to an agent: what the claim would have filtered.
            once = {job.message_key: job for job in jobs if not job.needs_known_thread
                    and job.incoming.user not in self.rt.ctx.settings.agents | group_agents}
            fresh, outcomes, failed = [], [], self._not_yet_apologised(list(once.values()))
            for job in failed:  # and every message is still logged, once the database takes writes again
                spooled.keep_message(self.rt, job)
        metrics = self.rt.metrics
        metrics.observe("csbot_batch_size", len(jobs))
        if failed:
            await asyncio.gather(*(self._apologise(job) for job in failed))
        if not fresh:
            return
        metrics.observe("csbot_classify_seconds", time.perf_counter() - started)
        task = asyncio.get_running_loop().create_task(self._deliver(fresh, outcomes))
        self._deliveries.add(task)
        task.add_done_callback(self._delivered)

    def _not_yet_apologised(self, jobs: list[MessageJob]) -> list[MessageJob]:
        new = [job for job in jobs if job.message_key not in self._apologised]
        for _ in range(len(jobs) - len(new)):
            self.rt.metrics.inc("csbot_slack_duplicates_total", kind="apology")
        for job in new:
            self._apologised[job.message_key] = None
        while len(self._apologised) > APOLOGISED_REMEMBERED:
            self._apologised.popitem(last=False)
        return new

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivering replies failed", exc_info=task.exception())

    async def _deliver(self, fresh: list[MessageJob], outcomes: list[Outcome]) -> None:
        await asyncio.gather(*(self._reply(job, outcome) for job, outcome in zip(fresh, outcomes, strict=True)))

    async def _reply(self, job: MessageJob, outcome: Outcome) -> None:
        metrics, reply, incoming = self.rt.metrics, outcome.reply, job.incoming
        metrics.inc("csbot_messages_total")
        metrics.inc("csbot_decisions_total", decision=outcome.route.decision)
        rendered = blocks.reply_blocks(reply, outcome.reply_id, outcome.message_id)

        async def post_and_save() -> None:
            response = await self.rt.call("chat.postMessage", channel=incoming.channel, thread_ts=incoming.thread_ts,
                                          text=blocks.fallback(reply.text), blocks=rendered, unfurl_links=False,
                                          retry=POST_RETRY_SECONDS)
            if response is None:
                # Slack refused the answer or stayed down (logged): the customer hears that something went wrong
                # instead of nothing. The reply stays stored, without a ts.
                await self._apologise(job)
            elif response.get("ts"):
                # Stored at once, not after the batch's other posts: a 👍 reaction finds its answer by ts.
                saved = outcome.reply_id, str(response.get("channel") or incoming.channel), str(response["ts"])
                await spooled.save_reply_ts(self.rt, *saved)

        calls: list[Awaitable[Any]] = [post_and_save()]
        if blocks.is_handoff(reply.kind):
            prediction = outcome.prediction
            calls.append(post_handoff(self.rt, Handoff(
                channel=incoming.channel, thread_ts=incoming.thread_ts or incoming.ts or "", user=incoming.user,
                text=incoming.text, intent=outcome.route.intent, confidence=outcome.route.confidence,
                sentiment=prediction.sentiment if prediction else None,
                sentiment_score=prediction.sentiment_probs.get("negative") if prediction else None,
                reason=outcome.route.reason, priority=outcome.route.priority, message_id=outcome.message_id)))
        await asyncio.gather(*calls)
        metrics.observe("csbot_reply_seconds", time.perf_counter() - job.received)

    async def _apologise(self, job: MessageJob) -> None:
        await self.rt.call("chat.postMessage", channel=job.incoming.channel, thread_ts=job.incoming.thread_ts,
                           text=messages.SLACK_ERROR)
