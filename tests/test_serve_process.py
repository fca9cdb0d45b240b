"""`csbot serve --http` as a real process: stopped by SIGTERM or Ctrl+C while an answer is in flight, it answers,
stores the answer's ts, runs its clean-up and exits 0 (uvicorn's re-raised signal used to kill it first)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fake_slack import (
    BOT_TOKEN,
    MODE_VERSIONS,
    SIGNING_SECRET,
    FakeSlack,
    dm_event,
    event_body,
    make_data_dir,
    post_event,
)

from bot.store import Store
from models.registry import Registry


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_the_answer_in_flight_and_exits_cleanly(tmp_path: Path, tiny_model: Path,
                                                                stop: signal.Signals) -> None:
    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate(MODE_VERSIONS["answer"])
    port = free_port()
    with FakeSlack() as fake:
        env = {**os.environ, "CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(kb_path),
               "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
               "CSBOT_AGENTS_CHANNEL": "C0AGENTS", "CSBOT_HTTP_HOST": "127.0.0.1", "CSBOT_HTTP_PORT": str(port),
               "CSBOT_ONNX_PROVIDER": "cpu", "CSBOT_THREADS": "1", "CSBOT_TIMEZONE": "UTC"}
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--http"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
                    time.sleep(0.1)
            fake.delay_next("chat.postMessage", 2.0)  # the answer is still on its way when the signal comes
            event = dm_event("where is my order", channel="D0DRAIN")
            assert post_event(f"http://127.0.0.1:{port}/slack/events", event_body(event)).status == 200
            time.sleep(0.5)
            proc.send_signal(stop)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, (out, err)
    assert "Traceback" not in err and "Aborted" not in err
    assert f"stopped by {stop.name}" in err
    with sqlite3.connect(data_dir / "csbot.db") as db:  # answered, and its ts kept for the 👍/👎 that follow
        assert db.execute("SELECT count(*), count(r.ts) FROM replies r JOIN messages m ON m.id = r.message_id "
                          "WHERE m.ts = ?", [event["ts"]]).fetchone() == (1, 1)


@pytest.mark.parametrize("host", ["127.0.0.1", "not a host"])
def test_a_port_in_use_or_a_bad_host_is_said_before_serving(tmp_path: Path, tiny_model: Path, host: str) -> None:
    # csbot said "serving http://..." first, then uvicorn's "[Errno 98] address already in use", rc 3.
    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate(MODE_VERSIONS["answer"])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(kb_path),
               "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "CSBOT_AGENTS_CHANNEL": "C0A",
               "CSBOT_HTTP_HOST": host, "CSBOT_HTTP_PORT": str(port), "CSBOT_RETRAIN_CRON": "off"}
        proc = subprocess.run([sys.executable, "-m", "bot.cli", "serve", "--http"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"Error: Cannot listen on {host}:{port}: " in proc.stderr and "Fix: pick a free port" in proc.stderr
    assert "serving" not in proc.stdout and "Traceback" not in proc.stderr


def start_service(tmp_path: Path, tiny_model: Path, api_url: str) -> str:
    """Start the Slack app against ``api_url`` (as `serve` does at start-up); "" or the error it gave."""
    import asyncio

    from bot.config import load_settings
    from bot.context import Context
    from bot.slack.app import SlackService
    from models.errors import CsbotError

    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate(MODE_VERSIONS["answer"])
    settings = load_settings(env_file=None, data_dir=data_dir, kb_path=kb_path, slack_bot_token=BOT_TOKEN,
                             slack_signing_secret=SIGNING_SECRET, slack_api_url=api_url, agents_channel="C0A",
                             onnx_provider="cpu", threads=1)
    ctx = Context.open(settings)

    async def start() -> str:
        service = SlackService(ctx)
        try:
            await service.start()
        except CsbotError as error:
            return str(error)
        await service.stop()
        return ""
    try:
        return asyncio.run(start())
    finally:
        ctx.store.close()


def test_slack_down_for_a_moment_at_start_up_is_not_a_rejected_token(tmp_path: Path, tiny_model: Path) -> None:
    with FakeSlack() as fake:
        fake.fail_next("auth.test", "internal_error", status=500)  # Slack's trouble, not the token's: tried again
        assert start_service(tmp_path / "a", tiny_model, fake.api_url) == ""
        assert len(fake.of("auth.test")) == 2
        fake.fail_next("auth.test", "invalid_auth")  # a token Slack refuses is said at once, with its fix
        refused = start_service(tmp_path / "b", tiny_model, fake.api_url)
        assert refused.startswith("Slack rejected SLACK_BOT_TOKEN (invalid_auth).") and "Fix:" in refused
        fake.fail_next("auth.test", "service_unavailable", status=503, times=3)  # down all along: unreachable
        down = start_service(tmp_path / "c", tiny_model, fake.api_url)
        assert down.startswith(f"Cannot reach the Slack Web API at {fake.api_url} (service_unavailable, HTTP 503)")
