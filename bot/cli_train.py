"""``csbot train``, ``csbot eval`` and ``csbot predict``: build a model, score it, and try it on a message.

``train`` and ``eval`` pass their arguments through to ``python -m training`` in a child
process, so this process, like the bot, never imports torch. ``predict`` loads a model with
onnxruntime (the serving path) and shows the intents, the sentiment and the routing decision
the bot would make for a message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from bot import messages
from bot.cli_common import PASS_THROUGH, friendly, settings
from models.errors import CsbotError, ModelDirError


@click.command(context_settings=PASS_THROUGH)
@click.pass_context
def train(ctx: click.Context) -> None:
    """Fine-tune and export a model (runs `python -m training train`; see `csbot train --help`).

    \b
    Example:
      csbot train --epochs 4
    """
    sys.exit(subprocess.call([sys.executable, "-m", "training", "train", *ctx.args], env=_child_env()))


@click.command("eval", context_settings=PASS_THROUGH)
@click.pass_context
def evaluate(ctx: click.Context) -> None:
    """Score a model and save a confusion matrix PNG (see `csbot eval --help`).

    \b
    Example:
      csbot eval var/b77 --data ../shared/data/banking77/test.csv   # a model that `csbot train --out var/b77` wrote
    """
    sys.exit(subprocess.call([sys.executable, "-m", "training", "eval", *ctx.args], env=_child_env()))


def _is_folder(name: str) -> bool:
    """Whether ``name`` is a folder; False for a name the file system refuses (too long, say)."""
    try:
        return Path(name).is_dir()
    except OSError:
        return False


def _child_env() -> dict[str, str]:
    return {**os.environ, "CSBOT_PROG_NAME": "csbot"}


@click.command()
@click.argument("text", nargs=-1, required=True)
@click.option("--model", default=None, help="A version name or model directory (default: the active one).")
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1),
              help="How many intents to show (the decision always weighs the top two).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@friendly
def predict(text: tuple[str, ...], model: str | None, top_k: int, as_json: bool) -> None:
    """Classify a message and show the routing decision.

    \b
    Example:
      csbot predict "where is my parcel??"
    """
    from bot.knowledge import load_knowledge_base
    from bot.normalize import normalize
    from bot.router import route
    from bot.service import valid_text
    from bot.store import Store
    from models.registry import Registry
    from models.runtime import Classifier

    cfg = settings()
    if model and _is_folder(model):
        path = Path(model)
    else:
        with Store(cfg.db_path) as store:
            registry = Registry(cfg.models_dir, store)
            version = model or registry.active()
            if version is None:
                raise CsbotError(messages.NO_ACTIVE_MODEL, messages.NO_ACTIVE_MODEL_FIX)
            path = registry.path(version)
    try:
        classifier = Classifier.load(path, provider=cfg.onnx_provider, variant=cfg.onnx_variant)
    except ModelDirError as exc:
        if not model:  # the active version: the registry's fix (promote, roll back, retrain) is the right one
            raise
        raise ModelDirError(exc.what, messages.PREDICT_MODEL_FIX) from exc
    message = normalize(valid_text(" ".join(text)), cfg.max_message_chars)
    # The router's close-call rule compares the top two, so ask for two even when one is shown.
    prediction = classifier.predict([message.text], top_k=max(top_k, 2))[0] if not message.empty else None
    thresholds = classifier.card.thresholds_for(classifier.variant)
    decision = route(message, prediction, load_knowledge_base(cfg.kb_path), thresholds)
    shown = prediction.intents[:top_k] if prediction else ()
    if as_json:
        click.echo(json.dumps({
            "model": classifier.version, "provider": classifier.provider, "decision": decision.decision,
            "reason": decision.reason, "detail": decision.detail,
            "intents": [{"intent": s.intent, "probability": round(s.probability, 4)}
                        for s in shown],
            "sentiment": prediction.sentiment if prediction else None,
            "sentiment_probs": prediction.sentiment_probs if prediction else None}, indent=2))
        return
    click.echo(messages.PREDICT_MODEL.format(version=classifier.version, device=classifier.device,
                                             provider=classifier.provider, variant=classifier.variant))
    if prediction:
        for score in shown:
            click.echo(messages.PREDICT_INTENT.format(intent=score.intent, probability=score.probability))
        sentiment = ", ".join(messages.PREDICT_SENTIMENT_PROBABILITY.format(sentiment=k, probability=v)
                              for k, v in prediction.sentiment_probs.items())
        click.echo(messages.PREDICT_SENTIMENT.format(sentiment=prediction.sentiment, probabilities=sentiment))
    click.echo(messages.PREDICT_DECISION.format(decision=decision.decision, reason=decision.reason,
                                                detail=decision.detail))
