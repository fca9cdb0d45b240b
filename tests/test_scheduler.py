"""The nightly schedule: when it fires (under a frozen clock), skipping when nothing changed or a run
is going, taking the lock, apscheduler really firing, and one whole run through the same code path."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from learning_helpers import (
    KEYWORDS,
    TINY_OVERRIDES,
    build_word_bert,
    correct,
    keyword_kb,
    make_settings,
    set_args,
)

from bot import learning
from bot.scheduler import RetrainScheduler, next_retrain_time, schedule_for_this_process
from bot.store import Store
from models.errors import ConfigError, CsbotError

FROZEN = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


@pytest.fixture()
def settings(tmp_path: Path):  # noqa: ANN201
    kb = keyword_kb(tmp_path / "kb.yaml")
    return make_settings(tmp_path / "data", kb, tmp_path / "no-base", retrain_cron="0 2 * * *",
                         timezone="Europe/Paris")


def mark_up_to_date(settings) -> None:  # noqa: ANN001
    with Store(settings.db_path) as store:
        store.kv_set(learning.WATERMARK_KEY, json.dumps(learning.data_watermark(store, settings.kb_path)))


def runs(settings) -> list[dict]:  # noqa: ANN001
    with Store(settings.db_path) as store:
        return list(store.db.query("SELECT * FROM training_runs ORDER BY id"))


def test_next_run_time_follows_cron_and_time_zone(settings) -> None:  # noqa: ANN001
    expected = datetime(2026, 11, 29, 1, 0, tzinfo=timezone.utc)  # 02:00 in Paris (UTC+1 in winter)
    assert next_retrain_time(settings, FROZEN) == expected
    scheduler = RetrainScheduler(settings, clock=lambda: FROZEN)
    assert scheduler.next_run_time() == expected
    assert learning.status(settings, clock=lambda: FROZEN)["next_run"] == expected.astimezone(
        scheduler.trigger.timezone).isoformat()
    with pytest.raises(ConfigError, match="CSBOT_RETRAIN_CRON"):
        next_retrain_time(settings.model_copy(update={"retrain_cron": "every night"}))
    with pytest.raises(ConfigError, match="CSBOT_TIMEZONE"):
        next_retrain_time(settings.model_copy(update={"timezone": "Mars/Olympus"}))


@pytest.mark.parametrize("tz", ["UTC+3", ":/nonexistent"])
def test_a_local_time_zone_that_cannot_be_read_is_named(tmp_path: Path, tz: str) -> None:
    # With CSBOT_TIMEZONE unset the schedule uses the machine's zone: a POSIX TZ rule was an uncaught traceback in
    # `csbot status`, and an unreadable one blamed CSBOT_RETRAIN_CRON.
    env = {**os.environ, "TZ": tz, "CSBOT_DATA_DIR": str(tmp_path / "var")}
    env.pop("CSBOT_TIMEZONE", None)
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "status"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Error: This machine's time zone cannot be read (" in proc.stderr + proc.stdout
    assert "CSBOT_RETRAIN_CRON" not in proc.stderr + proc.stdout
    assert "Fix: set CSBOT_TIMEZONE to an IANA name" in proc.stderr + proc.stdout


def test_skips_when_nothing_changed_and_when_a_run_holds_the_lock(settings, caplog) -> None:  # noqa: ANN001
    clock = [FROZEN]
    scheduler = RetrainScheduler(settings, clock=lambda: clock[0])
    mark_up_to_date(settings)
    with caplog.at_level(logging.INFO, logger="csbot.learning"):
        result = scheduler.run_job()
    assert result["status"] == "skipped" and "nothing new" in result["reason"]
    assert "skipped: nothing new" in caplog.text
    assert runs(settings)[-1]["status"] == "skipped" and runs(settings)[-1]["trigger"] == "schedule"

    with Store(settings.db_path) as store:  # another replica is training (alive, lock not expired)
        assert learning.acquire_lock(store, "run:999", pid=os.getpid(), clock=lambda: clock[0])
        assert not learning.acquire_lock(store, "run:1000", clock=lambda: clock[0])
    result = scheduler.run_job()
    assert result["status"] == "skipped" and "still going" in result["reason"] and "run:999" in result["reason"]

    clock[0] = FROZEN + learning.LOCK_TTL + timedelta(seconds=1)  # it stopped renewing: the lock expires
    with Store(settings.db_path) as store:
        assert learning.lock_holder(store, lambda: clock[0]) is None
        assert learning.acquire_lock(store, "run:1001", clock=lambda: clock[0])
        assert learning.release_lock(store, "run:1001")

    assert scheduler._busy.acquire()  # a firing that arrives while this process is still running one
    try:
        skipped = scheduler.run_job()
    finally:
        scheduler._busy.release()
    assert (skipped["status"], skipped["reason"]) == ("skipped", "the previous run is still going")
    # Recorded like every other skip, so `status` can say why the night had no run.
    last = runs(settings)[-1]
    assert (last["id"], last["status"], last["trigger"]) == (skipped["id"], "skipped", "schedule")
    assert "the previous run is still going" in last["gate_json"]


def test_apscheduler_fires_the_job(settings) -> None:  # noqa: ANN001
    mark_up_to_date(settings)
    scheduler = RetrainScheduler(settings, misfire_grace_time=120).start()
    try:
        job = scheduler.job
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 120)
        assert scheduler.next_run_time() > datetime.now(timezone.utc)
        scheduler.fire_now()
        deadline = time.monotonic() + 10
        while not runs(settings) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert runs(settings)[0]["status"] == "skipped" and runs(settings)[0]["trigger"] == "schedule"


def test_a_firing_refused_by_apscheduler_while_the_last_one_runs_is_recorded(settings) -> None:  # noqa: ANN001
    # max_instances=1 makes apscheduler drop the second firing before our job sees it; without the listener
    # the night would have no row, and `status` could not say why. The first firing is held inside its first
    # read of the (injected) clock, so it is really still running when the second arrives.
    mark_up_to_date(settings)
    entered, release = threading.Event(), threading.Event()
    calls = [0]

    def clock() -> datetime:
        calls[0] += 1
        if calls[0] == 1:
            entered.set()
            assert release.wait(10)
        return datetime.now(timezone.utc)

    scheduler = RetrainScheduler(settings, clock=clock).start()
    try:
        scheduler.fire_now()
        assert entered.wait(10)
        scheduler.fire_now()  # the first is still inside run_job
        deadline = time.monotonic() + 10
        while not runs(settings) and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = runs(settings)
        release.set()
        deadline = time.monotonic() + 10
        while len(runs(settings)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert [(r["status"], r["trigger"]) for r in refused] == [("skipped", "schedule")]
    assert "the previous run is still going" in refused[0]["gate_json"]
    first = runs(settings)[1]  # the held firing went on and found nothing new
    assert first["status"] == "skipped" and "nothing new" in first["gate_json"]


def test_a_scheduled_run_trains_in_a_child_and_the_bot_swaps_the_model(tmp_path: Path) -> None:
    """The whole path: lock, child process, gate, promotion, Context.refresh_model, report."""
    from bot.context import Context
    from bot.knowledge import load_knowledge_base
    from training.config import TrainConfig
    from training.data import Example, knowledge_base_examples
    from training.pipeline import build_model

    base = build_word_bert(tmp_path / "bert")
    kb = keyword_kb(tmp_path / "kb.yaml")
    settings = make_settings(tmp_path / "data", kb, base)
    overrides = {**TINY_OVERRIDES, "min_steps": 0}
    # The first model learned each keyword as the next intent, so the retrain's candidate beats it for sure
    # and the test always sees the promotion and the swap, not a rejection it would also accept.
    names = list(KEYWORDS)
    shifted = {a: names[(i + 1) % len(names)] for i, a in enumerate(names)}
    wrong = [Example(e.text, shifted[e.intent] if e.intent else None, e.sentiment, source="kb")
             for e in knowledge_base_examples(load_knowledge_base(kb), "train")]
    first = build_model(wrong, TrainConfig(base_model=str(base), **overrides),
                        settings.models_dir / "v0001", version="v0001", progress=False)
    learning.promote(settings, first.version, reason="first model")
    ctx = Context.open(settings)
    with Store(settings.db_path) as store:
        correct(store, "please refund my purchase", "refund")
    reports = []
    scheduler = RetrainScheduler(settings, context=ctx, notify=reports.append, extra_args=tuple(set_args(overrides)))
    result = scheduler.run_job()
    assert result["status"] == "promoted", (result.get("gate"), result.get("log_excerpt"))
    assert reports and reports[0]["id"] == result["id"] and result["trigger"] == "schedule"
    assert Path(result["run_dir"], "train.log").is_file()
    assert ctx.live.current.version == result["version"] == "v0002"  # the bot swapped without a restart
    with Store(settings.db_path) as store:
        assert learning.lock_holder(store) is None
    assert scheduler.run_job()["status"] == "skipped"  # nothing new since
    assert "Retrain run" in learning.report_text(result)


def test_the_report_goes_to_the_admins_channel_with_the_chart(settings, tmp_path: Path) -> None:  # noqa: ANN001
    """Through a real slack_sdk WebClient (the one post_report builds) to the fake Slack Web API over HTTP."""
    from fake_slack import FakeSlack

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    chart = b"\x89PNG" + bytes(range(256)) * 4
    (run_dir / "report.png").write_bytes(chart)
    run = {"id": 7, "trigger": "schedule", "mode": "full", "status": "rejected", "version": "v0003",
           "run_dir": str(run_dir),
           "metrics": {"candidate": {"accuracy": 0.8, "samples": 50}, "active": {"accuracy": 0.85},
                       "corrections": {"total": 4, "right": 4, "share": 1.0},
                       "intents_worse": [{"intent": "refund", "delta_f1": -0.2}]},
           "gate": {"reasons": ["accuracy on the fixed evaluation set is 80.0%, below ..."]}}
    with FakeSlack() as fake:
        slack = {"slack_bot_token": "xoxb-test", "slack_api_url": fake.api_url}
        assert not learning.post_report(settings.model_copy(update=slack), run)  # no admins channel configured
        assert learning.post_report(settings.model_copy(update={**slack, "admins_channel": "C0ADMINS"}), run)
        complete, = fake.wait_for("files.completeUploadExternal")
        assert list(fake.uploads.values()) == [chart]  # the chart's bytes, uploaded whole
        assert not fake.of("chat.postMessage")
    assert complete.params["channel_id"] == "C0ADMINS"
    text = complete.params["initial_comment"]
    assert "*rejected*" in text and "80.0% vs active 85.0% (-5.0%)" in text and "refund (-0.20)" in text
    assert "gate: accuracy on the fixed evaluation set" in text


def test_a_replica_with_the_schedule_off_never_schedules(settings) -> None:  # noqa: ANN001
    off = settings.model_copy(update={"retrain_cron": "off"})
    assert schedule_for_this_process(off) is None and next_retrain_time(off) is None
    info = learning.status(off, clock=lambda: FROZEN)
    assert info["next_run"] is None and "off" in info["schedule"]
    scheduled = schedule_for_this_process(settings, clock=lambda: FROZEN)  # torch is installed here
    assert scheduled is not None and scheduled.scheduler.running
    scheduled.shutdown()


def test_a_replica_without_the_training_packages_leaves_the_night_to_one_that_has_them(
        settings, monkeypatch: pytest.MonkeyPatch, caplog) -> None:  # noqa: ANN001
    """A serving-only install (no [train] extra) must not take the run lock and then fail in its child."""
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` meets on such an install
    assert not learning.training_installed()
    with caplog.at_level(logging.WARNING, logger="csbot.scheduler"):
        assert schedule_for_this_process(settings) is None
    assert any("training packages" in r.getMessage() for r in caplog.records)
    with pytest.raises(CsbotError, match="cannot train") as info:  # `csbot retrain` / `/csbot retrain` here
        learning.start_retrain(settings, "cli", force=True)
    assert "pip install" in info.value.fix
    assert runs(settings) == []  # no run row, no lock: nothing blocks the replica that can train


def test_the_night_the_clocks_go_back_gets_one_scheduled_run(settings) -> None:  # noqa: ANN001
    """In Paris on 2026-10-25, 02:00 happens twice (CEST, then CET): apscheduler fires at both."""
    first, second = datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc), datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)
    trigger_tz = RetrainScheduler(settings).trigger.timezone
    assert first.astimezone(trigger_tz).strftime("%H:%M") == second.astimezone(trigger_tz).strftime("%H:%M") == "02:00"
    now = [first]
    scheduler = RetrainScheduler(settings, clock=lambda: now[0])
    mark_up_to_date(settings)
    assert "nothing new" in scheduler.run_job()["reason"]  # the first 02:00 runs (and skips for its own reason)
    now[0] = second
    repeat = scheduler.run_job()
    assert (repeat["status"], repeat["reason"]) == ("skipped", "the clocks went back an hour, and this local "
                                                    "time already had its run")
    assert [r["status"] for r in runs(settings)] == ["skipped", "skipped"]  # no retrain, but the skip is recorded
    assert repeat["reason"] in runs(settings)[-1]["gate_json"]
    now[0] = first + timedelta(days=1)  # the next night runs as usual
    assert "nothing new" in scheduler.run_job()["reason"] and len(runs(settings)) == 3


def test_stopping_the_bot_does_not_wait_for_a_retrain_to_finish(settings, caplog) -> None:  # noqa: ANN001
    # Python joins the job's thread at exit, and the job waited on its child: a stopping bot hung for as long as
    # training took (up to CSBOT_RETRAIN_MAX_MINUTES). Now it stops waiting; the child goes on in its own process.
    scheduler = RetrainScheduler(settings, notify=lambda run: None)
    results: list[dict] = []
    job = threading.Thread(target=lambda: results.append(scheduler.run_job("manual")))
    job.start()
    deadline = time.monotonic() + 30
    while not (runs(settings) and runs(settings)[-1]["pid"]):
        assert time.monotonic() < deadline and job.is_alive()
        time.sleep(0.01)
    child = int(runs(settings)[-1]["pid"])
    os.kill(child, signal.SIGSTOP)  # a long training run
    try:
        with caplog.at_level(logging.WARNING, logger="csbot.scheduler"):
            started = time.monotonic()
            scheduler.shutdown()
            job.join(timeout=10)
        assert not job.is_alive() and time.monotonic() - started < 5
        assert results[0]["status"] == "running" and results[0]["id"] == runs(settings)[-1]["id"]
        assert f"stopping while retrain run {results[0]['id']} (pid {child}) trains" in caplog.text
    finally:
        os.kill(child, signal.SIGKILL)
        os.kill(child, signal.SIGCONT)
