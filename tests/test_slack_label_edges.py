"""Agents' labels at the edges, over real HTTP: a sentiment given alone, a purged message, credit between two
agents, a Home click by someone who is no longer an agent, a modal's metadata that is not the bot's, and a label
given in a conversation the bot is not in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_slack import block_actions_body, message_shortcut_body, view_submission_body, wait_until
from slack_env import ADMIN, AGENT, AGENTS_CHANNEL, CUSTOMER, GROUP_AGENT, Env, running
from test_slack_agents import values

from bot import messages
from bot.slack import blocks, modal, review


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Env]:
    with running(tmp_path_factory.mktemp("label-edges"), tiny_model) as env:
        yield env


def flag(env: Env, message: dict[str, Any], channel: str, user: str = AGENT) -> dict[str, Any]:
    opened = len(env.fake.of("views.open"))
    env.action(message_shortcut_body(user=user, channel=channel, message=message,
                                     response_url=env.fake.response_url()))
    return env.opened_view(opened + 1)[1]


def handoff_post(env: Env, text: str, channel: str) -> tuple[dict[str, Any], int]:
    before = len(env.fake.of("chat.postMessage", channel=AGENTS_CHANNEL))
    _, _, message_id = env.ask(text, channel, mode="handoff")
    post = env.fake.wait_for("chat.postMessage", before + 1, channel=AGENTS_CHANNEL)[-1]
    return {"type": "message", "ts": post.response["ts"], "text": post.params["text"],
            "blocks": post.params["blocks"]}, message_id


def correct_from_post(env: Env, posted: dict[str, Any], message_id: int) -> dict[str, Any]:
    opened = len(env.fake.of("views.open"))
    env.action(block_actions_body(user=AGENT, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_CORRECT, value=str(message_id)))
    return env.opened_view(opened + 1)[1]


def test_a_sentiment_alone_is_confirmed_as_a_sentiment(env: Env) -> None:
    # It read "Noted: message 1 is really '(sentiment only)'".
    _, message, message_id = env.ask("where is my order", "D0SENTONLY")
    view = flag(env, message, "D0SENTONLY")
    assert env.action(view_submission_body(user=AGENT, view=view, values=values(None, "negative"))).body == ""
    said = env.fake.wait_for("chat.postEphemeral", channel="D0SENTONLY", user=AGENT)[-1].params["text"]
    assert said == messages.CORRECTED_SENTIMENT.format(message_id=message_id, sentiment="negative")


def test_a_sentiment_alone_leaves_the_handoff_post_open(env: Env) -> None:
    # It closed the post with "corrected it: None", and nobody could then give the intent from it.
    posted, message_id = handoff_post(env, "my gadget hums oddly", "D0SENTPOST")
    view = correct_from_post(env, posted, message_id)
    assert env.action(view_submission_body(user=AGENT, view=view, values=values(None, "negative"))).body == ""
    env.fake.wait_for("chat.postEphemeral", channel=AGENTS_CHANNEL, user=AGENT)
    time.sleep(0.3)
    assert not env.fake.of("chat.update", channel=AGENTS_CHANNEL, ts=posted["ts"])


def test_a_purged_message_cannot_be_labelled(env: Env) -> None:
    # The retrain skips a label whose text was purged, while the agent was told "It will be used".
    _, message, message_id = env.ask("where is my order", "D0PURGEDLABEL")
    with env.ctx.store.transaction() as db:
        db.execute("UPDATE messages SET text = '', normalized_text = '', text_purged = 1 WHERE id = ?", [message_id])
    view = flag(env, message, "D0PURGEDLABEL")
    response = json.loads(env.action(view_submission_body(user=AGENT, view=view, values=values("refund"))).body)
    assert response["response_action"] == "errors"
    assert messages.LABEL_PURGED.format(message_id=message_id) in response["errors"][modal.INTENT_BLOCK]
    assert not env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])


def test_a_sentiment_alone_does_not_take_the_credit_for_another_agents_intent(env: Env) -> None:
    posted, message_id = handoff_post(env, "my doohickey is odd", "D0CREDIT")
    view = correct_from_post(env, posted, message_id)
    guessed = env.rows("SELECT intent FROM messages WHERE id = ?", [message_id])[0]["intent"]
    other = next(i for i in ("refund", "track_order") if i != guessed)
    env.action(view_submission_body(user=AGENT, view=view, values=values(other)))
    wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))
    env.action(view_submission_body(user=GROUP_AGENT, view=view, values=values(None, "negative")))
    wait_until(lambda: len(env.rows("SELECT * FROM correction_history WHERE message_id = ?", [message_id])) == 2)
    row = env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id])[0]
    assert (row["agent"], row["correct_intent"], row["correct_sentiment"]) == (AGENT, other, "negative")
    env.action(block_actions_body(user=ADMIN, channel=AGENTS_CHANNEL, message=posted,
                                  action_id=blocks.HANDOFF_RIGHT, value=str(message_id)))
    refusal = env.fake.wait_for("chat.postEphemeral", channel=AGENTS_CHANNEL, user=ADMIN)[-1].params["text"]
    assert messages.ALREADY_CORRECTED.format(agent=AGENT, intent=other) in refusal


def test_a_home_label_click_by_someone_no_longer_an_agent_gets_the_customer_home(env: Env) -> None:
    # A Home click carries no channel and no response URL: the refusal went nowhere, and nothing happened.
    _, _, message_id = env.ask("my sprocket rattles", "D0HOMELABEL", mode="handoff")
    published = len(env.fake.of("views.publish", user_id=CUSTOMER))
    click = block_actions_body(user=CUSTOMER, channel="D0X", message={"ts": "1", "blocks": []},
                               action_id=review.LABEL, value=str(message_id))
    click["container"] = {"type": "view", "view_id": "VHOME"}
    for key in ("channel", "message", "response_url"):
        click.pop(key)
    env.action(click)
    view = env.fake.wait_for("views.publish", published + 1, user_id=CUSTOMER)[-1].params["view"]
    assert "Review queue" not in json.dumps(view) and not env.fake.of("views.open", user=CUSTOMER)


@pytest.mark.parametrize("metadata", ['{"m":1e400}', '{"m":true}', '{"m":0}', '{"m":3,"s":"elsewhere"}',
                                      '{"m":3,"c":["C1"]}', '{"m":3,"r":{"url":"x"}}'])
def test_a_modal_whose_metadata_is_not_the_bots_is_refused_in_the_modal(env: Env, metadata: str) -> None:
    # 1e400 made an OverflowError and a 500; true read as message 1.
    view = {"id": "V0META", "callback_id": modal.CALLBACK, "type": "modal", "private_metadata": metadata,
            "blocks": []}
    response = env.action(view_submission_body(user=AGENT, view=view, values=values("refund")))
    assert response.status == 200
    assert json.loads(response.body)["errors"][modal.INTENT_BLOCK] == messages.FLAG_GONE


def test_a_label_given_where_the_bot_is_not_a_member_is_confirmed_through_the_click(env: Env) -> None:
    # `/csbot review` in a DM between two people: chat.postEphemeral cannot reach it, and the confirmation was lost.
    _, _, message_id = env.ask("my lamp flickers in a strange way", "D0PAIRASK", mode="handoff")
    env.fake.not_a_member.add("D0PAIR")
    listing = env.command(AGENT, "review", channel="D0PAIR")
    clicked = {"type": "message", "ts": "1700000000.000300", "text": "queue", "blocks": listing.params["blocks"]}
    hook = env.fake.response_url("label-in-pair")
    opened = len(env.fake.of("views.open"))
    env.action(block_actions_body(user=AGENT, channel="D0PAIR", message=clicked, action_id=review.LABEL,
                                  value=str(message_id), response_url=hook))
    _, view = env.opened_view(opened + 1)
    assert env.action(view_submission_body(user=AGENT, view=view, values=values("track_order"))).body == ""
    said = env.fake.wait_for("response_url", url=hook)[-1].params
    assert said["text"] == messages.CORRECTED.format(message_id=message_id, intent="track_order")
    assert said["response_type"] == "ephemeral"
