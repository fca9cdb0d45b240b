"""``csbot`` commands through click's CliRunner: clear output, and 'Error: ... Fix: ...' with exit 1."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from conftest import make_data_dir

from bot import messages
from bot.cli import main
from bot.knowledge import default_path, load_knowledge_base
from bot.normalize import normalize
from bot.router import route
from models.runtime import Classifier


@pytest.fixture
def csbot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CSBOT_KB_PATH", raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_kb_check_default_passes(csbot: CliRunner) -> None:
    result = invoke(csbot, "kb", "check")
    assert result.exit_code == 0, result.output
    assert f"{default_path()}: OK." in result.output
    assert "intents" in result.output and "sentiment examples" in result.output


def test_kb_check_bad_file_lists_every_problem(csbot: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("company:\n  name: X\n  colour: red\nintents:\n  - name: refund\n    examples: []\n")
    result = invoke(csbot, "kb", "check", str(bad))
    assert result.exit_code == 1
    assert f"Error: Knowledge base {bad} has 3 problems:" in result.output
    assert "bad.yaml:3: unknown key 'colour' in company" in result.output
    assert "bad.yaml:5: intent 'refund' is missing 'answer'; add it" in result.output
    assert "bad.yaml:6: intent 'refund' has no examples" in result.output
    assert "Fix: edit" in result.output and "Traceback" not in result.output


def test_kb_check_uses_csbot_kb_path(csbot: CliRunner, tiny_kb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_KB_PATH", str(tiny_kb_path))
    result = invoke(csbot, "kb", "check")
    assert result.exit_code == 0
    assert "Tiny Shop: 3 intents, 33 examples, 15 sentiment examples." in result.output


def test_predict_json_with_a_model_dir(csbot: CliRunner, tiny_model: Path, tiny_kb_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_KB_PATH", str(tiny_kb_path))
    result = invoke(csbot, "predict", "--model", str(tiny_model), "--json", "where", "is", "my", "order")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["model"] == "tiny-v1" and data["provider"] == "CPUExecutionProvider"
    assert sorted(i["intent"] for i in data["intents"]) == ["refund", "reset_password", "track_order"]
    # The decision is the router's, with the thresholds stored in the model's manifest.
    classifier = Classifier.load(tiny_model)
    message = normalize("where is my order")
    expected = route(message, classifier.predict([message.text])[0], load_knowledge_base(tiny_kb_path),
                     classifier.card.thresholds_for(classifier.variant))
    assert data["decision"] == expected.decision
    assert set(data["sentiment_probs"]) == {"negative", "neutral", "positive"}
    empty = json.loads(invoke(csbot, "predict", "--model", str(tiny_model), "--json", "👍").output)
    assert (empty["decision"], empty["intents"]) == ("prompt", [])


def test_predict_uses_the_active_version(csbot: CliRunner, tmp_path: Path, tiny_model: Path,
                                         tiny_kb_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_KB_PATH", str(tiny_kb_path))
    result = invoke(csbot, "predict", "hello")
    assert result.exit_code == 1 and "Error: There is no active model yet." in result.output
    make_data_dir(tmp_path, tiny_model, {"answer_min": 0.0, "clarify_margin": 0.0, "escalate_negative": 1.01})
    result = invoke(csbot, "predict", "--top-k", "2", "where is my order")
    assert result.exit_code == 0, result.output
    assert "model v0001 on CPU (CPUExecutionProvider, fp32)" in result.output
    assert "decision: answer (confident: top " in result.output
    result = invoke(csbot, "predict", "--model", "v0009", "hi")
    assert result.exit_code == 1 and "Model version v0009 does not exist (versions: v0001)" in result.output


def test_predict_with_a_folder_that_is_not_a_model_says_what_to_pass(csbot: CliRunner, tmp_path: Path) -> None:
    # The fix was about promoting or rolling back the active model, which --model DIR does not involve.
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    result = invoke(csbot, "predict", "--model", str(folder), "hi")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Model directory {folder} is missing manifest.json.\nFix: ")
    assert messages.PREDICT_MODEL_FIX in result.output and "promote" not in result.output
    assert "`csbot train`" in messages.PREDICT_MODEL_FIX and "`csbot models list`" in messages.PREDICT_MODEL_FIX


def make_db() -> None:
    """The database the bot creates on its first start (the db commands refuse to create one)."""
    from bot.config import load_settings
    from bot.store import Store

    Store(load_settings().db_path).close()


def test_db_commands(csbot: CliRunner, tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.store import Store

    make_db()
    result = invoke(csbot, "db", "purge", "--older-than", "soon")
    assert result.exit_code == 1 and "Error: --older-than 'soon'" in result.output and "Fix:" in result.output
    result = invoke(csbot, "db", "purge", "--older-than", "90d")
    assert result.exit_code == 0 and "Purged the text of 0 messages" in result.output

    with Store(load_settings().db_path) as store:  # an old 👍 answer: the purge says the retrain loses it
        conversation = store.get_or_create_conversation("D0OLD", "1.0", "U0OLD", "slack")
        liked = store.log_message(conversation, user="U0OLD", text="thanks", normalized_text="thanks",
                                  decision="answer", reason="confident", intent="order_status", confidence=0.9)
        store.record_feedback(store.log_reply(liked, text="an answer", kind="answer"), "U0OLD", 1, "button")
        store.db["messages"].update(liked, {"created_at": "2020-01-01T00:00:00+00:00"})
    result = invoke(csbot, "db", "purge", "--older-than", "90d")
    assert result.exit_code == 0 and messages.PURGED_RATED_UP.format(count=1) in result.output
    dest = tmp_path / "backup.db"
    assert invoke(csbot, "db", "backup", str(dest)).exit_code == 0 and dest.is_file()
    again = invoke(csbot, "db", "backup", str(dest))
    assert again.exit_code == 1 and "already exists" in again.output


def test_invalid_setting_is_a_clear_error(csbot: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_MAX_MESSAGE_CHARS", "lots")
    result = invoke(csbot, "kb", "check")
    assert result.exit_code == 1
    assert "Error: Invalid setting(s): CSBOT_MAX_MESSAGE_CHARS='lots'" in result.output


@pytest.mark.parametrize(("variable", "value"), [("CSBOT_RETRAIN_CRON", "banana"), ("CSBOT_TIMEZONE", "Mars/Base")])
def test_a_bad_schedule_stops_every_command_not_only_status(csbot: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                             variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    for args in (["kb", "check"], ["predict", "hi"], ["stats"], ["review"]):
        result = invoke(csbot, *args)
        assert result.exit_code == 1, (args, result.output)
        assert f"Error: {variable}={value!r} is not a" in result.output and "\nFix: " in result.output


def test_help_and_version(csbot: CliRunner) -> None:
    result = invoke(csbot, "--help")
    assert result.exit_code == 0
    for command in ("chat", "db", "eval", "kb", "predict", "serve", "train", "up"):
        assert command in result.output
    result = invoke(csbot, "--version")
    assert result.exit_code == 0 and importlib.metadata.version("csbot") in result.output


def test_every_command_and_group_has_help_with_an_example(csbot: CliRunner) -> None:
    def walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, (*path, name))
        return found

    paths = walk(main, ())
    assert len(paths) > 15
    for path in paths:
        if path in (("train",), ("eval",)):  # passed through to `python -m training` in a child process
            output = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", *path, "--help"],
                                    capture_output=True, text=True, timeout=120, check=True).stdout
            assert output.startswith(f"Usage: csbot {path[0]} "), output
        else:
            result = invoke(csbot, *path, "--help")
            assert result.exit_code == 0, (path, result.output)
            output = result.output
        assert "Example" in output, (path, output)


def test_predict_top_k_1_keeps_the_routing_decision_and_bad_arguments_are_errors(
        csbot: CliRunner, tmp_path: Path, tiny_model: Path, tiny_kb_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_KB_PATH", str(tiny_kb_path))
    # A margin of 1 makes every message a close call: the decision needs the second intent even when
    # only the first is shown.
    make_data_dir(tmp_path, tiny_model, {"answer_min": 0.0, "clarify_margin": 1.0, "clarify_min": 0.0,
                                         "escalate_negative": 1.01})
    for top_k in ("1", "3"):
        result = invoke(csbot, "predict", "--top-k", top_k, "where is my order")
        assert result.exit_code == 0, result.output
        assert "decision: clarify (close_call: " in result.output
        shown = [line for line in result.output.splitlines() if line.startswith("  ") and line.endswith("%")]
        assert len(shown) == int(top_k)
    data = json.loads(invoke(csbot, "predict", "--top-k", "1", "--json", "where is my order").output)
    assert (data["decision"], len(data["intents"])) == ("clarify", 1)
    result = invoke(csbot, "predict", "--top-k", "0", "hi")
    assert result.exit_code == 2 and "--top-k" in result.output
    # Text that is not valid Unicode (a lone surrogate, as a non-UTF-8 terminal passes) is classified.
    result = invoke(csbot, "predict", "--json", "where is my order \udcff")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["decision"] == "clarify"
    # A name too long for the file system is an unknown version, not a traceback.
    result = invoke(csbot, "predict", "--model", "v" * 300, "hi")
    assert result.exit_code == 1 and "does not exist (versions: v0001)" in result.output


def test_db_backup_to_a_path_the_file_system_refuses(csbot: CliRunner, tmp_path: Path) -> None:
    make_db()
    result = invoke(csbot, "db", "backup", str(tmp_path / ("b" * 300) / "csbot.db"))
    assert result.exit_code == 1 and "Error: Cannot" in result.output and "Fix:" in result.output
    result = invoke(csbot, "db", "backup", str(tmp_path / ("b" * 300 + ".db")))
    assert result.exit_code == 1 and "Error: Cannot write the backup" in result.output
    assert "shorter" in result.output
    result = invoke(csbot, "db", "backup", "")  # said ". already exists"
    assert result.exit_code == 1 and messages.BACKUP_NO_NAME in result.output
    assert "e.g. csbot db backup" in result.output
    result = invoke(csbot, "db", "backup", str(tmp_path))
    assert result.exit_code == 2 and "is a directory" in result.output


@pytest.mark.parametrize("command", [["db", "backup", "copy.db"], ["db", "purge", "--older-than", "90d"]])
def test_db_commands_refuse_a_data_directory_without_a_database(csbot: CliRunner, tmp_path: Path,
                                                               command: list[str]) -> None:
    # A mistyped CSBOT_DATA_DIR created an empty database there and reported "Backed up" / "Purged".
    (tmp_path / "data").mkdir()
    for data_dir in (tmp_path / "data", tmp_path / "missing"):
        db_path = data_dir / "csbot.db"
        result = csbot.invoke(main, command, env={"CSBOT_DATA_DIR": str(data_dir)}, catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert f"Error: There is no database at {db_path}" in result.output
        assert "Fix:" in result.output and "CSBOT_DATA_DIR" in result.output
        assert not db_path.exists() and not (tmp_path / "copy.db").exists()


def test_up_with_only_some_slack_settings_names_what_is_missing(csbot: CliRunner, tmp_path: Path, tiny_model: Path,
                                                                tiny_kb_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # It said "No Slack tokens in .env" and served the terminal, where a service with no input exits 0.
    data_dir = make_data_dir(tmp_path / "up", tiny_model)
    for name, value in {"CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(tiny_kb_path),
                        "SLACK_APP_TOKEN": "xapp-1-test", "CSBOT_RETRAIN_CRON": "off"}.items():
        monkeypatch.setenv(name, value)
    result = csbot.invoke(main, ["up"], input="")
    assert result.exit_code == 1 and "Error: SLACK_BOT_TOKEN is not set." in result.output
    assert messages.CHAT_NO_SLACK not in result.output


def test_an_invalid_live_kb_edit_is_reported_with_one_instruction(tmp_path: Path, tiny_model: Path,
                                                                  tiny_kb_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # The warning added its own "run `csbot kb check`" after the error's Fix, which already says so.
    import logging

    from bot.config import load_settings
    from bot.context import Context

    data = make_data_dir(tmp_path, tiny_model)
    kb_path = tmp_path / "live.yaml"
    kb_path.write_text(tiny_kb_path.read_text(encoding="utf-8"), encoding="utf-8")
    ctx = Context.open(load_settings(env_file=None, data_dir=data, kb_path=kb_path, onnx_provider="cpu"))
    kb_path.write_text(kb_path.read_text(encoding="utf-8").replace("company:\n", "company:\n  bogus: 1\n", 1),
                       encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bot.context"):
        assert not ctx.refresh_knowledge_base()
    warning = next(r.getMessage() for r in caplog.records if "keeps serving" in r.getMessage())
    assert "unknown key 'bogus' in company" in warning and warning.count("csbot kb check") == 1
    assert warning.endswith(f"Fix: edit {kb_path} and run `csbot kb check` until it passes.")
    assert "re-reads the file when it is saved again" in warning  # still said, once, before the error
