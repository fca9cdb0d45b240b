"""What ``csbot train`` and ``csbot eval`` do, as plain functions (the CLI only parses)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np

from bot import messages as bot_messages
from models import messages, modeldir
from models.errors import ConfigError, DataError, RegistryError
from models.registry import Registry
from training.config import DEFAULT_BASE_MODEL, TrainConfig
from training.data import Columns, Example, knowledge_base_examples, load_examples, run_columns
from training.evaluate import classification_report, save_confusion_png


def _store_and_registry(settings: Any) -> tuple[Any, Registry]:
    from bot.store import Store

    store = Store(settings.db_path)
    return store, Registry(settings.models_dir, store)


def _load_kb(settings: Any) -> Any:
    return _load_kb_file(settings.kb_path)


def _load_kb_file(path: Path | None) -> Any:
    from bot.knowledge import load_knowledge_base

    return load_knowledge_base(path)


def train_command(settings: Any, data: tuple[Path, ...], column_names: tuple[str | None, ...],
                  test_data: Path | None, out: Path | None, base_model: str | None, epochs: int | None,
                  overrides: dict[str, object], activate: bool | None) -> None:
    # One reading of numeric sentiment codes for the training and the test files together.
    columns = run_columns([*data, *([test_data] if test_data else [])], Columns(*column_names))
    calibration: list[Example] = []
    if data:
        examples: list[Example] = []
        test: list[Example] = []
        for path in data:
            if path.suffix.lower() in (".yaml", ".yml"):
                # A knowledge base given as --data trains on its training split; its held-out split scores the model.
                kb = _load_kb_file(path)
                examples += knowledge_base_examples(kb, "train")
                test += knowledge_base_examples(kb, "test")
            else:
                examples += load_examples(path, columns)
        if test:
            click.echo(messages.TRAIN_KB_HELD_OUT.format(test=len(test)))
    else:
        kb = _load_kb(settings)
        # On the knowledge base, its held-out examples are also what the nightly retrain fits the
        # router's thresholds on (its fixed evaluation set), so the first model is fitted the same way.
        examples, test = knowledge_base_examples(kb, "train"), knowledge_base_examples(kb, "test")
        calibration = test
        click.echo(messages.TRAIN_ON_KB.format(path=kb.path, intents=len(kb.intents), train=len(examples),
                                               test=len(test)))
    if test_data:  # scores the model instead of the knowledge base's held-out examples, when given
        test = load_examples(test_data, columns)
        unknown = sorted({e.intent for e in test if e.intent} - {e.intent for e in examples if e.intent})
        if unknown:  # they would be left out of the test score without a word
            raise DataError(messages.TEST_INTENTS_UNKNOWN.format(count=len(unknown), path=test_data,
                                                                 intents=", ".join(unknown[:8])),
                            messages.TEST_INTENTS_UNKNOWN_FIX)
    # The settings' base model, then `--set key=value`, then the dedicated flags, later winning.
    # `is not None`: --epochs 0 or --base-model "" must reach TrainConfig's checks, not be dropped.
    options: dict[str, object] = {"base_model": settings.base_model or DEFAULT_BASE_MODEL, **overrides}
    if base_model is not None:
        options["base_model"] = base_model
    if epochs is not None:
        options["epochs"] = epochs
    config = TrainConfig().replace(**options)
    store, registry = _store_and_registry(settings)
    with _training_lock(store, registered=out is None):
        from bot import learning

        dest = out or registry.root / registry.next_version(learning.used_versions(store))
        from training.pipeline import build_model

        card = build_model(examples, config, dest, version=dest.name, test_examples=test, calibration=calibration)
        _register_trained(store, registry, card, out, activate)


@contextlib.contextmanager
def _training_lock(store: Any, registered: bool) -> Iterator[None]:
    """Hold the retrain lock while a version for the registry is trained: a nightly retrain at the same
    time would pick the same version number, and two trainings on 2 cores take twice as long each."""
    if not registered:  # --out: a folder outside the registry, nobody else writes there
        yield
        return
    from bot import learning

    owner = f"train:{learning.hostname()}:{os.getpid()}"
    if not learning.acquire_lock(store, owner):
        holder = learning.lock_holder(store) or {}
        raise RegistryError(bot_messages.TRAIN_LOCKED.format(owner=holder.get("owner"), host=holder.get("host"),
                                                             since=holder.get("acquired_at")),
                            bot_messages.TRAIN_LOCKED_FIX)
    try:
        with learning.Heartbeat(store, owner, learning.system_clock):
            yield
    finally:
        learning.release_lock(store, owner)


def _register_trained(store: Any, registry: Registry, card: modeldir.ModelCard, out: Path | None,
                      activate: bool | None) -> None:
    dest = card.path
    val, tst = card.metrics["validation"], card.metrics.get("test", {})
    held_out = ""
    if tst.get("accuracy") is not None:
        held_out += messages.TRAINED_TEST.format(accuracy=tst["accuracy"], macro_f1=tst["macro_f1"])
    if tst.get("sentiment_accuracy") is not None:
        held_out += messages.TRAINED_TEST_SENTIMENT.format(accuracy=tst["sentiment_accuracy"])
    validation = (messages.TRAINED_VALIDATION.format(accuracy=val["accuracy"]) if val.get("accuracy") is not None
                  else messages.TRAINED_NO_VALIDATION)
    click.echo(messages.TRAINED.format(path=dest, validation=validation, held_out=held_out,
                                       minutes=card.metrics["train_seconds"] / 60))
    if out is None:
        register_version(store, card, status="candidate")
        if activate or (activate is None and registry.active() is None):
            from bot import learning

            # The pointer and the statuses in one transaction, with who did it: as promote and the retrain do.
            learning._set_active(store, registry, card.version, bot_messages.REASON_TRAINED)
            click.echo(messages.TRAINED_ACTIVE.format(version=card.version))


def register_version(store: Any, card: modeldir.ModelCard, status: str, reason: str = "") -> None:
    from bot.store import utcnow

    headline = {k: card.metrics.get(k, {}).get("accuracy") for k in ("validation", "test")}
    store.db["model_versions"].upsert({
        "version": card.version, "path": str(card.path), "status": status, "created_at": utcnow(),
        "metrics_json": json.dumps(headline), "manifest_hash": card.data_hash, "reason": reason,
    }, pk="version")


def eval_command(settings: Any, model: str | None, data: Path | None, columns: Columns,
                 report_dir: Path | None) -> None:
    from models.runtime import Classifier

    path = model_path(settings, model)
    classifier = Classifier.load(path, provider=settings.onnx_provider, variant=settings.onnx_variant)
    if data:
        examples = [e for e in load_examples(data, columns) if e.intent]
    else:
        examples = [e for e in knowledge_base_examples(_load_kb(settings), "test") if e.intent]
    if not examples:
        raise DataError(messages.EVAL_NO_EXAMPLES.format(source=data or messages.EVAL_SOURCE_KB),
                        messages.EVAL_NO_EXAMPLES_FIX)
    unknown = sorted({e.intent for e in examples} - set(classifier.intents))  # type: ignore[arg-type]
    if unknown:
        raise DataError(messages.EVAL_INTENTS_UNKNOWN.format(count=len(unknown), version=classifier.version,
                                                             intents=", ".join(unknown[:8])),
                        messages.EVAL_INTENTS_UNKNOWN_FIX)
    index = {name: i for i, name in enumerate(classifier.intents)}
    logits = np.concatenate([classifier.logits([e.text for e in examples[i : i + 64]])[0]
                             for i in range(0, len(examples), 64)])
    gold = [index[e.intent] for e in examples]  # type: ignore[index]
    report = classification_report(gold, logits.argmax(-1), list(classifier.intents))
    report_dir = report_dir or path / "eval"
    title = messages.EVAL_CHART_TITLE.format(version=classifier.version,
                                             data=data.name if data else messages.EVAL_CHART_KB)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        png = save_confusion_png(report["confusion"], classifier.intents, report_dir / "confusion.png", title=title)
        (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    except OSError as exc:  # a file where the folder should be, a read-only model folder
        raise ConfigError(messages.OUTPUT_NOT_WRITABLE.format(path=report_dir, error=exc.strerror or exc),
                          messages.OUTPUT_NOT_WRITABLE_FIX.format(option="--report")) from exc
    click.echo(messages.EVAL_SUMMARY.format(version=classifier.version, device=classifier.device,
                                            variant=classifier.variant, samples=report["samples"],
                                            accuracy=report["accuracy"], macro_f1=report["macro_f1"]))
    worst = sorted(report["per_label"].items(), key=lambda kv: kv[1]["f1"])[:10]
    click.echo(messages.EVAL_WORST_HEADER)
    for name, row in worst:
        click.echo(messages.EVAL_WORST_ROW.format(intent=name, f1=row["f1"], support=row["support"]))
    if report["confused_pairs"]:
        click.echo(messages.EVAL_CONFUSED_HEADER)
        for pair in report["confused_pairs"]:
            click.echo(messages.EVAL_CONFUSED_ROW.format(a=pair["a"], b=pair["b"], count=pair["count"]))
    click.echo(messages.EVAL_FILES.format(png=png, report=report_dir / "report.json"))


def model_path(settings: Any, model: str | None) -> Path:
    """A model directory: ``model`` if it is one, else that version (default: the active one) of the registry."""
    if model and Path(model).is_dir():
        return Path(model)
    store, registry = _store_and_registry(settings)
    version = model or registry.active()
    if version is None:
        raise DataError(bot_messages.NO_ACTIVE_MODEL, bot_messages.NO_ACTIVE_MODEL_FIX)
    return registry.path(version)
