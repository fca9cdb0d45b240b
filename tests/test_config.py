"""Settings from the environment and .env: defaults, derived values, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from models.errors import ConfigError

VARIABLES = ("CSBOT_DATA_DIR", "CSBOT_KB_PATH", "CSBOT_HTTP_PORT", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN",
             "SLACK_SIGNING_SECRET", "CSBOT_ADMIN_USERS", "CSBOT_AGENT_USERS", "CSBOT_ONNX_PROVIDER",
             "SLACK_API_URL", "CSBOT_MAX_MESSAGE_CHARS", "CSBOT_LOG_LEVEL", "CSBOT_RETRAIN_CRON", "CSBOT_TIMEZONE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_and_derived_paths() -> None:
    settings = load_settings(env_file=None)
    assert settings.data_dir == Path("var")
    assert settings.db_path == Path("var/csbot.db") and settings.models_dir == Path("var/models")
    assert settings.kb_path is None and settings.max_message_chars == 2000
    assert not settings.slack_configured


def test_environment_and_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CSBOT_HTTP_PORT=8080\nSLACK_BOT_TOKEN=xoxb-1\nCSBOT_ADMIN_USERS=U1, U2;U3\n")
    monkeypatch.setenv("CSBOT_HTTP_PORT", "9090")  # the environment wins over .env
    monkeypatch.setenv("CSBOT_AGENT_USERS", "U4")
    monkeypatch.setenv("SLACK_API_URL", "http://localhost:9/api")
    settings = load_settings()
    assert settings.http_port == 9090
    assert settings.slack_configured
    assert settings.admins == {"U1", "U2", "U3"} and settings.agents == {"U1", "U2", "U3", "U4"}
    assert settings.slack_api_url == "http://localhost:9/api/"


@pytest.mark.parametrize(("variable", "value"), [("CSBOT_HTTP_PORT", "http"), ("CSBOT_HTTP_PORT", "70000"),
                                                 ("CSBOT_ONNX_PROVIDER", "tpu"), ("SLACK_API_URL", "slack.com")])
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert f"{variable}={value!r}" in info.value.what
    assert "fix the value in .env" in info.value.fix


def test_invalid_value_in_env_file_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CSBOT_HTTP_PORT=abc\n")
    with pytest.raises(ConfigError, match="CSBOT_HTTP_PORT='abc'"):
        load_settings()


def test_an_env_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes("CSBOT_LOG_LEVEL=INFO\nCSBOT_NOTE=Caf\u00e9\n".encode("latin-1"))  # an editor saved Latin-1
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.what == ".env is not UTF-8 text: byte 0xe9 on line 2."
    assert "save .env as UTF-8" in caught.value.fix


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16"])
def test_a_utf16_env_file_is_refused_not_silently_ignored(tmp_path: Path, encoding: str) -> None:
    # Without a BOM it decoded as UTF-8, a NUL after each letter: no variable was found, every setting a default.
    (tmp_path / ".env").write_bytes("CSBOT_MAX_MESSAGE_CHARS=10\n".encode(encoding))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.what.startswith(".env is UTF-16 text")
    assert "iconv -f UTF-16 -t UTF-8 .env" in caught.value.fix


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_data_dir_means_var(tmp_path: Path, value: str) -> None:
    (tmp_path / ".env").write_text(f"CSBOT_DATA_DIR={value}\n")
    assert load_settings().data_dir == Path("var")  # not the current folder, nor one named "  "


def test_overrides_by_field_name_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="CSBOT_MAX_MESSAGE_CHARS=5"):
        load_settings(env_file=None, max_message_chars=5)


def test_require_slack_names_the_missing_secret() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None).require_slack(socket_mode=True)
    assert info.value.what == "SLACK_BOT_TOKEN is not set."
    assert "add SLACK_BOT_TOKEN=... to .env" in info.value.fix
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN is not set"):
        load_settings(env_file=None, SLACK_BOT_TOKEN="xoxb-1").require_slack(socket_mode=True)
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is not set"):
        load_settings(env_file=None, SLACK_BOT_TOKEN="xoxb-1").require_slack(socket_mode=False)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN should start with 'xoxb-'"):
        load_settings(env_file=None, SLACK_BOT_TOKEN="xapp-1").require_slack(socket_mode=False)
    with pytest.raises(ConfigError, match="CSBOT_AGENTS_CHANNEL is not set") as info:
        load_settings(env_file=None, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1").require_slack(socket_mode=True)
    assert "CSBOT_AGENTS_CHANNEL=C0123456789" in info.value.fix
    ok = load_settings(env_file=None, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1", CSBOT_AGENTS_CHANNEL="C0AG")
    ok.require_slack(socket_mode=True)  # does not raise once the channel is set
    assert (ok.agents_channel, ok.slack_bot_token) == ("C0AG", "xoxb-1")


def test_env_example_documents_every_variable_and_loads(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / ".env.example"
    text = example.read_text()
    for field in Settings.model_fields.values():
        assert f"{field.alias}=" in text, f"{field.alias} is not documented in .env.example"
    (tmp_path / ".env").write_text(text)
    settings = load_settings()
    assert settings.kb_path is None  # `CSBOT_KB_PATH=` means the bundled knowledge base
    assert settings.http_port == 3000 and not settings.slack_configured


def test_empty_kb_path_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CSBOT_KB_PATH", "  ")
    assert load_settings(env_file=None).kb_path is None
    monkeypatch.setenv("CSBOT_KB_PATH", "kb/mine.yaml")
    assert load_settings(env_file=None).kb_path == Path("kb/mine.yaml")


def test_log_level_defaults_per_mode_and_applies_everywhere_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    unset = load_settings(env_file=None)
    assert unset.log_level_for(serving_slack=True) == "INFO"
    assert unset.log_level_for(serving_slack=False) == "WARNING"  # the terminal chat stays readable
    monkeypatch.setenv("CSBOT_LOG_LEVEL", " debug ")
    chosen = load_settings(env_file=None)
    assert chosen.log_level_for(serving_slack=True) == chosen.log_level_for(serving_slack=False) == "DEBUG"
    monkeypatch.setenv("CSBOT_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError, match="CSBOT_LOG_LEVEL='LOUD'"):
        load_settings(env_file=None)


@pytest.mark.parametrize("env", [{"SLACK_APP_TOKEN": "xapp-1"}, {"SLACK_SIGNING_SECRET": "s"},
                                 {"SLACK_APP_TOKEN": "xapp-1", "SLACK_SIGNING_SECRET": "s"}])
def test_any_slack_secret_means_slack_was_meant(env: dict[str, str]) -> None:
    # Only SLACK_BOT_TOKEN counted: with just the app token, `make run` said "no Slack tokens" and went to the
    # terminal, where a service without input exits 0. Now serving Slack names the variable that is missing.
    settings = load_settings(env_file=None, **{name.lower(): value for name, value in env.items()})
    assert settings.slack_configured
    with pytest.raises(ConfigError) as info:
        settings.require_slack(socket_mode="SLACK_APP_TOKEN" in env)
    assert info.value.what == "SLACK_BOT_TOKEN is not set."


def test_a_bot_token_alone_names_both_ways_to_connect() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None, slack_bot_token="xoxb-1").require_slack(socket_mode=False)
    assert info.value.what == "SLACK_SIGNING_SECRET is not set."
    assert "for HTTP mode add SLACK_SIGNING_SECRET" in info.value.fix and "SLACK_APP_TOKEN=xapp-" in info.value.fix


@pytest.mark.parametrize(("variable", "value", "what", "fix"), [
    ("CSBOT_RETRAIN_CRON", "banana",
     "CSBOT_RETRAIN_CRON='banana' is not a valid cron expression (Wrong number of fields; got 1, expected 5).",
     "write five fields: minute hour day month weekday"),
    ("CSBOT_RETRAIN_CRON", "0 25 * * *", "CSBOT_RETRAIN_CRON='0 25 * * *' is not a valid cron expression",
     "five fields"),
    ("CSBOT_TIMEZONE", "Mars/Base", "CSBOT_TIMEZONE='Mars/Base' is not a known time zone.", "IANA name")])
def test_a_bad_schedule_fails_when_settings_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str,
                                                 value: str, what: str, fix: str) -> None:
    # Only `status` and `serve` built the schedule, so every other command ran on with the typo; the message is
    # the scheduler's own.
    (tmp_path / ".env").write_text(f"{variable}={value}\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.what.startswith(what) and fix in info.value.fix
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(env_file=None)


@pytest.mark.parametrize(("cron", "zone"), [("off", ""), (" OFF ", "Mars/Base"), ("", ""), ("30 3 * * 1-5", "UTC")])
def test_off_empty_and_valid_schedules_still_load(monkeypatch: pytest.MonkeyPatch, cron: str, zone: str) -> None:
    monkeypatch.setenv("CSBOT_RETRAIN_CRON", cron)
    monkeypatch.setenv("CSBOT_TIMEZONE", zone)
    if zone == "Mars/Base":  # a zone is checked even with the schedule off: it is still a typo in .env
        with pytest.raises(ConfigError, match="CSBOT_TIMEZONE='Mars/Base'"):
            load_settings(env_file=None)
        return
    assert load_settings(env_file=None).retrain_scheduled == (cron.strip().lower() not in ("off", ""))
