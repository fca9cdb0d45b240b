"""``csbot retrain``, ``csbot models list``, ``csbot promote`` and ``csbot rollback``: the learning loop.

``retrain`` starts a run exactly as the nightly schedule and ``/csbot retrain`` do
(``bot.learning.start_retrain``) and can wait for its report. The version commands go through
``bot.admin``, the code behind ``/csbot`` in Slack, so each prints exactly what Slack shows;
``--json`` prints the underlying ``bot.learning`` data instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from bot import messages
from bot.cli_common import friendly, run_admin, settings


@click.command()
@click.option("--force", is_flag=True, help="Train even if nothing new came in since the last run.")
@click.option("--mode", type=click.Choice(["auto", "full", "fast"]), default="auto", show_default=True,
              help="full fine-tune, fast (heads only on the active encoder), or auto.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the run and print its report.")
@click.option("--set", "overrides", multiple=True, help="A training option for this run, e.g. --set epochs=2.")
@friendly
def retrain(force: bool, mode: str, wait: bool, overrides: tuple[str, ...]) -> None:
    """Learn from feedback now: build the dataset, fine-tune, check, gate and promote (in a child process).

    \b
    Examples:
      csbot retrain                 # what the nightly schedule and `/csbot retrain` run
      csbot retrain --force --mode full --no-wait
    """
    from bot import admin, learning

    cfg = settings()
    extra = [arg for item in overrides for arg in ("--set", item)]
    handle = learning.start_retrain(cfg, "cli", force=force, mode=mode, extra_args=extra)
    click.echo(admin.retrain_text(handle, then="" if wait else messages.RETRAIN_THEN_BACKGROUND))
    if not handle.started:
        return
    click.echo(messages.RETRAIN_LOG.format(path=handle.log_path, pid=handle.process.pid if handle.process else "?"))
    if not wait:
        return
    try:
        run = _follow(handle, cfg.retrain_progress_seconds)
    except KeyboardInterrupt:  # the child runs in its own session: Ctrl-C stops only the waiting
        click.echo(messages.RETRAIN_DETACHED.format(run_id=handle.run_id, pid=handle.process.pid if handle.process
                                                    else "?", path=handle.log_path))
        sys.exit(130)
    click.echo(learning.report_text(run))
    found = [path for path in (Path(run.get("run_dir") or "") / name for name in ("report.json", "report.png"))
             if run.get("run_dir") and path.is_file()]
    if found:
        click.echo(messages.RETRAIN_FILES.format(files=", ".join(map(str, found))))
    if run.get("status") == "failed":
        sys.exit(1)


def _follow(handle: Any, every: float) -> dict[str, Any]:
    """Wait for the run, printing each new phase as Slack posts it in the run's thread (bot.slack.commands)."""
    from bot import learning
    from bot.store import Store

    phase = None
    while True:
        try:
            return handle.wait(every)
        except subprocess.TimeoutExpired:
            with Store(handle.settings.db_path) as store:
                now = (learning.get_run(store, handle.run_id) or {}).get("phase")
            if now and now != phase:
                phase = now
                click.echo(messages.RETRAIN_PHASE.format(phase=now))


@click.group("models")
def models_group() -> None:
    """Model versions: list them; see also `csbot promote` and `csbot rollback`.

    \b
    Example:
      csbot models list --json
    """


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def models_list(as_json: bool) -> None:
    """List model versions, newest first, with status and metrics (as `/csbot models`).

    \b
    Example:
      csbot models list
    """
    from bot import learning

    if as_json:
        click.echo(json.dumps(learning.models_list(settings()), indent=2, default=str))
        return
    run_admin("models")


@click.command()
@click.argument("version")
@friendly
def promote(version: str) -> None:
    """Make VERSION the active model (atomic; a running bot swaps it in without a restart).

    \b
    Example:
      csbot promote v0007
    """
    import shlex

    run_admin(f"promote {shlex.quote(version)}")


@click.command()
@friendly
def rollback() -> None:
    """Restore the previously active model version.

    \b
    Example:
      csbot rollback
    """
    run_admin("rollback")
