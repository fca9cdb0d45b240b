"""``csbot kb check`` and ``csbot db purge|backup``: tools for the data csbot keeps.

``kb check`` validates a knowledge-base YAML file and lists every problem with its line.
``db purge`` blanks the text of old messages for retention (labelled corrections are kept, they
are training data) and ``db backup`` copies the live database with SQLite's online backup.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot import messages
from bot.cli_common import friendly, settings
from models.errors import CsbotError


@click.group()
def kb() -> None:
    """Knowledge-base tools.

    \b
    Example:
      csbot kb check my-company.yaml
    """


@kb.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@friendly
def kb_check(path: Path | None) -> None:
    """Validate a knowledge-base YAML file and list every problem with its line.

    \b
    Example:
      csbot kb check bot/kb/default.yaml
    """
    from bot.knowledge import load_knowledge_base

    base = load_knowledge_base(path or settings().kb_path)
    examples = sum(len(i.examples) for i in base.intents.values())
    sentiments = sum(len(v) for v in base.sentiment_examples.values())
    click.echo(messages.KB_OK.format(path=base.path, company=base.company.name, intents=len(base.intents),
                                     examples=examples, sentiments=sentiments))


@click.group()
def db() -> None:
    """Database maintenance: retention and backups.

    \b
    Examples:
      csbot db purge --older-than 90d
      csbot db backup backups/csbot.db
    """


def _existing_db(action: str) -> Path:
    """The database path, refused when there is no file: a Store would create and migrate an empty one, so a
    mistyped CSBOT_DATA_DIR gave an empty "backup" (or a purge of nothing) that reported success."""
    db_path = settings().db_path
    if not db_path.is_file():
        raise CsbotError(messages.DB_MISSING.format(path=db_path, action=action), messages.DB_MISSING_FIX)
    return db_path


@db.command("purge")
@click.option("--older-than", required=True, help="Age such as 90d, 12w or 48h.")
@click.option("--include-unreviewed", is_flag=True,
              help="Also blank messages still waiting in the review queue (they leave the queue).")
@friendly
def db_purge(older_than: str, include_unreviewed: bool) -> None:
    """Blank the text of old messages; labelled corrections, and messages waiting in the review
    queue, are kept. Purged 👍-rated answers no longer train the model (the output counts them).

    \b
    Example:
      csbot db purge --older-than 90d
      csbot db purge --older-than 90d --include-unreviewed
    """
    from bot.store import Store, parse_age

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise CsbotError(messages.PURGE_AGE_INVALID.format(value=older_than, error=exc),
                         messages.PURGE_AGE_INVALID_FIX) from exc
    with Store(_existing_db("purge")) as store:
        counts = store.purge(age, include_unreviewed=include_unreviewed)
    click.echo(messages.PURGED.format(older_than=older_than, **counts))
    if counts["awaiting_review"]:
        click.echo((messages.PURGED_UNREVIEWED if include_unreviewed else messages.PURGE_KEPT_UNREVIEWED)
                   .format(count=counts["awaiting_review"]))
    if counts["rated_up"]:
        click.echo(messages.PURGED_RATED_UP.format(count=counts["rated_up"]))


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))  # "" and folders: said so
@friendly
def db_backup(path: Path) -> None:
    """Copy the database with SQLite's online backup (safe while the bot runs).

    \b
    Example:
      csbot db backup backups/csbot-2026-11-28.db
    """
    from bot.store import Store

    if path == Path("."):  # `csbot db backup ""`: click lets the empty name through, and "." "already exists"
        raise CsbotError(messages.BACKUP_NO_NAME, messages.BACKUP_NO_NAME_FIX)
    with Store(_existing_db("back up")) as store:
        try:
            dest = store.backup(path)
        except FileExistsError as exc:
            raise CsbotError(messages.BACKUP_EXISTS.format(path=path), messages.BACKUP_EXISTS_FIX) from exc
    click.echo(messages.BACKED_UP.format(path=dest))
