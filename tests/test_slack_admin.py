"""Admins over real HTTP: every `/csbot` subcommand for an admin and a non-admin, and App Home
for an admin and a customer (with labelling from the Home tab's queue)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fake_slack import (
    block_actions_body,
    event_body,
    post_command,
    post_event,
    slash_command_form,
    view_submission_body,
    wait_until,
)
from slack_env import ADMIN, AGENT, CUSTOMER, Env, running

from bot import admin, learning, messages
from bot.slack import home, modal, review
from bot.store import Store, utcnow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("slack-admin")
    # A base model that does not exist: a started retrain fails in seconds, for real, instead of training MiniLM.
    # Progress is looked at every 0.05 s (10 s by default), so the short failing retrains post their phases.
    with running(root, tiny_model, base_model=str(root / "no-such-base-model"),
                 retrain_progress_seconds=0.05) as env:
        yield env


def test_help_and_unknown_commands(env: Env) -> None:
    assert env.command(CUSTOMER, "help").params["text"] == messages.ADMIN_HELP
    assert env.command(CUSTOMER, "").params["text"] == messages.ADMIN_HELP
    unknown = env.command(ADMIN, "dance").params["text"]
    assert unknown == messages.UNKNOWN_COMMAND.format(command="dance") + "\n" + messages.ADMIN_HELP


@pytest.mark.parametrize("command", ["status", "models", "retrain", "promote v0002", "rollback", "stats 30"])
def test_non_admins_are_refused(env: Env, command: str) -> None:
    active = env.ctx.registry.active()
    text = env.command(AGENT, command).params["text"]
    name = command.split()[0]
    assert text == messages.ADMIN_ONLY.format(command=name, admins=f"<@{ADMIN}>")
    assert env.ctx.registry.active() == active
    with Store(env.ctx.settings.db_path) as store:
        assert not list(store.db.query("SELECT * FROM training_runs"))


def test_status_models_and_stats_for_an_admin(env: Env) -> None:
    env.use("answer")
    status = env.command(ADMIN, "status").params["text"]
    assert status.startswith("*Active model*: v0001") and "*Inference*: CPU (CPUExecutionProvider)" in status
    assert "*Last retrain*: never" in status and "*Next retrain*: " in status and "*Feedback, 7 days*" in status
    settings = env.ctx.settings
    assert status == admin.render_status(settings, provider="CPUExecutionProvider")
    models = env.command(ADMIN, "models").params["text"]
    assert models == admin.render_models(learning.models_list(settings)) and "`v0001` active ← answering now" in models
    # The running scheduler's next firing (what `csbot serve` passes in) wins over the cron arithmetic.
    rt = env.server.service.rt
    assert rt is not None
    rt.next_run = lambda: datetime(2030, 1, 2, 3, 4, tzinfo=timezone.utc)
    try:
        assert "*Next retrain*: 2030-01-02 03:04 · schedule" in env.command(ADMIN, "status").params["text"]
    finally:
        rt.next_run = None
    stats = env.command(ADMIN, "stats 30").params["text"]
    assert stats.startswith("*Last 30 days*") and "answered" in stats


def test_promote_and_rollback(env: Env) -> None:
    env.use("answer")
    promoted = env.command(ADMIN, "promote v0002").params["text"]
    assert promoted == messages.PROMOTED.format(active="v0002", previous="v0001")
    assert env.ctx.registry.active() == "v0002"
    again = env.command(ADMIN, "promote v0002").params["text"]
    assert again.startswith("Error: Version v0002 is already active.")
    assert env.command(ADMIN, "promote").params["text"] == messages.PROMOTE_USAGE
    missing = env.command(ADMIN, "promote v0042").params["text"]
    assert missing.startswith("Error: Model version v0042 does not exist") and "Fix:" in missing
    rolled = env.command(ADMIN, "rollback").params["text"]
    assert rolled == messages.ROLLED_BACK.format(active="v0001", previous="v0002")
    assert env.ctx.registry.active() == "v0001"


def test_retrain_while_another_runs_is_skipped(env: Env) -> None:
    with Store(env.ctx.settings.db_path) as store:  # another replica is training right now
        assert learning.acquire_lock(store, "run:999", pid=os.getpid())
    try:
        text = env.command(ADMIN, "retrain").params["text"]
    finally:
        with Store(env.ctx.settings.db_path) as store:
            learning.release_lock(store, "run:999")
    assert text.startswith("Retraining skipped: a retrain is still going (run:999")
    with Store(env.ctx.settings.db_path) as store:
        runs = list(store.db.query("SELECT * FROM training_runs"))
    assert [(r["status"], r["trigger"]) for r in runs] == [("skipped", "slack")]


def test_retrain_posts_started_then_progress_and_the_result_in_a_thread(env: Env) -> None:
    hook = env.fake.response_url("retrain")
    assert post_command(env.url, slash_command_form(user=ADMIN, channel="C0ADMINS", text="retrain --force",
                                                    response_url=hook)).body == ""
    started = env.fake.wait_for("chat.postMessage", channel="C0ADMINS")[0]
    assert started.params["text"].startswith("Retraining started: run ")
    assert started.params["text"].endswith(messages.RETRAIN_THEN_SLACK)
    assert "thread_ts" not in started.params
    ts = wait_until(lambda: [c for c in env.fake.of("chat.postMessage", channel="C0ADMINS")
                             if c.params.get("thread_ts") and "*failed*" in c.params["text"]], timeout=60,
                    what="the retrain report")[0]
    report = ts.params["text"]
    assert report.startswith("Retrain run ") and "(slack, " in report and "CSBOT_BASE_MODEL" in report
    in_thread = [c for c in env.fake.of("chat.postMessage", channel="C0ADMINS") if c.params.get("thread_ts")]
    assert all(c.params["thread_ts"] == in_thread[0].params["thread_ts"] for c in in_thread)
    assert in_thread[0].params["text"].startswith("…")  # progress: the run's phases as they change
    with Store(env.ctx.settings.db_path) as store:
        run = list(store.db.query("SELECT * FROM training_runs ORDER BY id DESC LIMIT 1"))[0]
    assert (run["status"], run["trigger"]) == ("failed", "slack")
    assert env.ctx.registry.active() == "v0001"  # a failed run leaves the active model alone
    assert not env.fake.of("response_url", url=hook)  # everything went to the channel


def test_retrain_asked_where_the_bot_is_not_a_member_reports_privately_within_slacks_limit(
        env: Env) -> None:
    """A response URL takes 5 messages in 30 minutes: "started" and the report, never the phases."""
    env.fake.not_a_member.add("C0OUTSIDE")
    hook = env.fake.response_url("retrain-outside")
    assert post_command(env.url, slash_command_form(user=ADMIN, channel="C0OUTSIDE", text="retrain --force",
                                                    response_url=hook)).body == ""
    said = wait_until(lambda: [c for c in env.fake.of("response_url", url=hook) if "*failed*" in c.params["text"]],
                      timeout=60, what="the private report")
    texts = [c.params["text"] for c in env.fake.of("response_url", url=hook)]
    assert len(texts) == 2 and texts[0].startswith("Retraining started: run ") and said[0].params["text"] == texts[1]
    assert not [t for t in texts if t.startswith("…")]


def open_home(env: Env, user: str, count: int) -> dict:
    event = {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home",
             "event_ts": "1700000000.000001"}
    assert post_event(env.url, event_body(event)).status == 200
    return env.fake.wait_for("views.publish", count, user_id=user)[count - 1].params["view"]


def test_app_home_for_a_customer(env: Env) -> None:
    view = open_home(env, CUSTOMER, 1)
    text = json.dumps(view)
    assert view["type"] == "home" and "Send me a direct message" in text and "Where is my order" in text
    assert "Active model" not in text and "Review queue" not in text


def test_app_home_for_an_agent_shows_the_queue_but_not_what_status_refuses_them(env: Env) -> None:
    assert env.command(AGENT, "status").params["text"].startswith("Only admins")
    view = open_home(env, AGENT, 1)
    text = json.dumps(view)
    assert messages.HOME_AGENT_INTRO in text and "Review queue" in text
    assert "Active model" not in text and "Last 7 days" not in text and "Inference" not in text


def test_app_home_dashboard_and_labelling_from_it(env: Env) -> None:
    _, _, message_id = env.ask("my gizmo does odd things", "D0HOMEQ", mode="handoff")
    view = open_home(env, ADMIN, 1)
    text = json.dumps(view)
    assert "*Active model*: v0003" in text  # the handoff-mode version the question was asked under
    assert "*Last 7 days*" in text and "Review queue" in text
    queue_block = next(b for b in view["blocks"] if b.get("accessory", {}).get("action_id") == home.OPEN_QUEUE)
    count = len(env.ctx.store.review_queue(limit=200))
    assert messages.HOME_QUEUE.format(count=count) in queue_block["text"]["text"]

    click = block_actions_body(user=ADMIN, channel="D0HOME", message={"ts": "1", "blocks": []},
                               action_id=home.OPEN_QUEUE, value="queue")
    click["container"] = {"type": "view", "view_id": "VHOME"}
    env.action(click)
    listed = env.fake.wait_for("views.publish", 2, user_id=ADMIN)[1].params["view"]
    label = next(b["accessory"] for b in listed["blocks"]
                 if b.get("accessory", {}).get("action_id") == review.LABEL
                 and b["accessory"]["value"] == str(message_id))
    opened = len(env.fake.of("views.open"))
    click = block_actions_body(user=ADMIN, channel="D0HOME", message={"ts": "1", "blocks": []},
                               action_id=review.LABEL, value=label["value"])
    click["container"] = {"type": "view", "view_id": "VHOME"}
    env.action(click)
    _, modal_view = env.opened_view(opened + 1)
    assert modal.Target.load(modal_view["private_metadata"]).source == "home"
    values = {modal.INTENT_BLOCK: {modal.INTENT_ACTION: {"selected_option": {"value": "refund"}}}}
    assert env.action(view_submission_body(user=ADMIN, view=modal_view, values=values)).body == ""
    refreshed = env.fake.wait_for("views.publish", 3, user_id=ADMIN)[2].params["view"]
    assert str(message_id) not in [b.get("accessory", {}).get("value") for b in refreshed["blocks"]]
    row = wait_until(lambda: env.rows("SELECT * FROM corrections WHERE message_id = ?", [message_id]))[0]
    assert (row["correct_intent"], row["agent"]) == ("refund", ADMIN)


def test_a_long_models_list_reaches_slack_whole(env: Env) -> None:
    # Weeks of nightly candidates, most rejected: the list outgrows a notification's 3,000 characters, and its
    # oldest rows (often the active version) must still reach the admin, as `csbot models` prints them.
    rows = [{"version": f"v{n:04d}", "path": f"/nowhere/v{n:04d}", "status": "rejected", "created_at": utcnow(),
             "metrics_json": json.dumps({"accuracy": 0.9, "macro_f1": 0.88}),
             "reason": "gate: eval accuracy 88.1% is below the active model's 90.2% by more than 0.5 points"}
            for n in range(900, 960)]
    with Store(env.ctx.settings.db_path) as store, store.transaction():
        store.db["model_versions"].insert_all(rows)
    try:
        whole = admin.render_models(learning.models_list(env.ctx.settings))
        assert len(whole) > 3000
        reply = env.command(ADMIN, "models").params
        shown = "\n".join(block["text"]["text"] for block in reply["blocks"])
        assert shown == whole and messages.MODELS_ACTIVE in reply["blocks"][-1]["text"]["text"]
        assert len(reply["text"]) <= 3000  # the notification text stays short
    finally:
        with Store(env.ctx.settings.db_path) as store, store.transaction():
            store.db.execute("DELETE FROM model_versions WHERE version >= 'v0900'")


def test_the_review_queue_says_how_long_it_really_is(env: Env) -> None:
    # More items wait than a page shows: `/csbot review`, `csbot review` and App Home give the whole count.
    with Store(env.ctx.settings.db_path) as store, store.transaction():
        for i in range(45):
            conversation = store.get_or_create_conversation("D0BACKLOG", f"2.{i:06d}", "UBACKLOG", "slack")
            store.log_message(conversation, user="UBACKLOG", text=f"odd thing {i}", normalized_text=f"odd thing {i}",
                              decision="handoff", reason="low_confidence: 0.20", intent="refund", confidence=0.2,
                              ts=f"2.{i:06d}")
    total = env.ctx.store.review_count()
    assert total == len(env.ctx.store.review_queue(limit=10_000)) >= 45
    header = messages.REVIEW_HEADER.format(count=total) + messages.REVIEW_SHOWING.format(shown=admin.REVIEW_PAGE)
    assert env.command(AGENT, "review").params["blocks"][0]["text"]["text"] == header
    assert admin.run(env.ctx.settings, "review").text.splitlines()[0] == header  # what `csbot review` prints
    view = open_home(env, AGENT, len(env.fake.of("views.publish", user_id=AGENT)) + 1)
    queue = next(b for b in view["blocks"] if b.get("accessory", {}).get("action_id") == home.OPEN_QUEUE)
    assert queue["text"]["text"] == messages.HOME_QUEUE.format(count=total)
