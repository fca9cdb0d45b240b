"""`csbot retrain` followed from a terminal: it prints each phase as Slack posts it, and a run stopped by a signal says
so instead of a bare exit code."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_slack import make_data_dir

from bot import messages
from bot.cli import main
from bot.store import Store
from models.registry import Registry
from training.job_guard import describe_error


def test_a_waiting_retrain_prints_its_phases_then_the_report(tmp_path: Path, tiny_model: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir, kb_path = make_data_dir(tmp_path, tiny_model)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {"CSBOT_DATA_DIR": str(data_dir), "CSBOT_KB_PATH": str(kb_path), "CSBOT_TIMEZONE": "UTC",
                        "CSBOT_ONNX_PROVIDER": "cpu", "CSBOT_RETRAIN_PROGRESS_SECONDS": "0.05",
                        # the child gets through the dataset, then fails to load its base model: seconds, not minutes
                        "CSBOT_BASE_MODEL": str(tmp_path / "no-such-base-model")}.items():
        monkeypatch.setenv(name, value)
    with Store(data_dir / "csbot.db") as store:
        Registry(data_dir / "models", store).activate("v0001")
    result = CliRunner().invoke(main, ["retrain", "--force"], catch_exceptions=False)
    assert result.exit_code == 1  # the run failed
    lines = result.output.splitlines()
    phases = [line for line in lines if line.startswith(messages.RETRAIN_PHASE.format(phase=""))]
    assert phases, result.output  # it used to print nothing between "started" and the report
    assert len(phases) == len(set(phases))  # each phase once
    assert lines.index(phases[-1]) < next(i for i, line in enumerate(lines) if "failed" in line.lower())


def test_a_run_stopped_by_a_signal_says_which() -> None:
    reason = describe_error(SystemExit(128 + signal.SIGTERM))
    assert reason == messages.ERROR_PREFIX + messages.RUN_STOPPED_BY_SIGNAL.format(signal="SIGTERM")
    assert "143" not in reason and "active model is unchanged" in reason
