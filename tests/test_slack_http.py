"""End to end over real HTTP: signed Slack requests in, a fake Slack Web API out, SQLite checked.

The bot runs in HTTP mode (uvicorn on a loopback port) with the real store, knowledge
base and a trained tiny model. Routing is steered by activating model versions whose
manifests carry different thresholds: real configuration, hot-swapped as in production.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import slack_env
import yaml
from fake_slack import (
    BOT_TOKEN,
    BOT_USER,
    MODE_VERSIONS,
    SIGNING_SECRET,
    TEAM_URL,
    Call,
    FakeSlack,
    block_actions_body,
    dm_event,
    event_body,
    make_data_dir,
    mention_event,
    post_action,
    post_event,
    wait_until,
)

import bot
from bot import messages
from bot.config import load_settings
from bot.context import Context
from bot.slack import blocks
from bot.slack.metrics import HELP
from bot.slack.runtime import REACTION_RETRY_SECONDS, WRITE_RETRY_SECONDS
from bot.slack.server import HttpInThread
from bot.store import Store
from models.registry import Registry

AGENTS, AGENT, GROUP_AGENT = slack_env.AGENTS_CHANNEL, slack_env.AGENT, slack_env.GROUP_AGENT
CLARIFY_FIRST = f"{blocks.CLARIFY_PREFIX}0"  # the first intent a clarify question offers


class Env(slack_env.Env):
    """The shared running bot (tests/slack_env.py) plus helpers for threads and buttons."""

    def send(self, event: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        body = event_body(event)
        response = post_event(self.url, body, **kwargs)
        assert response.status == 200, response
        return body

    def reply_to(self, event: dict[str, Any], count: int = 1) -> list[Call]:
        """The bot's chat.postMessage calls in the thread of ``event``."""
        thread = event.get("thread_ts") or event["ts"]
        return self.fake.wait_for("chat.postMessage", count, channel=event["channel"], thread_ts=thread)

    def agents_post(self, channel: str) -> Call:
        """The handoff post in the agents' channel about a conversation in ``channel``.

        Other tests of this module post there too, so the post is found by its channel, not its order."""
        return wait_until(lambda: [c for c in self.fake.of("chat.postMessage", channel=AGENTS)
                                   if channel in json.dumps(c.params)], what=f"the handoff post for {channel}")[0]

    def posted_message(self, call: Call) -> dict[str, Any]:
        """The message as Slack would hold it (with its ts), once the bot stored the ts."""
        reply = wait_until(lambda: self.rows("SELECT * FROM replies WHERE ts IS NOT NULL AND channel = ? "
                                             "ORDER BY id DESC", [call.params["channel"]]), what="reply ts")
        ts = next(r["ts"] for r in reply if r["text"] and r["text"] in call.params["text"])
        return {"type": "message", "user": BOT_USER, "ts": ts, "thread_ts": call.params.get("thread_ts"),
                "text": call.params["text"], "blocks": call.params.get("blocks", [])}

    def answered(self, text: str, channel: str) -> tuple[str, int]:
        """A customer DM the bot answered: (the answer's ts in Slack, its reply id)."""
        event = dm_event(text, channel=channel)
        self.send(event)
        call = self.reply_to(event)[0]
        return self.posted_message(call)["ts"], int(call.params["blocks"][-1]["elements"][0]["value"])

    def react(self, kind: str, reaction: str, channel: str, ts: str, user: str = "UCUSTOMER1") -> None:
        """A reaction_added / reaction_removed event on the bot's message, with Slack's state to match."""
        users = self.fake.reactions.setdefault((channel, ts), {}).setdefault(reaction, [])
        if kind == "reaction_added":
            users.append(user)
        else:
            users.remove(user)
        self.send({"type": kind, "user": user, "reaction": reaction, "item": {"type": "message", "channel": channel,
                   "ts": ts}, "item_user": BOT_USER, "event_ts": f"{time.time():.6f}"})

    def click(self, user: str, call: Call, action_id: str, value: str | None = None) -> None:
        message = self.posted_message(call)
        button = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                      if e["action_id"] == action_id)
        payload = block_actions_body(user=user, channel=call.params["channel"], message=message,
                                     action_id=action_id, value=value or button["value"],
                                     text=button["text"]["text"])
        assert post_action(self.url, payload).status == 200


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("slack-http")
    data_dir, kb_path = make_data_dir(root, tiny_model)
    with FakeSlack() as fake:
        fake.usergroups[slack_env.USERGROUP] = [GROUP_AGENT]
        settings = load_settings(env_file=None, data_dir=data_dir, kb_path=kb_path, slack_bot_token=BOT_TOKEN,
                                 slack_signing_secret=SIGNING_SECRET, slack_api_url=fake.api_url,
                                 agents_channel=AGENTS, agent_users=AGENT, agent_usergroup=slack_env.USERGROUP,
                                 onnx_provider="cpu", threads=1)
        store = Store(settings.db_path)
        Registry(settings.models_dir, store).activate(MODE_VERSIONS["answer"])
        store.close()
        ctx = Context.open(settings)
        server = HttpInThread(ctx).start()
        try:
            yield Env(fake, ctx, server)
        finally:
            server.stop()
            ctx.store.close()


@pytest.fixture(autouse=True)
def answer_mode(env: Env) -> None:
    env.use("answer")


def test_dm_gets_an_answer_in_a_thread_with_buttons(env: Env) -> None:
    event = dm_event("where is my order")
    env.send(event)
    call = env.reply_to(event)[0]
    assert call.token == BOT_TOKEN
    kinds = [b["type"] for b in call.params["blocks"]]
    assert kinds[0] == "section" and "context" in kinds and kinds[-1] == "actions"
    buttons = call.params["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == [blocks.UP, blocks.DOWN, blocks.HUMAN]
    assert [b["text"]["text"] for b in buttons] == [messages.BUTTON_HELPFUL, messages.BUTTON_NOT_HELPFUL,
                                                    messages.BUTTON_HUMAN]
    message = env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])[0]
    assert message["decision"] == "answer" and message["user"] == "UCUSTOMER1"
    assert env.ctx.kb.intent(message["intent"]).answer.strip() in call.params["text"]  # the FAQ's own answer
    reply = env.rows("SELECT * FROM replies WHERE message_id = ?", [message["id"]])[0]
    assert buttons[0]["value"] == str(reply["id"])
    wait_until(lambda: env.rows("SELECT ts FROM replies WHERE id = ? AND ts IS NOT NULL", [reply["id"]]))
    conversation = env.rows("SELECT * FROM conversations WHERE id = ?", [message["conversation_id"]])[0]
    assert (conversation["channel"], conversation["thread_ts"], conversation["source"]) == (
        "D0CUSTOMER", event["ts"], "slack")


def test_the_first_event_after_a_start_is_acked_without_a_call_to_slack(tmp_path: Path, tiny_model: Path) -> None:
    with slack_env.running(tmp_path, tiny_model) as fresh:
        assert len(fresh.fake.of("auth.test")) == 1  # the start's own check of the token
        fresh.fake.delay_next("auth.test", 2.5)  # were bolt to ask again, before its ack, it would wait for this
        event = dm_event("where is my order", channel="D0FIRST")
        started = time.monotonic()
        assert post_event(fresh.url, event_body(event)).status == 200
        took = time.monotonic() - started
        assert took < 1.0, took
        fresh.fake.wait_for("chat.postMessage", channel="D0FIRST", thread_ts=event["ts"])
        assert len(fresh.fake.of("auth.test")) == 1
        # The Web API calls still carry the bot token.
        assert fresh.fake.of("chat.postMessage", channel="D0FIRST")[0].token == BOT_TOKEN


def test_mention_strips_the_bot_and_replies_in_thread(env: Env) -> None:
    event = mention_event("reset my password")
    env.send(event)
    env.reply_to(event)
    message = env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])[0]
    assert message["normalized_text"] == "reset my password"


def test_thread_follow_ups_continue_the_conversation(env: Env) -> None:
    first = dm_event("where is my order", channel="D0FOLLOW")
    env.send(first)
    env.reply_to(first)
    follow = dm_event("and a refund please", channel="D0FOLLOW", thread_ts=first["ts"])
    env.send(follow)
    env.reply_to(follow, 2)
    rows = env.rows("SELECT conversation_id FROM messages WHERE ts IN (?, ?)", [first["ts"], follow["ts"]])
    assert len(rows) == 2 and rows[0]["conversation_id"] == rows[1]["conversation_id"]
    # In a channel: after a mention, a plain reply in that thread is answered too.
    mention = mention_event("refund my purchase", channel="C0THREADS")
    env.send(mention)
    env.reply_to(mention)
    reply = {**dm_event("still waiting for it", channel="C0THREADS", thread_ts=mention["ts"]),
             "channel_type": "channel"}
    env.send(reply)
    env.reply_to(reply, 2)


def test_feedback_buttons_store_and_change_the_vote(env: Env) -> None:
    event = dm_event("i want a refund", channel="D0FEEDBACK")
    env.send(event)
    call = env.reply_to(event)[0]
    reply_id = int(call.params["blocks"][-1]["elements"][0]["value"])
    env.click("UCUSTOMER1", call, blocks.UP)
    update = env.fake.wait_for("chat.update", channel="D0FEEDBACK")[0]
    # The vote buttons give way to a note; "Talk to a human" stays, for a customer the answer did not help.
    assert [[e["action_id"] for e in b["elements"]] for b in update.params["blocks"] if b["type"] == "actions"] \
        == [[blocks.HUMAN]]
    assert messages.RATED_UP in json.dumps(update.params["blocks"])
    wait_until(lambda: env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]))
    env.click("UCUSTOMER1", call, blocks.DOWN)  # a second click from a stale copy changes the vote
    down = env.fake.wait_for("chat.update", 2, channel="D0FEEDBACK")[1]
    assert messages.RATED_DOWN in json.dumps(down.params["blocks"])
    assert blocks.HUMAN in json.dumps(down.params["blocks"])
    rows = wait_until(lambda: [r for r in env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])
                               if r["rating"] == -1], what="the changed vote")
    assert len(env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])) == 1
    assert (rows[0]["user"], rows[0]["source"]) == ("UCUSTOMER1", "button")


def test_reactions_on_an_answer_are_votes(env: Env) -> None:
    ts, reply_id = env.answered("track my parcel", "D0REACT")
    env.react("reaction_added", "thumbsup", "D0REACT", ts)
    row = wait_until(lambda: env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]))[0]
    assert (row["rating"], row["source"], row["user"]) == (1, "reaction", "UCUSTOMER1")
    env.react("reaction_added", "tada", "D0REACT", ts)
    env.react("reaction_removed", "thumbsup", "D0REACT", ts)
    wait_until(lambda: not env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]),
               what="the vote to be withdrawn")


def test_removing_one_of_two_reactions_keeps_the_other_as_the_vote(env: Env) -> None:
    ts, reply_id = env.answered("track my parcel please", "D0REACT2")

    def vote() -> Any:
        rows = env.rows("SELECT rating FROM feedback WHERE reply_id = ?", [reply_id])
        return rows[0]["rating"] if rows else None

    env.react("reaction_added", "+1", "D0REACT2", ts)
    wait_until(lambda: vote() == 1, what="the 👍")
    env.react("reaction_added", "-1", "D0REACT2", ts)
    wait_until(lambda: vote() == -1, what="the 👎")
    env.react("reaction_removed", "-1", "D0REACT2", ts)  # the 👍 is still on the message: it is the vote again
    wait_until(lambda: vote() == 1, what="the 👍 to count again")
    env.react("reaction_removed", "+1", "D0REACT2", ts)
    wait_until(lambda: vote() is None, what="the vote to be withdrawn")


def test_a_reaction_before_the_answer_ts_is_stored_still_counts(env: Env) -> None:
    # Slack shows the answer as soon as it has it; the bot stores the ts only when Slack's reply arrives.
    event = dm_event("track my parcel", channel="D0EARLY")
    env.fake.delay_next("chat.postMessage", 1.5)
    env.send(event)
    call = env.fake.wait_for("chat.postMessage", channel="D0EARLY")[0]
    ts = wait_until(lambda: call.response, what="the fake's answer")["ts"]
    assert not env.rows("SELECT * FROM replies WHERE ts = ?", [ts]), "the bot has not heard back yet"
    env.react("reaction_added", "thumbsup", "D0EARLY", ts)
    reply_id = int(call.params["blocks"][-1]["elements"][0]["value"])
    row = wait_until(lambda: env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]), what="the vote")[0]
    assert (row["rating"], row["source"]) == (1, "reaction")


def test_a_failed_write_of_the_answer_ts_is_retried_and_the_vote_still_counts(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    # The database refuses to store the ts at first (a real SQLite error from a trigger, as a full disk or a
    # lock held past the busy timeout would raise); without the retry the answer's 👍 would find nothing.
    db = env.ctx.store.db
    db.execute("CREATE TABLE IF NOT EXISTS test_refuse_ts (on_ INTEGER)")
    db.execute("INSERT INTO test_refuse_ts VALUES (1)")
    db.execute("CREATE TRIGGER IF NOT EXISTS test_refuse_ts BEFORE UPDATE OF ts ON replies "
               "WHEN EXISTS (SELECT 1 FROM test_refuse_ts) BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.slack"):
            event = dm_event("track my parcel", channel="D0RETRYTS")
            env.send(event)
            call = env.reply_to(event)[0]
            wait_until(lambda: "retrying in" in caplog.text, what="the failed write to be logged")
            reply_id = int(call.params["blocks"][-1]["elements"][0]["value"])
            assert env.rows("SELECT ts FROM replies WHERE id = ?", [reply_id]) == [{"ts": None}]
            db.execute("DELETE FROM test_refuse_ts")  # the disk has room again
            ts = wait_until(lambda: env.rows("SELECT ts FROM replies WHERE id = ? AND ts IS NOT NULL", [reply_id]),
                            what="the retried write")[0]["ts"]
    finally:
        db.execute("DROP TRIGGER IF EXISTS test_refuse_ts")
        db.execute("DROP TABLE IF EXISTS test_refuse_ts")
    assert ts == call.response["ts"]  # type: ignore[index]
    env.react("reaction_added", "thumbsup", "D0RETRYTS", ts)
    row = wait_until(lambda: env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]), what="the vote")[0]
    assert (row["rating"], row["source"]) == (1, "reaction")
    assert "could not store" not in caplog.text


def test_a_reaction_whose_vote_cannot_be_written_at_first_is_retried_not_lost(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    ts, reply_id = env.answered("track my parcel", "D0RETRYVOTE")
    db = env.ctx.store.db
    db.execute("CREATE TABLE IF NOT EXISTS test_refuse_vote (on_ INTEGER)")
    db.execute("INSERT INTO test_refuse_vote VALUES (1)")
    db.execute("CREATE TRIGGER IF NOT EXISTS test_refuse_vote BEFORE INSERT ON feedback "
               "WHEN EXISTS (SELECT 1 FROM test_refuse_vote) "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    try:
        with caplog.at_level(logging.WARNING, logger="bot.slack"):
            env.react("reaction_added", "thumbsdown", "D0RETRYVOTE", ts)
            wait_until(lambda: "retrying in" in caplog.text, what="the failed vote to be logged")
            assert not env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])
            db.execute("DELETE FROM test_refuse_vote")
            # The failed write also undid the event's claim, so the retry stores the vote.
            row = wait_until(lambda: env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id]),
                             what="the retried vote")[0]
    finally:
        db.execute("DROP TRIGGER IF EXISTS test_refuse_vote")
        db.execute("DROP TABLE IF EXISTS test_refuse_vote")
    assert (row["rating"], row["source"]) == (-1, "reaction")
    assert "could not store" not in caplog.text


def test_a_reaction_the_database_keeps_refusing_is_kept_on_disk_and_stored_later(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    ts, reply_id = env.answered("where is my refund", "D0SPOOL")
    rt = env.server.service.rt
    assert rt is not None
    db = env.ctx.store.db
    db.execute("CREATE TRIGGER IF NOT EXISTS test_refuse_spool BEFORE INSERT ON feedback "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    rt.write_retry = (0.05, 0.05)  # instead of ~10 s
    try:
        with caplog.at_level(logging.WARNING, logger="bot.slack"):
            env.react("reaction_added", "thumbsup", "D0SPOOL", ts)
            # Past rt.write's retries the vote goes to the spool file, not to the log as lost.
            wait_until(lambda: "kept a reaction" in caplog.text, what="the vote kept")
            assert rt.spool.pending() == 1 and "it is lost" not in caplog.text
            assert not env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])
            # A 👍 button on the same answer: kept the same way, and the customer is thanked, not told to retry.
            call = env.fake.of("chat.postMessage", channel="D0SPOOL")[0]
            env.click("UCUSTOMER3", call, blocks.UP)
            told = env.fake.wait_for("chat.postEphemeral", channel="D0SPOOL", user="UCUSTOMER3")[-1]
            assert told.params["text"] == messages.FEEDBACK_THANKS and rt.spool.pending() == 2
    finally:
        db.execute("DROP TRIGGER IF EXISTS test_refuse_spool")
        rt.write_retry = WRITE_RETRY_SECONDS
    # The next write that works (another customer's 👎 on the same answer) is followed by the kept vote.
    env.react("reaction_added", "thumbsdown", "D0SPOOL", ts, user="UCUSTOMER2")
    rows = wait_until(lambda: env.rows("SELECT user, rating, source FROM feedback WHERE reply_id = ? ORDER BY user",
                                       [reply_id])[2:] and not rt.spool.has_entries(), what="all three votes")
    assert env.rows("SELECT user, rating, source FROM feedback WHERE reply_id = ? ORDER BY user", [reply_id]) == [
        {"user": "UCUSTOMER1", "rating": 1, "source": "reaction"},
        {"user": "UCUSTOMER2", "rating": -1, "source": "reaction"},
        {"user": "UCUSTOMER3", "rating": 1, "source": "button"}]
    assert rows


def test_a_reaction_on_an_answer_whose_ts_is_kept_on_disk_is_kept_too(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    # The database refuses the answer's ts past its retries, so the ts waits in the spool; a 👍 then matches no
    # stored answer. It is kept after the ts, and the replay stores both, in that order.
    rt = env.server.service.rt
    assert rt is not None
    db = env.ctx.store.db
    # A real OperationalError, as a full disk or a lock raises: such a write is kept for the next replay (a RAISE
    # would be an IntegrityError, which the replay sets aside as a row the database does not have).
    db.execute("CREATE TRIGGER IF NOT EXISTS test_refuse_ts_long BEFORE UPDATE OF ts ON replies "
               "BEGIN SELECT 1 FROM test_the_disk_is_full; END")
    rt.write_retry, rt.reaction_retry = (0.05, 0.05), (0.05, 0.05)  # instead of ~10 s and ~15 s
    kept = rt.spool.pending()
    try:
        with caplog.at_level(logging.INFO, logger="bot.slack"):
            event = dm_event("where is my order", channel="D0KEPTTS")
            env.send(event)
            call = env.reply_to(event)[0]
            ts = wait_until(lambda: call.response, what="the post")["ts"]
            reply_id = int(call.params["blocks"][-1]["elements"][0]["value"])
            wait_until(lambda: rt.spool.pending() == kept + 1, what="the ts kept")
            env.react("reaction_added", "thumbsup", "D0KEPTTS", ts)
            wait_until(lambda: rt.spool.pending() == kept + 2, what="the reaction kept")
        assert "not counted" not in caplog.text
    finally:
        db.execute("DROP TRIGGER IF EXISTS test_refuse_ts_long")
        rt.write_retry, rt.reaction_retry = WRITE_RETRY_SECONDS, REACTION_RETRY_SECONDS
    rt.spool.replay(rt.spool_apply)  # the disk has room again
    assert env.rows("SELECT ts FROM replies WHERE id = ?", [reply_id]) == [{"ts": ts}]
    rows = env.rows("SELECT user, rating, source FROM feedback WHERE reply_id = ?", [reply_id])
    assert rows == [{"user": "UCUSTOMER1", "rating": 1, "source": "reaction"}]
    assert not rt.spool.has_entries()


def test_a_kept_vote_for_an_answer_the_database_no_longer_has_is_set_aside(env: Env) -> None:
    # After the database was restored from a backup, a vote kept for a newer answer has nothing to attach to: it
    # goes to the rejected file, and the votes kept after it are stored.
    from bot.slack.spooled import VOTE

    ts, reply_id = env.answered("where is my parcel", "D0RESTORED")
    rt = env.server.service.rt
    assert rt is not None
    rt.spool.add(VOTE, reply_id=reply_id + 10_000, user="UCUSTOMER1", rating=1, source="button")
    rt.spool.add(VOTE, reply_id=reply_id, user="UCUSTOMER1", rating=-1, source="button")
    rt.spool.replay(rt.spool_apply)
    assert not rt.spool.has_entries()
    assert [(r["user"], r["rating"]) for r in env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])] \
        == [("UCUSTOMER1", -1)]
    assert f"reply {reply_id + 10_000} is not in the database" in rt.spool.rejected_path.read_text()


def test_clarify_click_answers_the_chosen_intent(env: Env) -> None:
    env.use("clarify")
    event = dm_event("money for my order", channel="D0CLARIFY")
    env.send(event)
    call = env.reply_to(event)[0]
    actions = call.params["blocks"][-1]["elements"]
    assert [a["action_id"] for a in actions] == ["clarify_0", "clarify_1", blocks.CLARIFY_NONE]
    message_id, intent = blocks.parse_clarify_value(actions[1]["value"])
    env.click("UCUSTOMER1", call, "clarify_1")
    answer = env.reply_to(event, 2)[1]
    assert answer.params["blocks"][-1]["block_id"] == blocks.FEEDBACK_BLOCK
    label = wait_until(lambda: env.rows("SELECT * FROM labels WHERE message_id = ?", [message_id]))[0]
    assert (label["intent"], label["source"], label["user"]) == (intent, "clarify", "UCUSTOMER1")
    update = env.fake.wait_for("chat.update", channel="D0CLARIFY")[0]
    assert messages.CLARIFY_CHOSEN.format(choice=actions[1]["text"]["text"]) in json.dumps(update.params)
    replies = env.rows("SELECT kind, intent FROM replies WHERE message_id = ? ORDER BY id", [message_id])
    assert [r["kind"] for r in replies] == ["clarify", "answer"] and replies[1]["intent"] == intent
    # A second click (a double click, or the other button before the update arrived) changes nothing.
    dropped = env.server.service.metrics.value("csbot_slack_duplicates_total", kind="click")
    env.click("UCUSTOMER1", call, "clarify_0")
    env.click("UCUSTOMER1", call, "clarify_1")
    wait_until(lambda: env.server.service.metrics.value("csbot_slack_duplicates_total", kind="click") == dropped + 2,
               what="both late clicks to be dropped")
    assert len(env.rows("SELECT * FROM replies WHERE message_id = ?", [message_id])) == 2
    assert len(env.rows("SELECT * FROM labels WHERE message_id = ?", [message_id])) == 1
    assert len(env.fake.of("chat.postMessage", channel="D0CLARIFY")) == 2


def test_clarify_click_on_an_intent_the_knowledge_base_lost_hands_over(env: Env) -> None:
    env.use("clarify")
    event = dm_event("money for my order", channel="D0CLARIFYGONE")
    env.send(event)
    call = env.reply_to(event)[0]
    _, intent = blocks.parse_clarify_value(call.params["blocks"][-1]["elements"][1]["value"])
    # A support lead drops the intent from the knowledge base, and a new version is promoted: the running
    # bot reloads the file with the model (Context.refresh_model), while the question is still on screen.
    kb_path, original = env.ctx.settings.kb_path, env.ctx.settings.kb_path.read_text(encoding="utf-8")
    edited = yaml.safe_load(original)
    edited["intents"] = [entry for entry in edited["intents"] if entry["name"] != intent]
    kb_path.write_text(yaml.safe_dump(edited, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        env.use("answer")
        assert intent not in env.ctx.kb.intents
        env.click("UCUSTOMER1", call, "clarify_1")
        assert env.reply_to(event, 2)[1].params["text"] == env.ctx.kb.company.handoff_text
        env.agents_post("D0CLARIFYGONE")
    finally:  # the app is shared by this module's tests: the file back, and a swap to reload it
        kb_path.write_text(original, encoding="utf-8")
        env.use("clarify")
        env.use("answer")
    assert intent in env.ctx.kb.intents


def test_handoff_posts_to_the_agents_channel(env: Env) -> None:
    env.use("handoff")
    event = dm_event("something odd happened with my thing", channel="D0HANDOFF")
    env.send(event)
    customer = env.reply_to(event)[0]
    assert customer.params["text"] == env.ctx.kb.company.handoff_text
    post = env.agents_post("D0HANDOFF")
    text = json.dumps(post.params["blocks"])
    assert "something odd happened with my thing" in text
    assert f"{TEAM_URL}archives/D0HANDOFF/p{event['ts'].replace('.', '')}" in text
    assert "<@UCUSTOMER1>" in text and "Intent guess" in text and "Sentiment" in text
    assert messages.REASONS["low_confidence"] in text
    assert env.fake.of("chat.getPermalink", channel="D0HANDOFF", message_ts=event["ts"])
    # From now on a person handles the thread: neither the agent's words nor the customer's get a bot reply.
    metrics = env.server.service.metrics
    env.use("answer")
    env.send(dm_event("hi, I'm Sam from support", channel="D0HANDOFF", user=AGENT, thread_ts=event["ts"]))
    env.send(dm_event("thanks, where is my order", channel="D0HANDOFF", thread_ts=event["ts"]))
    wait_until(lambda: metrics.value("csbot_slack_ignored_total", reason="agent_in_thread") == 1
               and metrics.value("csbot_slack_ignored_total", reason="handed_off") == 1, what="both ignored")
    assert len(env.fake.of("chat.postMessage", channel="D0HANDOFF")) == 1


def test_a_customers_mentions_are_quoted_to_the_agents_without_paging_anyone(env: Env) -> None:
    env.use("handoff")
    event = dm_event("<!channel> <!subteam^S0AGENTS|@support> <@U0BOSS> where is my refund?? <https://x.io|proof>",
                     channel="D0PING")
    env.send(event)
    post = env.agents_post("D0PING")
    sent = json.dumps(post.params["blocks"]) + post.params["text"]
    assert "<!channel>" not in sent and "<!subteam" not in sent and "<@U0BOSS>" not in sent
    assert "@channel @support @U0BOSS where is my refund?? <https://x.io|proof>" in sent
    assert "<@UCUSTOMER1>" in sent  # the bot's own field naming the customer still links to them
    env.use("answer")


def test_an_agent_from_the_user_group_is_not_answered_as_a_customer_and_takes_the_thread_over(env: Env) -> None:
    env.use("answer")
    event = dm_event("where is my order", channel="D0GROUPIE")
    env.send(event)
    env.reply_to(event)
    metrics = env.server.service.metrics
    before = metrics.value("csbot_slack_ignored_total", reason="agent_in_thread")
    env.send(dm_event("let me transfer you to a human colleague", channel="D0GROUPIE", user=GROUP_AGENT,
                      thread_ts=event["ts"]))
    wait_until(lambda: metrics.value("csbot_slack_ignored_total", reason="agent_in_thread") == before + 1,
               what="the group agent ignored")
    assert len(env.fake.of("chat.postMessage", channel="D0GROUPIE")) == 1  # only the customer's answer
    assert not env.rows("SELECT id FROM messages WHERE user = ?", [GROUP_AGENT])
    # The agent has taken the thread over: the customer's next words are for them, not for the bot.
    taken = env.rows("SELECT taken_over_by FROM conversations WHERE channel = ? AND thread_ts = ?",
                     ["D0GROUPIE", event["ts"]])
    assert taken == [{"taken_over_by": GROUP_AGENT}]
    left = metrics.value("csbot_slack_ignored_total", reason="handed_off")
    env.send(dm_event("ok, thank you, I will wait", channel="D0GROUPIE", thread_ts=event["ts"]))
    wait_until(lambda: metrics.value("csbot_slack_ignored_total", reason="handed_off") == left + 1,
               what="the customer's reply left to the agent")
    assert len(env.fake.of("chat.postMessage", channel="D0GROUPIE")) == 1
    # A new question (a new thread) is the bot's again.
    fresh = dm_event("where is my order", channel="D0GROUPIE")
    env.send(fresh)
    env.reply_to(fresh)


def test_escalation_is_marked_priority(env: Env) -> None:
    env.use("escalate")
    event = dm_event("this is terrible, awful service", channel="D0ESCALATE")
    env.send(event)
    customer = env.reply_to(event)[0]
    # The model is sure of the intent here (this mode's thresholds are 0): its answer comes first, then the escalation.
    intent = env.rows("SELECT intent FROM messages WHERE ts = ?", [event["ts"]])[0]["intent"]
    assert customer.params["text"].endswith("\n\n" + env.ctx.kb.company.escalation_text)
    assert customer.params["text"].startswith(env.ctx.kb.intents[intent].answer.strip())
    post = env.agents_post("D0ESCALATE")
    assert post.params["blocks"][0]["block_id"] == "csbot_priority"
    assert messages.AGENTS_ESCALATE_TITLE in json.dumps(post.params["blocks"])
    row = env.rows("SELECT decision FROM messages WHERE ts = ?", [event["ts"]])[0]
    assert row["decision"] == "escalate"


def test_talk_to_a_human_button(env: Env) -> None:
    event = dm_event("reset my password", channel="D0HUMAN")
    env.send(event)
    call = env.reply_to(event)[0]
    env.click("UCUSTOMER1", call, blocks.HUMAN)
    post = env.agents_post("D0HUMAN")
    assert messages.REASONS["asked_for_human"] in json.dumps(post.params)
    assert env.reply_to(event, 2)[1].params["text"] == env.ctx.kb.company.handoff_text
    # The message itself was answered (its decision stays 'answer'), but the thread is a person's now.
    metrics = env.server.service.metrics
    before = metrics.value("csbot_slack_ignored_total", reason="handed_off")  # the module's other tests count too
    env.send(dm_event("and my other order?", channel="D0HUMAN", thread_ts=event["ts"]))
    wait_until(lambda: metrics.value("csbot_slack_ignored_total", reason="handed_off") == before + 1, what="ignored")
    assert len(env.fake.of("chat.postMessage", channel="D0HUMAN")) == 2


def test_a_handoff_page_slack_fails_once_is_posted_again(env: Env) -> None:
    # A 500 on the agents' post is Slack's trouble, as for an answer: tried again, not lost while the customer is
    # told a person will reply.
    env.use("handoff")
    metrics = env.server.service.metrics
    pages = metrics.value("csbot_handoffs_total", kind="handoff")
    env.fake.fail_next("chat.postMessage", "internal_error", times=2, status=500)  # the customer's post and the page
    event = dm_event("something odd happened", channel="D0PAGE500")
    env.send(event)
    ok = wait_until(lambda: [c for c in env.fake.of("chat.postMessage", channel=AGENTS)
                             if "D0PAGE500" in json.dumps(c.params) and (c.response or {}).get("ok")],
                    what="the page, posted again")
    # The fake records the post before the bot reads its answer and counts it: wait for the count too.
    wait_until(lambda: metrics.value("csbot_handoffs_total", kind="handoff") == pages + 1, what="the page counted")
    assert len(ok) == 1 and metrics.value("csbot_handoffs_total", kind="handoff") == pages + 1
    assert env.reply_to(event)[-1].params["text"] == env.ctx.kb.company.handoff_text


def test_a_handoff_page_slack_refuses_leaves_the_customer_able_to_ask_again(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    event = dm_event("reset my password", channel="D0PAGELOST")
    env.send(event)
    call = env.reply_to(event)[0]
    message_id = env.rows("SELECT id FROM messages WHERE ts = ?", [event["ts"]])[0]["id"]
    metrics = env.server.service.metrics
    lost = metrics.value("csbot_handoff_failures_total", kind="handoff")
    env.fake.fail_next("chat.postMessage", "not_in_channel")  # the page: the bot was removed from the agents' channel
    with caplog.at_level(logging.ERROR, logger="bot.slack"):
        env.click("UCUSTOMER1", call, blocks.HUMAN)
        told = env.fake.wait_for("chat.postEphemeral", channel="D0PAGELOST", user="UCUSTOMER1")[-1]
    assert told.params["text"] == messages.SLACK_ERROR
    assert metrics.value("csbot_handoff_failures_total", kind="handoff") == lost + 1
    assert any(r.levelno == logging.ERROR and AGENTS in r.getMessage() and "no one was paged" in r.getMessage()
               for r in caplog.records)
    # Nobody was paged, so the customer is not told a person will reply, keeps the buttons, and the thread stays
    # the bot's (no handoff reply is left behind to mark it handed off).
    assert len(env.fake.of("chat.postMessage", channel="D0PAGELOST")) == 1
    assert not env.fake.of("chat.update", channel="D0PAGELOST")
    assert [r["kind"] for r in env.rows("SELECT kind FROM replies WHERE message_id = ?", [message_id])] == ["answer"]
    env.click("UCUSTOMER1", call, blocks.HUMAN)  # asking again works
    wait_until(lambda: [c for c in env.fake.of("chat.postMessage", channel=AGENTS)
                        if "D0PAGELOST" in json.dumps(c.params) and (c.response or {}).get("ok")], what="the page")
    assert env.reply_to(event, 2)[1].params["text"] == env.ctx.kb.company.handoff_text


def test_only_the_customer_may_choose_or_ask_for_a_human_and_only_once(env: Env) -> None:
    """In a support channel anyone sees the buttons: a bystander's click must not label or hand over."""
    env.use("clarify")
    event = dm_event("money for my order", channel="C0BYSTAND")
    env.send(event)
    call = env.reply_to(event)[0]
    message_id, _ = blocks.parse_clarify_value(call.params["blocks"][-1]["elements"][0]["value"])
    env.click("UBYSTANDER", call, "clarify_0")
    env.click("UBYSTANDER", call, blocks.CLARIFY_NONE)
    notes = env.fake.wait_for("chat.postEphemeral", 2, channel="C0BYSTAND", user="UBYSTANDER")
    assert all(n.params["text"] == messages.NOT_YOUR_QUESTION for n in notes)
    assert not env.rows("SELECT * FROM labels WHERE message_id = ?", [message_id])
    assert [r["kind"] for r in env.rows("SELECT kind FROM replies WHERE message_id = ?", [message_id])] == ["clarify"]
    assert len(env.fake.of("chat.postMessage", channel="C0BYSTAND")) == 1 and not env.fake.of("chat.update",
                                                                                                channel="C0BYSTAND")
    # The customer double-clicks "Neither, talk to a human": one handoff, one post to the agents.
    dropped = env.server.service.metrics.value("csbot_slack_duplicates_total", kind="click")
    env.click("UCUSTOMER1", call, blocks.CLARIFY_NONE)
    env.click("UCUSTOMER1", call, blocks.CLARIFY_NONE)
    env.agents_post("C0BYSTAND")
    wait_until(lambda: env.server.service.metrics.value("csbot_slack_duplicates_total", kind="click") == dropped + 1,
               what="the second click to be dropped")
    assert len([c for c in env.fake.of("chat.postMessage", channel=AGENTS) if "C0BYSTAND" in json.dumps(c.params)]) == 1
    kinds = [r["kind"] for r in env.rows("SELECT kind FROM replies WHERE message_id = ? ORDER BY id", [message_id])]
    assert kinds == ["clarify", "handoff"]


def test_a_bystanders_vote_is_stored_but_leaves_the_customer_their_buttons(env: Env) -> None:
    """chat.update changes the message for everyone in the channel: a bystander's 👍 must not take away the
    customer's buttons, "Talk to a human" among them."""
    env.use("answer")
    event = dm_event("i want a refund", channel="C0VOTERS")
    env.send(event)
    call = env.reply_to(event)[0]
    reply_id = int(call.params["blocks"][-1]["elements"][0]["value"])
    env.click("UBYSTANDER", call, blocks.UP)
    note = env.fake.wait_for("chat.postEphemeral", channel="C0VOTERS", user="UBYSTANDER")[-1]
    assert note.params["text"] == messages.FEEDBACK_THANKS
    assert not env.fake.of("chat.update", channel="C0VOTERS")
    assert [(r["user"], r["rating"]) for r in env.rows("SELECT * FROM feedback WHERE reply_id = ?", [reply_id])] \
        == [("UBYSTANDER", 1)]
    env.click("UCUSTOMER1", call, blocks.DOWN)
    update = env.fake.wait_for("chat.update", channel="C0VOTERS")[0]
    assert messages.RATED_DOWN in json.dumps(update.params["blocks"])
    votes = env.rows("SELECT user, rating FROM feedback WHERE reply_id = ? ORDER BY id", [reply_id])
    assert [(r["user"], r["rating"]) for r in votes] == [("UBYSTANDER", 1), ("UCUSTOMER1", -1)]


def test_a_clarify_pick_and_neither_on_one_question_answer_it_once(env: Env) -> None:
    """Both buttons answer the same question: whichever comes first wins, in either order (a second device, or
    a click before the chat.update removing the buttons arrived)."""
    env.use("clarify")
    for first, then, channel in ((CLARIFY_FIRST, blocks.CLARIFY_NONE, "C0PICKNONE"),
                                 (blocks.CLARIFY_NONE, CLARIFY_FIRST, "C0NONEPICK")):
        event = dm_event("money for my order", channel=channel)
        env.send(event)
        call = env.reply_to(event)[0]
        message_id, _ = blocks.parse_clarify_value(call.params["blocks"][-1]["elements"][0]["value"])
        def clicks_dropped() -> float:
            return env.server.service.metrics.value("csbot_slack_duplicates_total", kind="click")

        dropped = clicks_dropped()
        env.click("UCUSTOMER1", call, first)
        # The second click comes from the old copy of the question (its buttons still on screen), after the first
        # took effect: two clicks in flight at once would race for the write lock in either order.
        env.fake.wait_for("chat.update", channel=channel)
        env.click("UCUSTOMER1", call, then)
        wait_until(lambda: clicks_dropped() == dropped + 1, what="the second click to be dropped")  # noqa: B023
        kinds = [r["kind"] for r in env.rows("SELECT kind FROM replies WHERE message_id = ? ORDER BY id",
                                             [message_id])]
        labels = env.rows("SELECT * FROM labels WHERE message_id = ?", [message_id])
        if first == CLARIFY_FIRST:
            assert kinds == ["clarify", "answer"] and len(labels) == 1
        else:
            assert kinds == ["clarify", "handoff"] and not labels
    env.agents_post("C0NONEPICK")
    assert not [c for c in env.fake.of("chat.postMessage", channel=AGENTS) if "C0PICKNONE" in json.dumps(c.params)]


def test_a_database_failure_on_a_clarify_choice_is_told_to_the_customer_alone(env: Env) -> None:
    env.use("clarify")
    event = dm_event("money for my order", channel="D0CLARIFYFAIL")
    env.send(event)
    call = env.reply_to(event)[0]
    db = env.ctx.store.db
    db.execute("CREATE TRIGGER test_refuse_label BEFORE INSERT ON labels "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    try:
        env.click("UCUSTOMER1", call, "clarify_0")
        told = env.fake.wait_for("chat.postEphemeral", channel="D0CLARIFYFAIL", user="UCUSTOMER1")[-1]
        assert told.params["text"] == messages.SLACK_ERROR
    finally:
        db.execute("DROP TRIGGER test_refuse_label")
    assert len(env.fake.of("chat.postMessage", channel="D0CLARIFYFAIL")) == 1  # nothing said in public
    env.click("UCUSTOMER1", call, "clarify_0")  # the claim rolled back with the label: a second click works
    assert env.reply_to(event, 2)[1].params["blocks"][-1]["block_id"] == blocks.FEEDBACK_BLOCK


def test_a_database_failure_on_talk_to_a_human_is_told_to_the_customer(env: Env) -> None:
    env.use("answer")
    event = dm_event("track my parcel", channel="D0HUMANFAIL")
    env.send(event)
    call = env.reply_to(event)[0]
    db = env.ctx.store.db
    # A real SQLite error on the handoff's write (as a lock held past the busy timeout or a full disk raises).
    db.execute("CREATE TRIGGER test_refuse_handoff BEFORE INSERT ON replies WHEN NEW.kind = 'handoff' "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    try:
        env.click("UCUSTOMER1", call, blocks.HUMAN)
        told = env.fake.wait_for("chat.postEphemeral", channel="D0HUMANFAIL", user="UCUSTOMER1")[-1]
        assert told.params["text"] == messages.SLACK_ERROR
    finally:
        db.execute("DROP TRIGGER test_refuse_handoff")
    env.click("UCUSTOMER1", call, blocks.HUMAN)  # the claim rolled back with the write: a second click works
    assert env.reply_to(event, 2)[1].params["text"] == env.ctx.kb.company.handoff_text
    env.agents_post("D0HUMANFAIL")


def test_a_retried_event_is_answered_once(env: Env) -> None:
    event = dm_event("refund status", channel="D0RETRY")
    body = event_body(event)
    assert post_event(env.url, body).status == 200
    duplicates = env.server.service.metrics.value("csbot_slack_duplicates_total", kind="event_id")
    retry = post_event(env.url, body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason":
                                                      "http_timeout"})
    assert retry.status == 200
    env.reply_to(event)
    wait_until(lambda: env.server.service.metrics.value("csbot_slack_duplicates_total", kind="event_id")
               > duplicates, what="the retry to be dropped")
    time.sleep(0.05)
    assert len(env.fake.of("chat.postMessage", channel="D0RETRY")) == 1
    assert len(env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])) == 1


def test_rate_limited_post_is_retried(env: Env) -> None:
    env.fake.rate_limit_next("chat.postMessage", retry_after=0)
    event = dm_event("where is my delivery", channel="D0LIMITED")
    env.send(event)
    calls = env.reply_to(event, 2)  # the 429, then the retry slack_sdk's handler made
    assert calls[0].params["text"] == calls[1].params["text"]
    wait_until(lambda: env.rows("SELECT * FROM replies r JOIN messages m ON m.id = r.message_id "
                                "WHERE m.ts = ? AND r.ts IS NOT NULL", [event["ts"]]), what="the reply ts")


def test_an_answer_slack_keeps_refusing_is_tried_again_until_it_is_posted(env: Env) -> None:
    # Four 429s outlast slack_sdk's own three retries, then a 500: each is Slack's trouble, so the answer waits.
    env.fake.rate_limit_next("chat.postMessage", times=4, retry_after=0)
    env.fake.fail_next("chat.postMessage", "internal_error", status=500)
    event = dm_event("where is my delivery", channel="D0OUTAGE")
    env.send(event)
    calls = env.reply_to(event, 6)
    assert len({c.params["text"] for c in calls}) == 1 and messages.SLACK_ERROR not in calls[-1].params["text"]
    wait_until(lambda: env.rows("SELECT * FROM replies r JOIN messages m ON m.id = r.message_id "
                                "WHERE m.ts = ? AND r.ts IS NOT NULL", [event["ts"]]), what="the reply ts")


def test_a_slack_call_that_hangs_gives_up_after_the_clients_timeout(tmp_path: Path, tiny_model: Path) -> None:
    # The client's timeout must hold on the service's shared session too, or a stalled Slack holds an answer for
    # aiohttp's default 300 s. Here 1 s instead of 15: Slack takes 4 s to answer.
    with slack_env.running(tmp_path, tiny_model, service={"api_timeout": 1.0}) as env:
        env.fake.delay_next("chat.postMessage", 4)
        assert post_event(env.url, event_body(dm_event("where is my order", channel="D0HANG"))).status == 200
        first = env.fake.wait_for("chat.postMessage", channel="D0HANG")[0]
        second = env.fake.wait_for("chat.postMessage", 2, timeout=3.5, channel="D0HANG")[1]
        assert second.at - first.at < 3  # the bot gave up on the first post and said something before 4 s


def test_an_answer_slack_may_have_posted_is_not_posted_again(tmp_path: Path, tiny_model: Path) -> None:
    # A timeout or a dropped connection after the request went out may come after Slack created the message:
    # posting again could answer the customer twice. The bot says something went wrong instead.
    with slack_env.running(tmp_path, tiny_model, service={"api_timeout": 1.0}) as env:
        troubles = {"D0TIMEDOUT": lambda: env.fake.delay_next("chat.postMessage", 3),  # answered after the timeout
                    "D0DROPPED": lambda: env.fake.drop_next("chat.postMessage")}  # the connection lost instead
        for channel, trouble in troubles.items():
            trouble()
            assert post_event(env.url, event_body(dm_event("where is my order", channel=channel))).status == 200
            posts = env.fake.wait_for("chat.postMessage", 2, channel=channel)
            time.sleep(1.5)  # past POST_RETRY_SECONDS[0] and slack_sdk's own retry of a lost connection
            posts = env.fake.of("chat.postMessage", channel=channel)
            assert [p.params["text"] == messages.SLACK_ERROR for p in posts] == [False, True], channel


def test_an_answer_slack_rejects_becomes_an_apology_not_silence(env: Env) -> None:
    env.fake.fail_next("chat.postMessage", "invalid_blocks")  # about the request: trying again would not help
    event = dm_event("where is my delivery", channel="D0REJECTED")
    env.send(event)
    answer, apology = env.reply_to(event, 2)
    assert answer.params["blocks"] and apology.params["text"] == messages.SLACK_ERROR
    time.sleep(0.3)
    assert len(env.fake.of("chat.postMessage", channel="D0REJECTED")) == 2
    # The answer stays stored, without a ts: it never reached the customer.
    rows = env.rows("SELECT r.ts FROM replies r JOIN messages m ON m.id = r.message_id WHERE m.ts = ?", [event["ts"]])
    assert rows == [{"ts": None}]


def test_bot_messages_and_edits_are_ignored(env: Env) -> None:
    ignored = [dm_event("I am another bot", channel="D0BOTS", subtype="bot_message", bot_id="B0OTHER"),
               dm_event("my own words", channel="D0BOTS", user=BOT_USER, bot_id="B0FAKEBOT"),
               dm_event("edited", channel="D0BOTS", subtype="message_changed"),
               dm_event("joined", channel="D0BOTS", subtype="channel_join")]
    for event in ignored:
        env.send(event)
    file_share = dm_event("where is my order, see the screenshot", channel="D0BOTS", subtype="file_share",
                          files=[{"id": "F1", "name": "shot.png"}])
    env.send(file_share)
    env.reply_to(file_share)
    time.sleep(0.05)
    assert len(env.fake.of("chat.postMessage", channel="D0BOTS")) == 1
    assert not env.rows("SELECT * FROM messages WHERE ts IN (?, ?, ?, ?)", [e["ts"] for e in ignored])


def test_forged_signature_and_stale_timestamp_are_rejected(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    event = dm_event("where is my order", channel="D0FORGED")
    body = event_body(event)
    with caplog.at_level(logging.WARNING, logger="bot.slack.server"):
        forged = post_event(env.url, body, signature="v0=" + "0" * 64)
        wrong_secret = post_event(env.url, body, secret="not-the-secret")
        stale = post_event(env.url, body, timestamp=int(time.time()) - 10 * 60)
        # A timestamp that is not a Unix time made bolt answer 500 and log a traceback.
        not_a_time = [post_event(env.url, body, timestamp=value).status for value in ("abc", "9" * 400, "-5", "")]
    assert (forged.status, wrong_secret.status, stale.status) == (401, 401, 401)
    assert not_a_time == [401] * 4
    # The operator learns what is wrong and what to check, once (a flood of forgeries is one line a minute).
    refusals = [r.getMessage() for r in caplog.records if r.name == "bot.slack.server"]
    assert refusals == [messages.REFUSED_UNSIGNED.format(count=1)] and "SLACK_SIGNING_SECRET" in refusals[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Bolt decodes and parses the body before it checks the signature: a body that is not UTF-8, not
    # JSON or not a form payload is refused with a 400, not a 500 and a traceback.
    for content_type, data in [("application/json", b"\xff\xfe{}"), ("application/json", b"{not json"),
                               ("application/x-www-form-urlencoded", b"payload=%7Bbad"),
                               ("application/json", b"[1]"), ("application/json", b'"x"'),
                               ("application/x-www-form-urlencoded", b"payload=null")]:
        raw = urllib.request.Request(env.url, data=data, method="POST", headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=" + "0" * 64})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(raw, timeout=10)
        assert refused.value.code == 400, data
        assert refused.value.read().decode() == messages.BAD_REQUEST_BODY
    time.sleep(0.1)
    assert not env.fake.of("chat.postMessage", channel="D0FORGED")
    assert not env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])


def test_a_retry_while_the_database_is_down_gets_no_second_apology(env: Env) -> None:
    # The claim is what drops a retried event; with the claim's table gone, the process must remember on its own
    # that this message already got the apology, or a retry (or the message's app_mention twin) apologises again.
    with env.ctx.store.transaction() as db:
        db.execute("ALTER TABLE slack_events RENAME TO slack_events_away")
    try:
        event = dm_event("where is my order", channel="D0APOLOGY")
        body = event_body(event)
        assert post_event(env.url, body).status == 200
        env.fake.wait_for("chat.postMessage", channel="D0APOLOGY", thread_ts=event["ts"])
        retry = post_event(env.url, body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        assert retry.status == 200
        wait_until(lambda: env.server.service.metrics.value("csbot_slack_duplicates_total", kind="apology") >= 1,
                   what="the retry to be recognised")
        time.sleep(0.1)
    finally:
        with env.ctx.store.transaction() as db:
            db.execute("ALTER TABLE slack_events_away RENAME TO slack_events")
    posts = env.fake.of("chat.postMessage", channel="D0APOLOGY")
    assert [p.params["text"] for p in posts] == [messages.SLACK_ERROR]


def test_a_40000_character_message(env: Env) -> None:
    text = ("where is my order " * 3000)[:40_000]
    event = dm_event(text, channel="D0LONG")
    started = time.perf_counter()
    env.send(event)
    assert time.perf_counter() - started < 2.0
    call = env.reply_to(event)[0]
    assert messages.TRUNCATED_NOTE in call.params["text"] and "send it again on its own" in call.params["text"]
    assert all(len(b["text"]["text"]) <= blocks.SECTION_MAX for b in call.params["blocks"] if b["type"] == "section")
    row = env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])[0]
    assert len(row["text"]) == 40_000
    assert len(row["normalized_text"]) <= env.ctx.settings.max_message_chars


def test_a_database_failure_while_claiming_still_answers_with_the_apology(env: Env) -> None:
    """The events are acked before they are claimed, so Slack never resends them: silence would lose them."""
    env.use("answer")
    with env.ctx.store.transaction() as db:  # a real failure of the claim's table, not a mock
        db.execute("ALTER TABLE slack_events RENAME TO slack_events_away")
    try:
        event = dm_event("where is my order", channel="D0CLAIMFAIL")
        assert post_event(env.url, event_body(event)).status == 200
        apology = env.fake.wait_for("chat.postMessage", channel="D0CLAIMFAIL", thread_ts=event["ts"])[0]
    finally:
        with env.ctx.store.transaction() as db:
            db.execute("ALTER TABLE slack_events_away RENAME TO slack_events")
    assert apology.params["text"] == messages.SLACK_ERROR
    # The message could not be stored then; it was kept, and goes in once the database works: every message is logged.
    rt = env.server.service.rt
    assert rt is not None
    rt.spool.replay(rt.spool_apply)
    row = env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])[0]
    assert (row["text"], row["decision"], row["reason"]) == ("where is my order", "prompt", "store_unavailable")
    assert "store_unavailable" in messages.REASONS
    rt.spool.replay(rt.spool_apply)  # kept once, logged once
    assert len(env.rows("SELECT * FROM messages WHERE ts = ?", [event["ts"]])) == 1


def test_healthz_and_metrics(env: Env) -> None:
    with urllib.request.urlopen(env.server.url + "/healthz", timeout=5) as resp:
        health = json.loads(resp.read())
    assert health["ok"] is True and health["model"] == MODE_VERSIONS["answer"] and health["database"] == "ok"
    # The database moved away under the running bot: a load balancer must stop sending it traffic.
    db_path = env.ctx.settings.db_path
    db_path.rename(db_path.with_name("moved.db"))
    try:
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(env.server.url + "/healthz", timeout=5)
        assert unhealthy.value.code == 503 and json.loads(unhealthy.value.read())["database"] == "missing"
    finally:
        db_path.with_name("moved.db").rename(db_path)
    event = dm_event("where is my order", channel="D0METRICS")
    env.send(event)
    env.reply_to(event)
    # The reply's latency is observed once chat.postMessage has returned, a moment after the fake saw the post.
    wait_until(lambda: "csbot_reply_seconds_count" in env.server.service.metrics.render(), what="reply latency")
    with urllib.request.urlopen(env.server.url + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    assert 'csbot_decisions_total{decision="answer"}' in text
    assert "csbot_messages_total " in text
    assert 'csbot_ack_seconds_bucket{le="+Inf"}' in text
    assert "csbot_reply_seconds_count" in text
    assert "# TYPE csbot_feedback_total counter" in text


def test_every_counted_metric_is_exposed(env: Env) -> None:
    # /metrics renders only the names it documents: a series counted under any other name never reaches Prometheus.
    used = {m.group(1) for path in Path(bot.__file__).parent.rglob("*.py")
            for m in re.finditer(r'metrics\.(?:inc|observe)\(\s*"(\w+)"', path.read_text(encoding="utf-8"))}
    assert len(used) >= 15 and used <= set(HELP), sorted(used - set(HELP))
    env.server.service.metrics.inc("csbot_corrections_total", source="test")
    with urllib.request.urlopen(env.server.url + "/metrics", timeout=5) as resp:
        assert 'csbot_corrections_total{source="test"} 1' in resp.read().decode()
