"""``python -m training``: the training half of the CLI (``csbot train`` and ``csbot eval``
run these in a child process, so the bot's own process never imports torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bot import messages as bot_messages
from models import messages
from models.errors import CsbotError


def _fail(error: CsbotError) -> None:
    click.echo(f"{bot_messages.ERROR_PREFIX}{error}", err=True)
    sys.exit(1)


def _settings(default_level: str = "WARNING"):  # noqa: ANN202 - the bot's settings object
    """Load the settings and apply CSBOT_LOG_LEVEL (``default_level`` when unset), as every csbot command does."""
    from bot.config import apply_log_level, load_settings

    settings = load_settings()
    apply_log_level(settings.log_level or default_level)
    return settings


def _parse_set(items: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        if "=" not in item:
            raise CsbotError(messages.SET_NOT_KEY_VALUE.format(item=item), messages.SET_NOT_KEY_VALUE_FIX)
        key, raw = item.split("=", 1)
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


@click.group()
def main() -> None:
    """Train, export and evaluate csbot models (`csbot train`, `csbot eval` and the retrain job run these).

    \b
    Examples:
      python -m training train --epochs 4
      python -m training eval v0002
      python -m training retrain --force
    """


@main.command()
@click.option("--data", "data", multiple=True, type=click.Path(path_type=Path),
              help="CSV/TSV/JSONL/YAML file(s); default: the knowledge base.")
@click.option("--text-column", default=None, help="Name of the text column (default: detect).")
@click.option("--intent-column", default=None, help="Name of the intent column (default: detect).")
@click.option("--sentiment-column", default=None, help="Name of the sentiment column (default: detect).")
@click.option("--test-data", type=click.Path(path_type=Path), default=None, help="Held-out file to score.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write the model here instead of registering a new version in the data directory.")
@click.option("--base-model", default=None, help="Hugging Face id or local path (default: bundled MiniLM).")
@click.option("--epochs", type=int, default=None,
              help="Passes over the data (default: the recipe's). A small dataset gets more, up to 40, to reach "
                   "min_steps optimiser steps (--set min_steps=0 keeps this many); early stopping may end sooner "
                   "(--set patience=0 runs them all).")
@click.option("--set", "overrides", multiple=True, help="Any training option, e.g. --set lr_body=5e-5.")
@click.option("--activate/--no-activate", default=None,
              help="Make the new version active (default: only if none is active yet).")
def train(data: tuple[Path, ...], text_column: str | None, intent_column: str | None,
          sentiment_column: str | None, test_data: Path | None, out: Path | None, base_model: str | None,
          epochs: int | None, overrides: tuple[str, ...], activate: bool | None) -> None:
    """Fine-tune the intent + sentiment model and export it to ONNX.

    \b
    Examples:
      csbot train                                   # the knowledge base -> var/models/v000N
      csbot train --data ../shared/data/banking77/train.csv --intent-column category --out var/b77
      csbot train --epochs 5 --set lr_body=5e-5 --base-model sentence-transformers/all-MiniLM-L12-v2  # downloads it
    """
    try:
        from training.jobs import train_command

        train_command(_settings(), data, (text_column, intent_column, sentiment_column), test_data, out,
                      base_model, epochs, _parse_set(overrides), activate)
    except CsbotError as error:
        _fail(error)


@main.command("eval")
@click.argument("model", required=False)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Labelled file to score (default: the knowledge base's held-out examples).")
@click.option("--text-column", default=None, help="Name of the text column (default: detect).")
@click.option("--intent-column", default=None, help="Name of the intent column (default: detect).")
@click.option("--report", type=click.Path(path_type=Path), default=None,
              help="Folder for report.json and confusion.png (default: <model>/eval).")
def evaluate(model: str | None, data: Path | None, text_column: str | None, intent_column: str | None,
             report: Path | None) -> None:
    """Score a model (a version such as v0002, or a model directory): accuracy, macro-F1, per-intent F1,
    and a confusion-matrix PNG.

    \b
    Examples:
      csbot eval                                    # the active model on the knowledge base's test split
      csbot eval v0002                              # another version, on the same split
      csbot eval var/b77 --data ../shared/data/banking77/test.csv   # the model `csbot train --out var/b77` wrote
    """
    try:
        from training.data import Columns
        from training.jobs import eval_command

        eval_command(_settings(), model, data, Columns(text=text_column, intent=intent_column), report)
    except CsbotError as error:
        _fail(error)


from training.retrain_cli import retrain  # noqa: E402

main.add_command(retrain)
