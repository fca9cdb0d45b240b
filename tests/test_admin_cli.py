"""The CLI mirrors `/csbot`: status, models, promote, rollback, retrain, stats and review, in process with
CliRunner, printing exactly the text Slack shows (bot.admin), and the same errors."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fake_slack import TEST_KB, make_data_dir

from bot import admin, learning, messages
from bot.cli import main
from bot.config import load_settings
from bot.spool import Spool, slack_spool_path
from bot.store import NEW_TOPIC, Store
from models.registry import Registry
from models.runtime import Classifier


@pytest.fixture
def data(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {"CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(kb_path), "CSBOT_TIMEZONE": "UTC",
                        "CSBOT_ONNX_PROVIDER": "cpu", "CSBOT_ADMIN_USERS": "U0ADMIN"}.items():
        monkeypatch.setenv(name, value)
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate("v0001")
    assert kb_path.read_text() == TEST_KB
    return data_dir


def csbot(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def slack(text: str) -> admin.AdminReply:
    """What `/csbot text` answers an admin in Slack (the same function the listener calls)."""
    settings = load_settings(env_file=None)
    return admin.run(settings, text, user="U0ADMIN", provider="CPUExecutionProvider")


def queued_message(data: Path) -> int:
    """A handed-off customer message: what the review queue lists."""
    with Store(data / "csbot.db") as store:
        conversation = store.get_or_create_conversation("D0CLI", "1.0", "UCUST", "slack")
        message_id = store.log_message(conversation, user="UCUST", text="my widget broke", normalized_text="x",
                                       decision="handoff", reason="low_confidence", intent="refund",
                                       confidence=0.4, model_version="v0001")
        store.log_reply(message_id, text="a person will reply", kind="handoff")
    return message_id


def test_status_models_stats_match_slack(data: Path) -> None:
    for args, text in ((["status"], "status"), (["models", "list"], "models"), (["stats"], "stats"),
                       (["stats", "--days", "30"], "stats 30")):
        result = csbot(*args)
        assert result.exit_code == 0, result.output
        assert result.output == slack(text).text + "\n"
    assert csbot("status").output.startswith("*Active model*: v0001")
    assert '"active": "v0001"' in csbot("status", "--json").output
    assert '"version": "v0004"' in csbot("models", "list", "--json").output


def test_status_shows_votes_waiting_in_the_spool(data: Path) -> None:
    assert "Waiting to be stored" not in csbot("status").output  # nothing kept: no line
    Spool(slack_spool_path(data)).add("vote", reply_id=1, user="UCUST", rating=1, source="button")
    shown = csbot("status").output
    assert messages.STATUS_SPOOLED.format(count=1, path=slack_spool_path(data)) in shown
    assert shown == slack("status").text + "\n"
    assert '"spooled_writes": 1' in csbot("status", "--json").output


def test_status_counts_a_spool_whose_tail_was_torn_inside_a_character(data: Path) -> None:
    spool = Spool(slack_spool_path(data))
    spool.add("vote", reply_id=1, user="UCUST", rating=1, source="button")
    with spool.path.open("ab") as out:
        out.write('{"kind": "message", "text": "å'.encode()[:-1])  # a crash cut the append inside "å"
    result = csbot("status")  # printed a UnicodeDecodeError traceback
    assert result.exit_code == 0, result.output
    assert messages.STATUS_SPOOLED.format(count=2, path=slack_spool_path(data)) in result.output


def test_out_of_range_stats_and_odd_version_names_are_clear_errors(data: Path) -> None:
    # "abc": 7 days without a word; "²" and 5,000 digits: no reply at all (int() raised)
    for text in ("stats 999999", "stats abc", "stats 7 days", "stats ²", "stats " + "9" * 5000):
        reply = slack(text)
        assert not reply.ok and reply.text == messages.STATS_DAYS.format(most=admin.MAX_STATS_DAYS)
    assert "Fix:" in messages.STATS_DAYS and "Fix:" in messages.PROMOTE_USAGE and "Fix:" in messages.RETRAIN_USAGE
    for text in ("retrain --mode slow", "retrain now", "retrain --mode"):  # used to retrain, ignoring the words
        reply = slack(text)
        assert not reply.ok and reply.text == messages.RETRAIN_USAGE and reply.retrain is None
    assert admin.retrain_options(["--force", "--mode", "full"]) == (True, "full")
    assert admin.retrain_options(["--mode=fast"]) == (False, "fast")
    for name in ("v" + "9" * 300, "../v0001"):  # used to reach the file system (OSError: name too long)
        reply = slack(f"promote {name}")
        assert not reply.ok and reply.text.startswith(f"Error: Model version {name} does not exist")


def test_status_reports_the_provider_a_session_really_gets(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With onnxruntime-gpu installed, get_available_providers() lists CUDA even on this GPU-less
    # machine; status must load the active model and read the session's provider instead.
    monkeypatch.setenv("CSBOT_ONNX_PROVIDER", "auto")
    in_use = Classifier.load(data / "models" / "v0001", provider="auto").provider  # CPU here, CUDA on a GPU box
    assert learning.status(load_settings(env_file=None))["provider"] == in_use
    assert f"({in_use})" in csbot("status").output


def test_promote_rollback_and_their_errors_match_slack(data: Path) -> None:
    result = csbot("promote", "v0002")
    assert result.exit_code == 0 and result.output == messages.PROMOTED.format(active="v0002", previous="v0001") + "\n"
    again = csbot("promote", "v0002")
    assert again.exit_code == 1 and again.output == slack("promote v0002").text + "\n"
    assert again.output.startswith("Error: Version v0002 is already active.\nFix: ")
    rolled = csbot("rollback")
    assert rolled.exit_code == 0 and rolled.output == messages.ROLLED_BACK.format(active="v0001",
                                                                                   previous="v0002") + "\n"
    with Store(data / "csbot.db") as store:  # who did it is recorded with each version
        reasons = {r["version"]: r["reason"] for r in store.db.query("SELECT version, reason FROM model_versions")}
    assert reasons == {"v0002": "promoted by the CLI", "v0001": "rollback from v0002 by the CLI"}
    missing = csbot("promote", "v0042")
    assert missing.exit_code == 1 and missing.output == slack("promote v0042").text + "\n" and "Fix:" in missing.output


@pytest.mark.parametrize(("level", "logged"), [(None, False), ("info", True)])
def test_csbot_log_level_applies_to_cli_commands(data: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture, level: str | None,
                                                 logged: bool) -> None:
    """Unset, the CLI logs warnings only; CSBOT_LOG_LEVEL=info shows the learning loop's INFO lines too."""
    # apply_log_level sets process-wide state: put it back afterwards
    for name in ("bot", "models", "training", "csbot"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    if level:
        monkeypatch.setenv("CSBOT_LOG_LEVEL", level)
    assert csbot("promote", "v0002").exit_code == 0
    promoted = [r for r in caplog.records if r.name == "csbot.learning" and "v0002 promoted" in r.getMessage()]
    assert bool(promoted) is logged


def test_retrain_skip_matches_slack(data: Path) -> None:
    with Store(data / "csbot.db") as store:
        assert learning.acquire_lock(store, "run:999", pid=os.getpid())
    result = csbot("retrain")
    assert result.exit_code == 0
    assert result.output.startswith("Retraining skipped: a retrain is still going (run:999")
    assert result.output.strip() == slack("retrain").text  # the same words in Slack
    with Store(data / "csbot.db") as store:
        runs = [(r["status"], r["trigger"]) for r in store.db.query("SELECT * FROM training_runs ORDER BY id")]
    assert runs == [("skipped", "cli"), ("skipped", "slack")]


def test_retrain_no_wait_says_what_happens_next_in_the_cli(data: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # It said Slack's "I'll post progress and the result here", and then the CLI exited and posted nothing.
    monkeypatch.setenv("CSBOT_BASE_MODEL", str(tmp_path / "no-such-base-model"))  # the child fails in seconds
    result = csbot("retrain", "--force", "--no-wait")
    assert result.exit_code == 0
    first = result.output.splitlines()[0]
    assert first.startswith("Retraining started: run ") and first.endswith(messages.RETRAIN_THEN_BACKGROUND)
    assert messages.RETRAIN_THEN_SLACK not in result.output

    def finished() -> bool:
        with Store(data / "csbot.db") as store:
            return [r["status"] for r in store.db.query("SELECT status FROM training_runs")] == ["failed"]
    deadline = time.monotonic() + 60
    while not finished():  # let the child end before the folder goes
        assert time.monotonic() < deadline, "the retrain child did not end"
        time.sleep(0.2)


def test_review_lists_and_labels(data: Path) -> None:
    message_id = queued_message(data)
    listing = csbot("review")
    assert listing.exit_code == 0 and listing.output == slack("review").text + "\n"
    assert f"#{message_id} [handoff] “my widget broke” — guess: refund 40%" in listing.output
    bad = csbot("review", "label", str(message_id), "nope")
    assert bad.exit_code == 1 and "Error: 'nope' is not an intent in the knowledge base." in bad.output
    assert "Fix:" in bad.output
    done = csbot("review", "label", str(message_id), "track_order", "--sentiment", "negative", "--note", "n")
    assert done.exit_code == 0, done.output
    assert done.output == messages.CORRECTED.format(message_id=message_id, intent="track_order") + "\n"
    with Store(data / "csbot.db") as store:
        row = next(iter(store.db.query("SELECT * FROM corrections WHERE message_id = ?", [message_id])))
        assert (row["agent"], row["predicted_intent"], row["correct_intent"], row["correct_sentiment"],
                row["note"]) == ("cli", "refund", "track_order", "negative", "n")
        assert not store.review_queue()
    assert csbot("review").output == messages.REVIEW_EMPTY + "\n"
    again = csbot("review", "label", str(message_id), "new-topic")
    assert again.output == messages.CORRECTED_NEW_TOPIC.format(message_id=message_id) + "\n"
    with Store(data / "csbot.db") as store:
        rows = list(store.db.query("SELECT * FROM corrections WHERE message_id = ?", [message_id]))
    assert len(rows) == 1 and rows[0]["correct_intent"] == NEW_TOPIC
    # A note typed in a terminal that is not UTF-8 arrives with a lone surrogate; it is kept, mended.
    mended = csbot("review", "label", str(message_id), "refund", "--note", "caf\udce9 order")
    assert mended.exit_code == 0, mended.output
    with Store(data / "csbot.db") as store:
        rows = list(store.db.query("SELECT * FROM corrections WHERE message_id = ?", [message_id]))
    assert [(r["correct_intent"], r["note"]) for r in rows] == [("refund", "caf\ufffd order")]
    assert csbot("review", "label", "99999", "refund").output.startswith("Error: There is no message 99999.")
    huge = csbot("review", "label", str(2**63), "refund")  # SQLite's integers stop at 2**63 - 1: a traceback
    assert huge.exit_code == 2 and "is not in the range 1<=x<=9223372036854775807" in huge.output


@pytest.mark.parametrize("name", ["", "   "])
def test_review_label_refuses_a_blank_intent(data: Path, name: str) -> None:
    # "" was falsy, so the unknown-intent check was skipped: a correction with intent '' was stored,
    # the message left the queue, and the CLI said "message N is None".
    message_id = queued_message(data)
    result = csbot("review", "label", str(message_id), name)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: '{name}' is not an intent in the knowledge base. Known intents: ")
    assert "Fix: pick one of the known intents" in result.output and "None" not in result.output
    with Store(data / "csbot.db") as store:
        assert not list(store.db.query("SELECT * FROM corrections WHERE message_id = ?", [message_id]))
        assert [item["message_id"] for item in store.review_queue()] == [message_id]


def test_a_damaged_page_is_a_clear_error_in_every_command(data: Path, tmp_path: Path) -> None:
    # The file opens (only the schema is read then); the first query that meets the page raised a traceback.
    with Store(data / "csbot.db") as store:
        conversation = store.get_or_create_conversation("D0BIG", "1.0", "U0BIG", "slack")
        for i in range(300):
            store.log_message(conversation, user="U0BIG", text="x" * 500, normalized_text="x", decision="handoff",
                              reason="low_confidence: 0.1", ts=f"1.{i}")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with (data / "csbot.db").open("r+b") as db_file:
        db_file.seek(4096 * 40)
        db_file.write(b"\xff" * 4096 * 5)
    damaged = "cannot be opened as a csbot database (database disk image is malformed)"
    for command in (["stats"], ["review"], ["db", "purge", "--older-than", "1d"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, (command, result.output)
        assert damaged in result.output and "Fix: move the file away" in result.output, (command, result.output)
    assert damaged in slack("review").text  # /csbot review says the same
    backup = CliRunner().invoke(main, ["db", "backup", str(tmp_path / "copy.db")])
    assert backup.exit_code == 1 and "but the copy fails SQLite's check" in backup.output
    assert ".recover" in backup.output and (tmp_path / "copy.db").exists()  # the copy is kept: it may be all there is


def test_a_database_from_a_newer_csbot_is_refused(data: Path) -> None:
    with Store(data / "csbot.db") as store, store.transaction() as db:
        db.execute("INSERT INTO migrations (id, name, applied_at) VALUES (99, 'from_a_newer_csbot', '2030-01-01')")
    result = CliRunner().invoke(main, ["stats"])
    assert result.exit_code == 1 and "was written by a newer csbot (schema version 99; this one knows" in result.output
    assert "Fix: upgrade csbot" in result.output


def test_a_missing_active_folder_reads_the_same_everywhere(data: Path, tmp_path: Path) -> None:
    # A lost or moved data folder: predict said "versions: none yet", `models list` "answering now", status
    # "CPU (none (...))" and promote "already active". Each now names the folder that is missing.
    folder = data / "models" / "v0001"
    folder.rename(tmp_path / "v0001.moved")
    missing = f"Model version v0001 is the active version, but its folder {folder} is missing."
    predicted = csbot("predict", "hi")
    assert predicted.exit_code == 1 and predicted.output.startswith(f"Error: {missing}\nFix: restore")
    listing = csbot("models", "list").output
    assert "answering now" not in listing
    assert f"• `v0001` active ← does not load — {missing}" in listing
    status = csbot("status").output
    assert f"*Inference*: none · the active model does not load: {missing}" in status and "none (" not in status
    promoted = csbot("promote", "v0001")
    assert promoted.exit_code == 1 and promoted.output.startswith(f"Error: {missing}\nFix: ")
    assert "already active" not in promoted.output and promoted.output == slack("promote v0001").text + "\n"


def test_models_list_marks_an_active_model_that_does_not_load(data: Path) -> None:
    onnx = data / "models" / "v0001" / "model.onnx"
    with onnx.open("r+b") as handle:  # a copy cut short: the checksum no longer matches
        handle.truncate(onnx.stat().st_size // 2)
    listing = csbot("models", "list").output
    assert "answering now" not in listing
    assert f"• `v0001` active ← does not load — {onnx} does not match its checksum" in listing
    assert listing == slack("models").text + "\n"  # the same text as `/csbot models`
    assert "*Inference*: none · the active model does not load: " in csbot("status").output


def test_an_empty_queue_after_a_purge_does_not_claim_it_was_labelled(data: Path) -> None:
    message_id = queued_message(data)
    with Store(data / "csbot.db") as store:
        store.db["messages"].update(message_id, {"created_at": "2020-01-01T00:00:00+00:00"})
    purged = csbot("db", "purge", "--older-than", "90d", "--include-unreviewed")
    assert purged.exit_code == 0 and messages.PURGED_UNREVIEWED.format(count=1) in purged.output
    empty = csbot("review").output
    assert empty == messages.REVIEW_EMPTY + "\n" and "labelled" not in empty  # nothing was: it was purged


def test_stats_name_a_new_topic_correction_as_agents_see_it(data: Path) -> None:
    # The internal sentinel showed: "most corrected: refund → __new_topic__ (1)".
    message_id = queued_message(data)
    assert csbot("review", "label", str(message_id), "new-topic").exit_code == 0
    shown = csbot("stats").output
    assert "refund → new topic (1)" in shown and NEW_TOPIC not in shown
    assert shown == slack("stats").text + "\n"


def test_an_unknown_intent_label_says_how_to_mark_a_new_topic(data: Path) -> None:
    # The fix said "or mark it a new topic" without the word to type for it.
    message_id = queued_message(data)
    bad = csbot("review", "label", str(message_id), "not_an_intent")
    assert bad.exit_code == 1 and "Error: 'not_an_intent' is not an intent in the knowledge base." in bad.output
    assert "`/correct new-topic`" in bad.output and "`csbot review label ID new-topic`" in bad.output
