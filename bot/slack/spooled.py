"""The Slack writes kept in the spool (``bot.spool``) when the database refuses them, and their replay.

Four kinds: a 👍/👎 button vote, a reaction, the Slack ts of a posted answer (without it, reactions
to that answer find nothing), and a customer's message the database refused before it could be claimed (the
customer got the apology; the message is logged later, as a prompt to send it again).
Replays run on the runtime's thread pool: at start, every
``REPLAY_SECONDS``, and after any write that works.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.normalize import normalize
from bot.slack.dedupe import claim_many
from bot.slack.events import MessageJob, ReactionJob
from bot.slack.runtime import Runtime
from bot.spool import Apply, UnknownEntry
from bot.store import Store

log = logging.getLogger(__name__)
VOTE, REACTION, REPLY_TS, MESSAGE = "vote", "reaction", "reply_ts", "message"
REPLAY_SECONDS = 30.0
STORE_UNAVAILABLE = "store_unavailable"  # a key of messages.REASONS


def keep(rt: Runtime, kind: str, **fields: Any) -> bool:
    """Spool a write that failed; False (and an error in the log) if even that failed."""
    try:
        rt.spool.add(kind, **fields)
    except OSError as exc:
        log.error("could not keep a %s for later either (%r): it is lost: %s", kind, exc, fields)
        return False
    rt.metrics.inc("csbot_spooled_writes_total", kind=kind)
    log.warning("kept a %s in %s; it is stored once the database takes writes again", kind, rt.spool.path)
    return True


async def save_reply_ts(rt: Runtime, reply_id: int, channel: str, ts: str) -> None:
    """Store a posted answer's ts, retrying, then keeping it: without it the answer's 👍/👎 find nothing."""
    done, _ = await rt.write(f"the ts of reply {reply_id}", rt.ctx.store.set_reply_ts, reply_id, channel, ts)
    if not done:
        keep(rt, REPLY_TS, reply_id=reply_id, channel=channel, ts=ts)


def keep_message(rt: Runtime, job: MessageJob) -> bool:
    """Spool a message whose claim the database refused (the customer is told to try again)."""
    incoming = job.incoming
    return keep(rt, MESSAGE, event_id=job.event_id, message_key=job.message_key, text=incoming.text,
                user=incoming.user, channel=incoming.channel, thread_ts=incoming.thread_ts, ts=incoming.ts,
                source=incoming.source)


def _store_refused_message(rt: Runtime, entry: dict[str, Any]) -> None:
    """Log a kept message as what the bot did with it: it asked the customer to send it again."""
    store = rt.ctx.store
    with store.transaction():
        claimed = claim_many(store, [str(entry["event_id"]), str(entry["message_key"])])
        if not claimed[1]:
            return  # stored meanwhile: the customer sent it again and Slack delivered it with the same ts
        conversation = store.get_or_create_conversation(entry["channel"], entry["thread_ts"], entry["user"],
                                                        entry["source"])
        text = str(entry["text"])
        store.log_message(conversation, user=entry["user"], text=text,
                          normalized_text=normalize(text, rt.ctx.settings.max_message_chars).text, decision="prompt",
                          reason=STORE_UNAVAILABLE, ts=entry["ts"])


def _superseded(store: Store, reply_id: int, user: str, at: str) -> bool:
    """Whether the person voted on this answer again after the kept vote: the later vote stands."""
    row = store.db.execute("SELECT updated_at FROM feedback WHERE reply_id = ? AND user = ?",
                           [reply_id, user]).fetchone()
    return row is not None and str(row[0]) > at


def make_apply(rt: Runtime, react: Callable[[ReactionJob, int | None], str]) -> Apply:
    """The function that stores one kept write (``react``: the reaction handler's own store step)."""
    store = rt.ctx.store

    def apply(kind: str, entry: dict[str, Any]) -> None:
        if kind == VOTE:
            reply_id, user = int(entry["reply_id"]), str(entry["user"])
            if store.get_reply(reply_id) is None:  # the database was replaced or restored since the vote was kept
                raise UnknownEntry(f"reply {reply_id} is not in the database")
            if not _superseded(store, reply_id, user, str(entry["at"])):
                rt.ctx.bot.rate(reply_id, user, int(entry["rating"]), str(entry["source"]))
        elif kind == REACTION:
            job = ReactionJob(**entry["job"])
            reply = store.find_reply(job.channel, job.ts)
            if reply is not None and _superseded(store, int(reply["id"]), job.user, str(entry["at"])):
                return
            result = react(job, entry.get("still"))
            if result == "not_found":  # no answer has that ts, not even after the kept ts writes before it
                raise UnknownEntry(f"no stored answer is Slack message {job.channel}/{job.ts}")
            log.info("kept reaction %s on %s/%s: %s", job.event_id, job.channel, job.ts, result)
        elif kind == REPLY_TS:
            store.set_reply_ts(int(entry["reply_id"]), str(entry["channel"]), str(entry["ts"]))
        elif kind == MESSAGE:
            _store_refused_message(rt, entry)
        else:
            raise UnknownEntry(f"unknown kind {kind!r}")

    return apply
