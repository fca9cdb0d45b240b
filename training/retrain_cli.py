"""``python -m training retrain``: the learning loop's job, run once (the bot starts it as a child)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

from bot import messages
from models.errors import CsbotError


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the job, which marks the run failed


@click.command()
@click.option("--trigger", default="manual", show_default=True, help="Who asked: schedule, slack, cli, manual.")
@click.option("--mode", type=click.Choice(["auto", "full", "fast"]), default="auto", show_default=True,
              help="full fine-tune, fast (heads only on the active encoder), or auto (see training/retrain.py).")
@click.option("--force", is_flag=True, help="Train even if nothing new came in since the last run.")
@click.option("--run-id", type=int, default=None, help="A training_runs row prepared by the bot (internal).")
@click.option("--set", "overrides", multiple=True, help="Any training option, e.g. --set epochs=2.")
@click.option("--progress/--no-progress", default=False, help="Show progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def retrain(trigger: str, mode: str, force: bool, run_id: int | None, overrides: tuple[str, ...], progress: bool,
            as_json: bool) -> None:
    """Build the dataset from feedback, fine-tune, export, check, gate and promote a new version.

    \b
    Examples:
      python -m training retrain                      # what `csbot retrain` starts
      python -m training retrain --force --mode full --set epochs=2
    """
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from bot.learning import report_text
        from training.cli import _parse_set, _settings
        from training.config import TrainConfig
        from training.retrain import RetrainOptions, fail_prepared_run, run_retrain

        # The job's phases go to stderr (the run's train.log) at INFO unless CSBOT_LOG_LEVEL says otherwise.
        settings = _settings(default_level="INFO")
        try:
            options = RetrainOptions(trigger=trigger, run_id=run_id, mode=mode, force=force,
                                     overrides=_parse_set(overrides), progress=progress)
            TrainConfig().replace(**options.overrides)  # an unknown or invalid option fails here, by name
            report = run_retrain(settings, options)
        except CsbotError as error:
            # Also what run_retrain raises before its own bookkeeping starts (a busy database, say): the
            # bot's prepared row then says what was wrong, not the reaper's "killed or crashed".
            if run_id is not None:
                fail_prepared_run(settings, run_id, error)
            raise
    except CsbotError as error:
        click.echo(f"{messages.ERROR_PREFIX}{error}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(report_text({**report, "id": report["run_id"],
                                "gate": report.get("gate") or {"reason": report.get("reason")}}))
    sys.exit(1 if report.get("status") == "failed" else 0)
