"""Training on a tiny random BERT: the run, its logs, the checked ONNX export, and the model directory."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import INTENT_DATA, tiny_examples

from models import modeldir
from models.errors import ConfigError, DataError, ExportError
from models.runtime import Classifier
from training.config import TrainConfig
from training.data import Example, manifest
from training.export import export_checked, run_torch
from training.finetune import TrainResult, train
from training.int8kernel import int8_matmul_saturates
from training.pipeline import _write, build_model

PROBE_TEXTS = ["where is my order", "i want a refund", "forgot my password", "this is terrible",
               "great service, thanks a lot", "zzz unknown words qqq", "ok"]


@dataclass
class Trained:
    result: TrainResult
    log_dir: Path
    model_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_config: TrainConfig) -> Trained:
    """A short run kept in memory (the PyTorch model) and written as a model directory."""
    root = tmp_path_factory.mktemp("train")
    config = tiny_config.replace(epochs=3, min_steps=0)
    examples = tiny_examples()
    result = train(examples, config, log_dir=root / "logs", progress=False)
    staging = root / "staging"
    staging.mkdir()
    _write(result, staging, root / "model", "t-1", [], manifest(examples), progress=False)
    return Trained(result, root / "logs", root / "model")


# --- config

def test_config_rejects_a_bad_field_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(epochs=0)
    assert "Training option epochs=0 is invalid" in info.value.what
    assert "set epochs to an integer from 1 to 100" in info.value.fix
    with pytest.raises(ConfigError, match="device='tpu'"):
        TrainConfig(device="tpu")
    with pytest.raises(ConfigError, match="lr_body=2.0"):
        TrainConfig().replace(lr_body=2.0)


def test_config_rejects_a_wrong_type_naming_it() -> None:
    with pytest.raises(ConfigError, match="epochs='three' is invalid: it should be an integer"):
        TrainConfig(epochs="three")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lr_head=None"):
        TrainConfig.from_dict({"lr_head": None})
    assert isinstance(TrainConfig(warmup_ratio=0).warmup_ratio, float)  # an integer is a fine number


def test_config_from_dict_unknown_key_and_round_trip(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict({"epochs": 2, "learning_rate": 0.1})
    assert "Unknown training option(s): learning_rate" in info.value.what
    assert "lr_body" in info.value.fix
    config = TrainConfig(epochs=5, freeze_encoder=True)
    config.save(tmp_path / "c.json")
    assert TrainConfig.from_dict(json.loads((tmp_path / "c.json").read_text())) == config


def test_unknown_base_model_is_a_config_error(tmp_path: Path, tiny_config: TrainConfig) -> None:
    config = tiny_config.replace(base_model=str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match="Cannot load the base model") as info:
        train(tiny_examples(), config, progress=False)
    assert "local folder with config.json" in info.value.fix


def test_untrainable_data_fails_before_any_work(tmp_path: Path, tiny_config: TrainConfig) -> None:
    with pytest.raises(DataError, match="The dataset is empty"):
        build_model([], tiny_config, tmp_path / "m", progress=False)
    single = [Example(t, "track_order") for t in INTENT_DATA["track_order"]] + [Example("money back", "refund")]
    with pytest.raises(DataError, match="'refund' \\(1\\)"):
        build_model(single, tiny_config, tmp_path / "m", progress=False)
    assert list(tmp_path.iterdir()) == []  # the staging folder is cleaned up
    (tmp_path / "taken").mkdir()
    with pytest.raises(modeldir.ModelDirError, match="taken already exists"):
        build_model(tiny_examples(), tiny_config, tmp_path / "taken", progress=False)


# --- the run

def test_training_records_history_and_metrics_jsonl(trained: Trained) -> None:
    history = trained.result.history
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(np.isfinite(row["train_loss"]) and "val_intent_accuracy" in row for row in history)
    logged = [json.loads(line) for line in (trained.log_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in logged] == [1, 2, 3]
    assert logged[0]["train_loss"] == pytest.approx(history[0]["train_loss"])
    assert trained.result.intents == sorted(INTENT_DATA)
    assert 1 <= trained.result.best_epoch <= 3
    assert len(trained.result.train_examples) + len(trained.result.val_examples) == len(tiny_examples())


def test_epochs_raised_for_a_small_dataset_are_said(tiny_config: TrainConfig, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    # The tiny data is a few batches an epoch: min_steps=8 needs more passes than the one asked for.
    result = train(tiny_examples(), tiny_config.replace(epochs=1, min_steps=8, patience=0), progress=True)
    epochs = len(result.history)
    assert epochs > 1
    out = capsys.readouterr()
    said = out.out + out.err
    assert f"Training up to {epochs} epochs rather than 1:" in said and "--set min_steps=0" in said


def test_training_is_seeded(tiny_config: TrainConfig, trained: Trained) -> None:
    again = train(tiny_examples(), trained.result.config, progress=False)
    assert [row["train_loss"] for row in again.history] == pytest.approx(
        [row["train_loss"] for row in trained.result.history], rel=1e-5)
    assert again.val_examples == trained.result.val_examples


def test_export_parity_recorded_in_metrics(trained: Trained) -> None:
    metrics = json.loads((trained.model_dir / "metrics.json").read_text())
    fp32 = metrics["parity"]["fp32"]
    assert fp32["max_abs_diff"] <= 1e-3
    assert fp32["intent_top1_agreement"] == 1.0
    assert fp32["samples"] == len(trained.result.val_examples)
    assert metrics["parity"]["checked_on"] == "held-out"
    assert metrics["history"] == trained.result.history
    assert metrics["data"]["hash"] == manifest(tiny_examples())["hash"]



def test_export_checks_the_held_out_calibration_messages_too(trained: Trained, tmp_path: Path) -> None:
    """The retrain's fixed evaluation set is unseen data: the int8 check reads it beside the validation split,
    since seen messages are ones the model is sure of and flatter the int8 graph."""
    calibration = [Example(f"calibration message {i}", intent="refund") for i in range(7)]
    staging = tmp_path / "staging"
    staging.mkdir()
    _write(trained.result, staging, tmp_path / "model", "t-2", [], manifest(tiny_examples()), progress=False,
           calibration=calibration)
    parity = json.loads((tmp_path / "model" / "metrics.json").read_text())["parity"]
    assert parity["checked_on"] == "held-out"
    assert parity["fp32"]["samples"] == len(trained.result.val_examples) + len(calibration)

def test_onnx_runtime_predictions_equal_pytorch(trained: Trained) -> None:
    result = trained.result
    intent_t, sentiment_t, embedding_t = run_torch(result.model, result.tokenizer, PROBE_TEXTS,
                                                   result.config.max_length)
    classifier = Classifier.load(trained.model_dir, provider="cpu")
    intent_o, sentiment_o, embedding_o = classifier.logits(PROBE_TEXTS)
    np.testing.assert_allclose(intent_o, intent_t, atol=1e-3)
    np.testing.assert_allclose(sentiment_o, sentiment_t, atol=1e-3)
    np.testing.assert_allclose(embedding_o, embedding_t, atol=1e-3)
    assert (intent_o.argmax(-1) == intent_t.argmax(-1)).all()
    predictions = classifier.predict(PROBE_TEXTS, top_k=1)
    assert [p.top.intent for p in predictions] == [result.intents[i] for i in intent_t.argmax(-1)]


def test_export_that_fails_parity_is_refused(trained: Trained, tmp_path: Path) -> None:
    result = trained.result
    with pytest.raises(ExportError) as info:
        export_checked(result.model, result.tokenizer, tmp_path, PROBE_TEXTS, result.config.max_length,
                       max_abs_diff=-1.0, int8=False)
    assert "disagrees with PyTorch" in info.value.what and "was not saved" in info.value.what
    assert list(tmp_path.iterdir()) == []


def test_int8_graph_must_keep_the_sentiment_answers_where_asked(trained: Trained, tmp_path: Path) -> None:
    result = trained.result

    def int8_report(folder: str, **limits: float | None) -> dict:
        out = tmp_path / folder
        out.mkdir()
        report = export_checked(result.model, result.tokenizer, out, PROBE_TEXTS, result.config.max_length,
                                **limits)["int8"]
        assert report["kept"] == (out / "model.int8.onnx").is_file()
        assert report["weight_bits"] == 8 and report["cpu_kernel_saturates"] == int8_matmul_saturates()
        return report

    # The intent limit alone (0: any graph passes) keeps the int8 graph, whatever its sentiment answers...
    assert int8_report("intent-only", min_agreement=0.0)["kept"]
    # ...and a sentiment limit no graph can meet refuses it, naming the head that failed.
    refused = int8_report("with-sentiment", min_agreement=0.0, min_sentiment_agreement=1.01)
    assert not refused["kept"] and refused["refused_on"] == "sentiment"
    assert refused["required_sentiment_agreement"] == 1.01


# --- the model directory

def test_model_dir_is_self_describing(trained: Trained) -> None:
    card = modeldir.read(trained.model_dir)
    for name in (*modeldir.REQUIRED_FILES, modeldir.MANIFEST_FILE):
        assert (trained.model_dir / name).is_file(), name
    manifest_data = json.loads((trained.model_dir / modeldir.MANIFEST_FILE).read_text())
    assert set(modeldir.REQUIRED_FILES) <= set(manifest_data["files"])
    assert manifest_data["packages"]["torch"] == importlib.metadata.version("torch")
    assert manifest_data["packages"]["onnxruntime-gpu"] == importlib.metadata.version("onnxruntime-gpu")
    assert card.version == "t-1" and card.intents == tuple(sorted(INTENT_DATA))
    assert card.sentiments == ("negative", "neutral", "positive")
    assert card.max_length == 16 and card.data_hash == manifest(tiny_examples())["hash"]
    saved = TrainConfig.from_dict(json.loads((trained.model_dir / modeldir.CONFIG_FILE).read_text()))
    assert saved == trained.result.config


def test_model_dir_round_trips_through_a_copy(tiny_model: Path, tmp_path: Path) -> None:
    card = modeldir.read(tiny_model)
    copy = tmp_path / "elsewhere" / "model"
    modeldir.copy_model_dir(tiny_model, copy)
    copied = modeldir.read(copy)
    assert (copied.version, copied.intents, copied.thresholds, copied.data_hash) == (
        card.version, card.intents, card.thresholds, card.data_hash)
    assert copied.path == copy
    a, b = Classifier.load(tiny_model, provider="cpu"), Classifier.load(copy, provider="cpu")
    np.testing.assert_array_equal(a.logits(PROBE_TEXTS)[0], b.logits(PROBE_TEXTS)[0])
    updated = modeldir.update_manifest(copy, thresholds={**card.thresholds, "answer_min": 0.42})
    assert updated.thresholds["answer_min"] == 0.42
    assert modeldir.read(copy).thresholds["answer_min"] == 0.42
    assert modeldir.read(tiny_model).thresholds == card.thresholds


def test_finalize_refuses_incomplete_or_existing(tmp_path: Path, tiny_model: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.onnx").write_bytes(b"x")
    with pytest.raises(modeldir.ModelDirError, match="missing tokenizer.json, labels.json"):
        modeldir.finalize(staging, tmp_path / "dest", version="v1", max_length=8, base_model="b", data_hash="h",
                          packages={})
    # A complete staging folder whose destination already exists: refused, and the existing model is untouched.
    complete = tmp_path / "complete"
    modeldir.copy_model_dir(tiny_model, complete)
    (complete / modeldir.MANIFEST_FILE).unlink()
    existing = tmp_path / "existing"
    modeldir.copy_model_dir(tiny_model, existing)
    before = modeldir.read(existing)
    with pytest.raises(modeldir.ModelDirError, match="already exists") as exists:
        modeldir.finalize(complete, existing, version="v1", max_length=8, base_model="b", data_hash="h",
                          packages={})
    assert "pick a new version name or delete the old folder" in exists.value.fix
    assert modeldir.read(existing) == before and complete.is_dir()
    with pytest.raises(modeldir.ModelDirError, match="format_version"):
        copy = tmp_path / "old"
        modeldir.copy_model_dir(tiny_model, copy)
        modeldir.update_manifest(copy, format_version=99)


# --- the CLI: errors, never tracebacks

def test_cli_train_on_an_empty_file_says_error_without_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    env = {**os.environ, "CSBOT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, "-m", "training", "train", "--data", "empty.csv", "--out", "X"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Error: Dataset empty.csv is empty" in proc.stderr
    assert "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "X").exists()


def test_cli_train_bad_option_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.cli import main

    data = tmp_path / "d.csv"
    data.write_text("text,intent\n" + "".join(f"{t},{i}\n" for i, ts in INTENT_DATA.items() for t in ts))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--set", "epochs=three"])
    assert result.exit_code == 1
    assert "Error: Training option epochs='three' is invalid" in result.output
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--set", "epoch=3"])
    assert result.exit_code == 1 and "Unknown training option(s): epoch" in result.output
    # --set may name any option the flags also set (it used to crash with a TypeError).
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--set", f"base_model={tmp_path}/nope"])
    assert result.exit_code == 1 and f"Cannot load the base model '{tmp_path}/nope'" in result.output
    assert "(folder): there is no such folder" in result.output  # not transformers' "Repo id must be in the form"
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--intent-column", "nope"])
    assert result.exit_code == 1 and "Column 'nope' (the intent column)" in result.output
    # Test rows whose intent the model will not learn would be left out of its score without a word.
    test = tmp_path / "t.csv"
    test.write_text("text,intent\nhello there,greeting\nwhere is it,track_order\n")
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--test-data", str(test)])
    assert result.exit_code == 1 and f"1 intent(s) in {test} are not in the training data: greeting" in result.output
    assert "remove those rows from --test-data" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # --epochs 0 and --base-model "" reach TrainConfig's checks (they were dropped as falsy, and the run went on
    # with the defaults).
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--epochs", "0"])
    assert result.exit_code == 1 and "Error: Training option epochs=0 is invalid" in result.output
    result = runner.invoke(main, ["train", "--data", str(data), "--out", "X", "--base-model", ""])
    assert result.exit_code == 1 and "Error: Training option base_model='' is invalid" in result.output
    # --test-data without --data scores the knowledge base's model on that file: so it is read (and checked).
    result = runner.invoke(main, ["train", "--test-data", str(tmp_path / "missing.csv"), "--out", "X"])
    assert result.exit_code == 1 and f"Dataset {tmp_path / 'missing.csv'} does not exist" in result.output
    assert not (tmp_path / "X").exists()
    # An --out that cannot be written (a file where a folder should be) is said before any training.
    (tmp_path / "afile").write_text("")
    result = runner.invoke(main, ["train", "--data", str(data), "--out", str(tmp_path / "afile" / "X")])
    assert result.exit_code == 1 and f"Error: Cannot write to {tmp_path / 'afile'}" in result.output
    assert "pass --out with a folder you can write to" in result.output and "epoch" not in result.output


def test_cli_eval_writes_report_and_confusion_png(tiny_model: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from training.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    data = tmp_path / "test.csv"
    data.write_text("text,intent\n" + "".join(f"{t},{i}\n" for i, ts in INTENT_DATA.items() for t in ts))
    runner = CliRunner()
    result = runner.invoke(main, ["eval", str(tiny_model), "--data", str(data), "--report", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert f"Model tiny-v1 (CPU, fp32) on {sum(map(len, INTENT_DATA.values()))} examples: accuracy" in result.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["per_label"]) == set(INTENT_DATA)  # every intent of the data is scored
    assert report["macro_f1"] == pytest.approx(np.mean([v["f1"] for v in report["per_label"].values()]))
    assert report["accuracy"] == pytest.approx(np.trace(np.array(report["confusion"])) / 24)
    assert np.array(report["confusion"]).sum() == report["samples"] == 24
    assert (tmp_path / "rep" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("text,intent\nhi,greeting\n")
    result = runner.invoke(main, ["eval", str(tiny_model), "--data", str(unknown)])
    assert result.exit_code == 1 and "1 intent(s) in the data are unknown to model tiny-v1: greeting" in result.output
    result = runner.invoke(main, ["eval"])
    assert result.exit_code == 1 and "Error: There is no active model yet." in result.output
    # A header the loader cannot guess: the error's fix names --text-column, which eval has too.
    odd = tmp_path / "odd.csv"
    odd.write_text("said,category\n" + "".join(f"{t},{i}\n" for i, ts in INTENT_DATA.items() for t in ts))
    result = runner.invoke(main, ["eval", str(tiny_model), "--data", str(odd)])
    assert result.exit_code == 1 and "--text-column" in result.output
    result = runner.invoke(main, ["eval", str(tiny_model), "--data", str(odd), "--text-column", "said",
                                  "--intent-column", "category", "--report", str(tmp_path / "rep2")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "rep2" / "report.json").read_text())["samples"] == 24
    # A report folder that cannot be made: a clear error naming --report, not a FileExistsError traceback.
    result = runner.invoke(main, ["eval", str(tiny_model), "--data", str(data), "--report", str(data)])
    assert result.exit_code == 1 and f"Error: Cannot write to {data}" in result.output
    assert "pass --report with a folder you can write to" in result.output


# --- the cosine intent head

def test_cosine_head_trains_and_exports_with_parity(tiny_config: TrainConfig, tmp_path: Path) -> None:
    config = tiny_config.replace(epochs=3, cosine_scale=16.0, cosine_margin=0.1)
    examples = tiny_examples()
    result = train(examples, config, progress=False)
    from models.network import CosineHead

    assert isinstance(result.model.intent_head, CosineHead)
    intent_t, _, _ = run_torch(result.model, result.tokenizer, PROBE_TEXTS, config.max_length)
    # Logits are scale * cosine, so they can never leave [-scale, scale].
    assert np.abs(intent_t).max() <= 16.0 + 1e-4
    staging = tmp_path / "staging"
    staging.mkdir()
    _write(result, staging, tmp_path / "model", "cos-1", [], manifest(examples), progress=False)
    intent_o, _, _ = Classifier.load(tmp_path / "model", provider="cpu").logits(PROBE_TEXTS)
    np.testing.assert_allclose(intent_o, intent_t, atol=1e-3)
    assert json.loads((tmp_path / "model" / "training_config.json").read_text())["cosine_scale"] == 16.0


def test_margin_lowers_only_the_true_class_logit() -> None:
    import torch

    from training.finetune import masked_loss

    logits = torch.tensor([[2.0, 1.0, 0.0]])
    labels, weight = torch.tensor([0]), torch.tensor([1.0])
    plain = masked_loss(logits, labels, weight, 0.0)
    with_margin = masked_loss(logits, labels, weight, 0.0, margin=1.0)
    expected = torch.nn.functional.cross_entropy(torch.tensor([[1.0, 1.0, 0.0]]), labels)
    assert float(with_margin) == pytest.approx(float(expected))
    assert float(with_margin) > float(plain)


def test_cosine_margin_without_cosine_head_is_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(cosine_scale=0.0, cosine_margin=0.2)
    assert "cosine_margin" in info.value.what


def test_cli_train_on_the_knowledge_base_fits_thresholds_on_its_held_out_examples(
        tiny_kb_path: Path, tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CSBOT_KB_PATH", str(tiny_kb_path))
    monkeypatch.setenv("CSBOT_BASE_MODEL", str(tiny_base))
    tiny = ["epochs=2", "batch_size=8", "max_length=16", "threads=1", "export_int8=false", "min_steps=0"]
    result = CliRunner().invoke(main, ["train", *[a for s in tiny for a in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert "Version v0001 is now active." in result.output
    card = modeldir.read(tmp_path / "data" / "models" / "v0001")
    validation, test = card.metrics["validation"], card.metrics["test"]
    # The knowledge base's held-out examples are scored as the test set and also calibrate the router.
    assert validation["thresholds_fitted_on"] == validation["samples"] + test["samples"]
    assert "clarify_pair_min" in card.thresholds
    # While a retrain holds the lock, `csbot train` into the registry refuses (it would take the same
    # version number) and says how to proceed; the lock is untouched, and afterwards it trains again.
    from bot import learning
    from bot.store import Store

    with Store(tmp_path / "data" / "csbot.db") as store:
        assert learning.acquire_lock(store, "run:7")
        blocked = CliRunner().invoke(main, ["train", *[a for s in tiny for a in ("--set", s)]])
        assert blocked.exit_code == 1 and "Another training holds the lock (run:7" in blocked.output
        assert "--out DIR" in blocked.output and not (tmp_path / "data" / "models" / "v0002").exists()
        assert learning.lock_holder(store)["owner"] == "run:7"
        learning.release_lock(store, "run:7")
        again = CliRunner().invoke(main, ["train", *[a for s in tiny for a in ("--set", s)]])
        assert again.exit_code == 0 and (tmp_path / "data" / "models" / "v0002").is_dir()
        assert learning.lock_holder(store) is None  # released when it finished
    # The same knowledge base given as --data: its held-out examples score the model (they were dropped).
    named = CliRunner().invoke(main, ["train", "--data", str(tiny_kb_path), "--out", "kb-model",
                                      *[a for s in tiny for a in ("--set", s)]])
    assert named.exit_code == 0, named.output
    from bot.knowledge import load_knowledge_base
    from training.data import knowledge_base_examples

    held_out = len(knowledge_base_examples(load_knowledge_base(tiny_kb_path), "test"))
    assert f"The knowledge base's {held_out} held-out examples score the model" in named.output
    assert modeldir.read(tmp_path / "kb-model").metrics["test"]["samples"] == test["samples"]


def test_the_int8_variant_gets_thresholds_fitted_on_its_own_probabilities(tiny_config: TrainConfig,
                                                                          tmp_path: Path) -> None:
    """CPU serves int8 by default, so its router thresholds come from int8 probabilities, not fp32's."""
    from conftest import tiny_kb_yaml

    from bot.knowledge import load_knowledge_base
    from bot.service import Bot, Incoming
    from bot.store import Store
    from models.runtime import Classifier, LiveClassifier
    from training.pipeline import build_model

    test = tiny_examples()[:12]
    card = build_model(tiny_examples(), tiny_config.replace(export_int8=True), tmp_path / "m", version="m",
                       progress=False, test_examples=test)
    assert "int8" in card.variants and set(card.variant_thresholds) == {"int8"}
    # The test accuracy is reported for the int8 graph too: it is what CPU users are served.
    int8_top1 = [p.top.intent for p in Classifier.load(card.path, provider="cpu", variant="int8")
                 .predict([e.text for e in test])]
    assert card.metrics["test_int8"]["samples"] == len(test)
    assert card.metrics["test_int8"]["accuracy"] == pytest.approx(
        sum(g == e.intent for g, e in zip(int8_top1, test, strict=True)) / len(test))
    assert modeldir.read(card.path).variant_thresholds == card.variant_thresholds  # round-trips
    assert card.thresholds_for("fp32") == card.thresholds and card.thresholds_for("int8") == \
        card.variant_thresholds["int8"]
    # The bot routes with the thresholds of the variant it serves: an int8 bar nothing reaches hands over.
    modeldir.update_manifest(card.path, variant_thresholds={"int8": {**card.thresholds, "answer_min": 1.01,
                                                                     "clarify_pair_min": 1.01}})
    (tmp_path / "kb.yaml").write_text(tiny_kb_yaml())
    kb = load_knowledge_base(tmp_path / "kb.yaml")
    decisions = {}
    for variant in ("fp32", "int8"):
        classifier = Classifier.load(card.path, provider="cpu", variant=variant)
        with Store(tmp_path / f"{variant}.db") as store:
            bot = Bot(kb, store, LiveClassifier(classifier), 2000)
            decisions[variant] = bot.handle(Incoming(text="where is my parcel", user="U1")).route.decision
    assert decisions["int8"] == "handoff" and decisions["fp32"] != "handoff"
    assert Classifier.load(card.path, provider="cpu").variant == "int8"  # what "auto" serves on CPU


@pytest.mark.parametrize(("level", "default", "expected"),
                         [(None, "WARNING", logging.WARNING), ("error", "WARNING", logging.ERROR),
                          (None, "INFO", logging.INFO), ("debug", "INFO", logging.DEBUG)])
def test_training_commands_apply_csbot_log_level(monkeypatch: pytest.MonkeyPatch, level: str | None, default: str,
                                                 expected: int) -> None:
    # `csbot train`/`eval` (default WARNING) and the retrain job (default INFO, its train.log) honour CSBOT_LOG_LEVEL.
    from training.cli import _settings

    for name in ("bot", "models", "training", "csbot"):  # process-wide state: put it back afterwards
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    monkeypatch.delenv("CSBOT_LOG_LEVEL", raising=False)
    if level:
        monkeypatch.setenv("CSBOT_LOG_LEVEL", level)
    _settings(default_level=default)
    assert {logging.getLogger(name).level for name in ("training", "csbot", "models")} == {expected}


def test_training_on_every_example_keeps_the_last_epoch_and_says_so(tiny_base: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    # val_fraction=0 with keep_epoch=last: a recipe whose epochs were chosen on validation runs, trained on all data.
    from training.cli import main

    data = tmp_path / "d.csv"
    rows = [(t, i) for i, ts in INTENT_DATA.items() for t in ts]
    data.write_text("text,intent\n" + "".join(f"{t},{i}\n" for t, i in rows))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CSBOT_DATA_DIR", str(tmp_path / "data"))
    options = [f"base_model={tiny_base}", "epochs=3", "min_steps=0", "patience=1", "val_fraction=0",
               "keep_epoch=last", "threads=1", "export_int8=false", "max_length=16"]
    with caplog.at_level("WARNING"):
        result = CliRunner().invoke(main, ["train", "--data", str(data), "--out", "X",
                                              *[arg for option in options for arg in ("--set", option)]])
    assert result.exit_code == 0, result.output
    assert "no validation split (val_fraction=0)" in result.output and "0.00%" not in result.output
    assert "default thresholds" in caplog.text  # the router's thresholds could not be fitted: say so
    metrics = json.loads((tmp_path / "X" / "metrics.json").read_text())
    assert (metrics["train_examples"], metrics["val_examples"]) == (len(rows), 0)
    assert [row["epoch"] for row in metrics["history"]] == [1, 2, 3] and metrics["best_epoch"] == 3
    assert "val_intent_accuracy" not in metrics["history"][0]
    assert metrics["parity"]["fp32"]["intent_top1_agreement"] == 1.0  # checked on training texts instead
    assert metrics["parity"]["checked_on"] == "training"  # and the report says so: seen texts flatter int8
    top = Classifier.load(tmp_path / "X", provider="cpu").predict(["where is my order"])[0]
    assert top.intents[0].intent in INTENT_DATA
