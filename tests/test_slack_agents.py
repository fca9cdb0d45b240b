"""Agents over real HTTP: "Flag wrong answer" → modal → intent search → submission → correction row and
an ephemeral confirmation; validation inside the modal; non-agents refused; handoff buttons; the queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fake_slack import (
    block_actions_body,
    block_suggestion_body,
    dm_event,
    event_body,
    message_shortcut_body,
    new_ts,
    post_event,
    view_submission_body,
    wait_until,
)
from slack_env import AGENT, AGENTS_CHANNEL, CUSTOMER, GROUP_AGENT, Env, running

from bot import messages
from bot.slack import agents, blocks, modal, review
from bot.store import NEW_TOPIC, Store


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Env]:
    with running(tmp_path_factory.mktemp("slack-agents"), tiny_model) as env:
        yield env


def values(intent: str | None = None, sentiment: str | None = None, note: str | None = None) -> dict:
    def chosen(value: str | None) -> dict:
        return {"selected_option": {"value": value, "text": {"type": "plain_text", "text": value}} if value else None}

    return {modal.INTENT_BLOCK: {modal.INTENT_ACTION: {"type": "external_select", **chosen(intent)}},
            modal.SENTIMENT_BLOCK: {modal.SENTIMENT_ACTION: {"type": "static_select", **chosen(sentiment)}},
            modal.NOTE_BLOCK: {modal.NOTE_ACTION: {"type": "plain_text_input", "value": note}}}


def test_flag_wrong_answer_end_to_end(env: Env) -> None:
    event, message, message_id = env.ask("where is my order", "D0FLAG")
    opened = len(env.fake.of("views.open"))
    hook = env.fake.response_url("shortcut")
    shortcut = message_shortcut_body(user=AGENT, channel="D0FLAG", message=message, response_url=hook)
    env.action(shortcut)
    call, view = env.opened_view(opened + 1)
    # Slack opens a modal only for the trigger of the click it answers.
    assert call.params["trigger_id"] == shortcut["trigger_id"] and view["callback_id"] == modal.CALLBACK
    assert modal.Target.load(view["private_metadata"]).message_id == message_id
    assert "where is my order" in json.dumps(view["blocks"])

    # The searchable intent list: by name or description, always with "new topic".
    found = env.action(block_suggestion_body(user=AGENT, view=view, action_id=modal.INTENT_ACTION,
                                             block_id=modal.INTENT_BLOCK, value="Resetting"))
    options = [o["value"] for o in json.loads(found.body)["options"]]
    assert options == ["reset_password", NEW_TOPIC]  # matched on the description
    every = json.loads(env.action(block_suggestion_body(user=AGENT, view=view, action_id=modal.INTENT_ACTION,
                                                         block_id=modal.INTENT_BLOCK, value="")).body)["options"]
    assert [o["value"] for o in every] == ["refund", "reset_password", "track_order", NEW_TOPIC]

    done = env.action(view_submission_body(user=AGENT, view=view, values=values("refund", "negative", "wrong one")))
    assert done.body == ""
    row = wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))[0]
    original = env.rows("SELECT * FROM messages WHERE id = ?", [message_id])[0]
    assert (row["agent"], row["correct_intent"], row["correct_sentiment"], row["note"]) == (
        AGENT, "refund", "negative", "wrong one")
    assert row["predicted_intent"] == original["intent"] and row["model_version"] == original["model_version"]
    ephemeral = env.fake.wait_for("chat.postEphemeral", channel="D0FLAG", user=AGENT)[-1]
    assert ephemeral.params["thread_ts"] == event["ts"]
    assert ephemeral.params["text"] == messages.CORRECTED.format(message_id=message_id, intent="refund")

    # Submitting again updates the same row.
    env.action(view_submission_body(user=AGENT, view=view, values=values(NEW_TOPIC)))
    env.fake.wait_for("chat.postEphemeral", 2, channel="D0FLAG", user=AGENT)
    rows = env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
    assert len(rows) == 1 and rows[0]["correct_intent"] == NEW_TOPIC and rows[0]["id"] == row["id"]


def test_modal_errors_without_an_intent_or_sentiment(env: Env) -> None:
    _, message, message_id = env.ask("reset my password", "D0EMPTY")
    opened = len(env.fake.of("views.open"))
    env.action(message_shortcut_body(user=GROUP_AGENT, channel="D0EMPTY", message=message,
                                     response_url=env.fake.response_url()))
    _, view = env.opened_view(opened + 1)  # GROUP_AGENT is an agent through the user group
    lookups = len(env.fake.of("usergroups.users.list"))
    assert lookups >= 1
    errors = env.errors(env.action(view_submission_body(user=GROUP_AGENT, view=view, values=values())))
    assert errors == {modal.INTENT_BLOCK: messages.FLAG_NEED_INTENT}
    errors = env.errors(env.action(view_submission_body(user=GROUP_AGENT, view=view, values=values("nope"))))
    # The CLI's text (what, then the fix), the intent list shortened so the fix always shows.
    error = errors[modal.INTENT_BLOCK]
    assert error.startswith("'nope' is not an intent") and error.endswith(f"\nFix: {messages.UNKNOWN_INTENT_FIX}")
    assert len(error) <= blocks.MODAL_ERROR_MAX
    assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
    # A sentiment alone is a valid correction.
    assert env.action(view_submission_body(user=GROUP_AGENT, view=view, values=values(None, "positive"))).body == ""
    # The membership read for the shortcut served the three submissions too (cached 30 s).
    assert len(env.fake.of("usergroups.users.list")) == lookups
    row = wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))[0]
    assert row["correct_intent"] is None and row["correct_sentiment"] == "positive"


def test_non_agent_is_refused_and_nothing_is_stored(env: Env) -> None:
    _, message, message_id = env.ask("track my parcel", "D0NOPE")
    opened = len(env.fake.of("views.open"))
    env.action(message_shortcut_body(user=CUSTOMER, channel="D0NOPE", message=message,
                                     response_url=env.fake.response_url()))
    refusal = env.fake.wait_for("chat.postEphemeral", channel="D0NOPE", user=CUSTOMER)[-1]
    assert refusal.params["text"] == messages.AGENT_ONLY
    assert len(env.fake.of("views.open")) == opened
    # An agent flagging a message csbot never saw is told so, politely.
    stranger = {**message, "ts": "1600000000.000001", "thread_ts": "1600000000.000001"}
    env.action(message_shortcut_body(user=AGENT, channel="D0NOPE", message=stranger,
                                     response_url=env.fake.response_url()))
    told = env.fake.wait_for("chat.postEphemeral", channel="D0NOPE", user=AGENT)[-1]
    assert told.params["text"] == messages.FLAG_NOT_OURS and len(env.fake.of("views.open")) == opened
    # Even a forged submission stores nothing.
    view = {"id": "V0FORGED", "callback_id": modal.CALLBACK, "type": "modal",
            "private_metadata": modal.Target(message_id, "D0NOPE").dump(), "blocks": []}
    errors = env.errors(env.action(view_submission_body(user=CUSTOMER, view=view, values=values("refund"))))
    assert errors[modal.INTENT_BLOCK] == messages.AGENT_ONLY
    assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])


def test_where_the_bot_is_not_a_member_the_shortcut_answers_through_its_response_url(env: Env) -> None:
    # Message shortcuts work in any conversation, a DM between two people among them: there the bot's ephemeral
    # fails (channel_not_found), and only the payload's response URL reaches the agent, or the refused non-agent.
    env.fake.not_a_member.add("D0TWOPEOPLE")
    for user, text in ((AGENT, messages.FLAG_NOT_OURS), (CUSTOMER, messages.AGENT_ONLY)):
        hook = env.fake.response_url("shortcut")
        message = {"type": "message", "user": "U0SOMEONE", "ts": new_ts(), "text": "hello"}
        env.action(message_shortcut_body(user=user, channel="D0TWOPEOPLE", message=message, response_url=hook))
        said = env.fake.wait_for("response_url", url=hook)[-1]
        assert said.params["text"] == text and said.params.get("response_type") == "ephemeral"


def test_a_busy_database_is_shown_in_the_modal_within_slacks_3_seconds(env: Env) -> None:
    _, message, message_id = env.ask("reset my password", "D0BUSYMODAL")
    opened = len(env.fake.of("views.open"))
    env.action(message_shortcut_body(user=AGENT, channel="D0BUSYMODAL", message=message,
                                     response_url=env.fake.response_url()))
    _, view = env.opened_view(opened + 1)
    up = next(e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
              if e["action_id"] == blocks.UP)
    holder = Store(env.ctx.settings.db_path)  # another process holds the write lock (a purge, a backup)
    holder.db.execute("BEGIN IMMEDIATE")
    try:
        # Four 👍 clicks fill the runtime's 4-thread pool, each write waiting out the 10 s busy timeout...
        for n in range(4):
            env.action(block_actions_body(user=f"UVOTER{n}", channel="D0BUSYMODAL", message=message,
                                          action_id=blocks.UP, value=up["value"]))
        time.sleep(0.2)
        started = time.monotonic()  # ...and the submission's answer still comes within Slack's 3 s.
        response = env.action(view_submission_body(user=AGENT, view=view, values=values("refund")))
        took = time.monotonic() - started
    finally:
        holder.db.execute("ROLLBACK")
        holder.close()
    busy = messages.DB_BUSY.format(path=env.ctx.settings.db_path, seconds=agents.MODAL_BUSY_TIMEOUT_MS / 1000)
    assert env.errors(response)[modal.INTENT_BLOCK].startswith(busy[:60]) and took < 3.0, took
    assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
    env.action(view_submission_body(user=AGENT, view=view, values=values("refund")))  # once the lock is gone
    assert wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))


def test_a_slow_usergroup_lookup_is_answered_within_slacks_3_seconds(tmp_path: Path, tiny_model: Path) -> None:
    with running(tmp_path, tiny_model) as env:  # its own server, so nobody's membership is cached yet
        _, _, message_id = env.ask("reset my password", "D0SLOWGROUP")
        view = {"id": "V0SLOWGROUP", "callback_id": modal.CALLBACK, "type": "modal",
                "private_metadata": modal.Target(message_id, "D0SLOWGROUP").dump(), "blocks": []}
        submission = view_submission_body(user=GROUP_AGENT, view=view, values=values("refund"))
        env.fake.delay_next("usergroups.users.list", 2.5)
        started = time.monotonic()
        response = env.action(submission)
        took = time.monotonic() - started
        # Without the bound the ack would wait 2.5 s for Slack, plus the database, and miss Slack's 3 s.
        assert env.errors(response) == {modal.INTENT_BLOCK: messages.AGENT_CHECK_SLOW} and took < 2.0, took
        assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
        # The lookup went on in the background; once it is in, the same submission goes through.
        wait_until(lambda: env.action(submission).body == "", what="the submission after Slack answered")
        assert wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))
        assert len(env.fake.of("usergroups.users.list")) == 1  # every attempt shared the one lookup


def test_a_slow_usergroup_lookup_does_not_let_the_modals_trigger_expire(tmp_path: Path, tiny_model: Path) -> None:
    with running(tmp_path, tiny_model) as env:
        _, message, _ = env.ask("reset my password", "D0SLOWOPEN")
        env.fake.delay_next("usergroups.users.list", 3.5)
        clicked = time.perf_counter()
        env.action(message_shortcut_body(user=GROUP_AGENT, channel="D0SLOWOPEN", message=message,
                                         response_url=env.fake.response_url()))
        call, view = env.opened_view(1)
        assert call.at - clicked < 2.0, call.at - clicked  # a trigger_id is good for 3 s
        assert view["callback_id"] == modal.CALLBACK


def test_a_slow_usergroup_lookup_does_not_hold_up_other_customers(tmp_path: Path, tiny_model: Path) -> None:
    with running(tmp_path, tiny_model) as env:
        first, _, _ = env.ask("where is my order", "D0SLOWA")
        env.fake.delay_next("usergroups.users.list", 4.0)
        # A reply in a thread asks who the group's agents are (an agent's reply is not a customer's)...
        assert post_event(env.url, event_body(dm_event("any news?", channel="D0SLOWA",
                                                       thread_ts=first["ts"]))).status == 200
        env.fake.wait_for("usergroups.users.list")
        started = time.monotonic()
        env.ask("reset my password", "D0SLOWB")  # ...and another customer's question must not wait 4 s for it.
        took = time.monotonic() - started
        assert took < 2.0, took
        assert wait_until(lambda: env.fake.of("chat.postMessage", channel="D0SLOWA", thread_ts=first["ts"])[1:])


def test_a_failing_usergroup_lookup_is_not_repeated_for_every_reply(tmp_path: Path, tiny_model: Path) -> None:
    with running(tmp_path, tiny_model) as env:
        env.fake.usergroups.clear()  # a mistyped group id: Slack answers no_such_subteam
        first, _, _ = env.ask("where is my order", "D0TYPO")
        for n in range(3):
            assert post_event(env.url, event_body(dm_event(f"still waiting {n}", channel="D0TYPO",
                                                           thread_ts=first["ts"]))).status == 200
            env.fake.wait_for("chat.postMessage", 2 + n, channel="D0TYPO")
        assert len(env.fake.of("usergroups.users.list")) == 1  # the failure is remembered for 30 s too


def test_handoff_post_buttons(env: Env) -> None:
    before = len(env.fake.of("chat.postMessage", channel=AGENTS_CHANNEL))
    _, _, message_id = env.ask("something odd with my thing", "D0HANDBTN", mode="handoff")
    post = env.fake.wait_for("chat.postMessage", before + 1, channel=AGENTS_CHANNEL)[-1]
    actions = next(b for b in post.params["blocks"] if b.get("block_id") == blocks.HANDOFF_BLOCK)
    assert [e["action_id"] for e in actions["elements"]] == [blocks.HANDOFF_RIGHT, blocks.HANDOFF_CORRECT]
    assert [e["text"]["text"] for e in actions["elements"]] == [messages.BUTTON_ANSWER_RIGHT,
                                                                 messages.BUTTON_CORRECT_INTENT]
    posted = {"type": "message", "ts": "1700000000.000100", "text": post.params["text"],
              "blocks": post.params["blocks"]}
    guessed = env.rows("SELECT intent FROM messages WHERE id = ?", [message_id])[0]["intent"]
    env.action(block_actions_body(user=AGENT, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_RIGHT, value=str(message_id)))
    row = wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))[0]
    assert row["correct_intent"] == guessed == row["predicted_intent"]
    update = env.fake.wait_for("chat.update", channel=AGENTS_CHANNEL, ts=posted["ts"])[-1]
    assert messages.HANDOFF_CONFIRMED.format(user=AGENT, intent=guessed) in json.dumps(update.params["blocks"])
    assert not [b for b in update.params["blocks"] if b["type"] == "actions"]
    # "Correct intent…" opens the same modal, which then updates the same correction.
    opened = len(env.fake.of("views.open"))
    env.action(block_actions_body(user=AGENT, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_CORRECT, value=str(message_id)))
    _, view = env.opened_view(opened + 1)
    assert view["callback_id"] == modal.CALLBACK
    env.action(view_submission_body(user=AGENT, view=view, values=values("refund")))
    env.fake.wait_for("chat.postEphemeral", channel=AGENTS_CHANNEL, user=AGENT, thread_ts=posted["ts"])
    rows = env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
    assert len(rows) == 1 and rows[0]["correct_intent"] == "refund"


def test_a_guess_the_knowledge_base_lost_gets_no_answer_was_right(env: Env) -> None:
    """A guess that is no longer an intent of the knowledge base cannot be confirmed: the next retrain would drop it
    as an unknown intent, and the message would have left the review queue with its label lost."""
    before = len(env.fake.of("chat.postMessage", channel=AGENTS_CHANNEL))
    _, _, first = env.ask("my widget squeaks at night", "D0HANDGONE1", mode="handoff")
    old_post = env.fake.wait_for("chat.postMessage", before + 1, channel=AGENTS_CHANNEL)[-1]
    guessed = env.rows("SELECT intent FROM messages WHERE id = ?", [first])[0]["intent"]
    kb_path, original = env.ctx.settings.kb_path, env.ctx.settings.kb_path.read_text(encoding="utf-8")
    edited = yaml.safe_load(original)
    edited["intents"] = [entry for entry in edited["intents"] if entry["name"] != guessed]
    kb_path.write_text(yaml.safe_dump(edited, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        env.use("answer")  # a swap reloads the knowledge base
        assert guessed not in env.ctx.kb.intents
        _, _, second = env.ask("my widget squeaks at night", "D0HANDGONE2")  # same words, same guess: no answer
        assert env.rows("SELECT reason FROM messages WHERE id = ?", [second])[0]["reason"].split(":")[0] == "no_answer"
        post = env.fake.wait_for("chat.postMessage", before + 2, channel=AGENTS_CHANNEL)[-1]
        actions = next(b for b in post.params["blocks"] if b.get("block_id") == blocks.HANDOFF_BLOCK)
        assert [e["action_id"] for e in actions["elements"]] == [blocks.HANDOFF_CORRECT]
        # The post from before the edit still shows the button: a click is refused and nothing is stored.
        posted = {"type": "message", "ts": "1700000000.000300", "text": old_post.params["text"],
                  "blocks": old_post.params["blocks"]}
        env.action(block_actions_body(user=AGENT, channel=AGENTS_CHANNEL, message=posted,
                                      action_id=blocks.HANDOFF_RIGHT, value=str(first)))
        refusal = env.fake.wait_for("chat.postEphemeral", channel=AGENTS_CHANNEL, user=AGENT,
                                    thread_ts=posted["ts"])[-1]
        assert messages.UNKNOWN_INTENT.split("'{intent}'")[0] + f"'{guessed}'" in refusal.params["text"]
        assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [first])
    finally:  # the app is shared by this module's tests: the file back, and a swap to reload it
        kb_path.write_text(original, encoding="utf-8")
        env.use("clarify")
        env.use("answer")
    assert guessed in env.ctx.kb.intents


def test_a_correction_closes_the_handoff_post_and_a_later_right_click_keeps_it(env: Env) -> None:
    """Agent A corrects through the modal; agent B's "Answer was right" on the old buttons must not undo it."""
    before = len(env.fake.of("chat.postMessage", channel=AGENTS_CHANNEL))
    _, _, message_id = env.ask("my gizmo is acting weird", "D0HANDFIX", mode="handoff")
    post = env.fake.wait_for("chat.postMessage", before + 1, channel=AGENTS_CHANNEL)[-1]
    assert post.response is not None
    posted = {"type": "message", "ts": post.response["ts"], "text": post.params["text"],
              "blocks": post.params["blocks"]}
    guessed = env.rows("SELECT intent FROM messages WHERE id = ?", [message_id])[0]["intent"]
    right_intent = next(i for i in ("refund", "track_order") if i != guessed)

    opened = len(env.fake.of("views.open"))
    env.action(block_actions_body(user=AGENT, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_CORRECT, value=str(message_id)))
    _, view = env.opened_view(opened + 1)
    env.action(view_submission_body(user=AGENT, view=view, values=values(right_intent)))
    update = env.fake.wait_for("chat.update", channel=AGENTS_CHANNEL, ts=posted["ts"])[-1]
    assert messages.HANDOFF_CORRECTED.format(user=AGENT, intent=right_intent) in json.dumps(update.params["blocks"])
    assert not [b for b in update.params["blocks"] if b["type"] == "actions"]
    assert [b for b in update.params["blocks"] if b["type"] == "section"] == \
        [b for b in posted["blocks"] if b["type"] == "section"]  # the customer's words and the guess stay

    env.action(block_actions_body(user=GROUP_AGENT, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_RIGHT, value=str(message_id)))
    refusal = env.fake.wait_for("chat.postEphemeral", channel=AGENTS_CHANNEL, user=GROUP_AGENT)[-1]
    assert messages.ALREADY_CORRECTED.format(agent=AGENT, intent=right_intent) in refusal.params["text"]
    rows = env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])
    assert len(rows) == 1 and rows[0]["correct_intent"] == right_intent and rows[0]["agent"] == AGENT


def test_review_queue_lists_and_labels_an_item(env: Env) -> None:
    _, _, message_id = env.ask("my thing is broken somehow", "D0QUEUE", mode="handoff")
    listing = env.command(AGENT, "review")
    item = next(b for b in listing.params["blocks"] if b.get("accessory", {}).get("value") == str(message_id))
    assert item["accessory"]["action_id"] == review.LABEL and f"#{message_id}" in item["text"]["text"]
    assert listing.params["response_type"] == "ephemeral"
    ids = [int(b["accessory"]["value"]) for b in listing.params["blocks"] if b.get("accessory")]
    assert ids == sorted(ids)  # oldest first
    assert env.command(CUSTOMER, "review").params["text"] == messages.AGENT_ONLY

    opened = len(env.fake.of("views.open"))
    clicked = {"type": "message", "ts": "1700000000.000200", "text": "queue", "blocks": listing.params["blocks"]}
    env.action(block_actions_body(user=AGENT, channel="C0SUPPORT", message=clicked, action_id=review.LABEL,
                                  value=str(message_id)))
    _, view = env.opened_view(opened + 1)
    env.action(view_submission_body(user=AGENT, view=view, values=values("track_order", note="parcel")))
    env.fake.wait_for("chat.postEphemeral", channel="C0SUPPORT", user=AGENT)
    assert message_id not in [i["message_id"] for i in env.ctx.store.review_queue()]
    again = env.command(AGENT, "review")
    assert str(message_id) not in [b.get("accessory", {}).get("value") for b in again.params.get("blocks") or []]
