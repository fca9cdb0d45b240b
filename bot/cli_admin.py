"""``csbot status``, ``csbot stats`` and ``csbot review``: what the admins and agents look at.

Each command goes through ``bot.admin``, the code behind ``/csbot`` in Slack, so it prints
exactly what Slack shows: the learning loop at a glance, answer and feedback rates over a
period, and the review queue of 👎 answers and handoffs, with ``review label`` to label a
message as the Slack modal does.
"""

from __future__ import annotations

import json

import click

from bot.cli_common import friendly, run_admin, settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def status(as_json: bool) -> None:
    """Show the active model, its metrics, the last and the next retrain, the provider and 7-day feedback.

    \b
    Example:
      csbot status
    """
    from bot import learning

    if as_json:
        click.echo(json.dumps(learning.status(settings()), indent=2, default=str))
        return
    run_admin("status")


@click.command()
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 3650), help="The period, in days.")
@friendly
def stats(days: int) -> None:
    """Answer and handoff rates, 👍 share, top intents and most corrected intents (as `/csbot stats`).

    \b
    Example:
      csbot stats --days 30
    """
    run_admin(f"stats {days}")


@click.group(invoke_without_command=True)
@click.pass_context
def review(ctx: click.Context) -> None:
    """The review queue: 👎 answers and handoffs no agent has labelled yet, oldest first (as `/csbot review`).

    \b
    Examples:
      csbot review
      csbot review label 42 refund_status --note "asked about a refund"
    """
    if ctx.invoked_subcommand is None:
        friendly(run_admin)("review")


@review.command("label")
@click.argument("message_id", type=click.IntRange(min=1, max=2**63 - 1))  # beyond: SQLite cannot hold it
@click.argument("intent")
@click.option("--sentiment", type=click.Choice(["negative", "neutral", "positive"]), default=None)
@click.option("--note", default=None, help="A note for the team.")
@friendly
def review_label(message_id: int, intent: str, sentiment: str | None, note: str | None) -> None:
    """Label message MESSAGE_ID as INTENT (or `new-topic`), as the Slack modal does.

    \b
    Example:
      csbot review label 42 order_status --sentiment negative
    """
    from bot import admin
    from bot.knowledge import load_knowledge_base
    from bot.store import typed_intent

    cfg = settings()
    known = tuple(load_knowledge_base(cfg.kb_path).intents)
    chosen = typed_intent(intent)
    click.echo(admin.label(cfg, message_id, chosen, agent=None, sentiment=sentiment, note=note,
                           known_intents=known))
