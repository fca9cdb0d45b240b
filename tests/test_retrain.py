"""The retrain job on the tiny model: gate decisions, atomic promotion and rollback under load,
and a job killed halfway. Real SQLite, real ONNX, real child processes; nothing of ours is mocked."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from learning_helpers import (
    KEYWORDS,
    TINY_OVERRIDES,
    build_word_bert,
    correct,
    keyword_kb,
    keyword_texts,
    make_settings,
    set_args,
)

from bot import learning, learning_locks, messages
from bot.config import Settings
from bot.knowledge import load_knowledge_base
from bot.store import Store
from models import modeldir
from models.registry import Registry
from training.dataset import held_out

FAST = {**TINY_OVERRIDES, "min_steps": 0}


@pytest.fixture(scope="module")
def word_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_word_bert(tmp_path_factory.mktemp("word-bert"))


@pytest.fixture(scope="module")
def kw_kb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keyword_kb(tmp_path_factory.mktemp("kb") / "kb.yaml")


def _train(examples, base: Path, dest: Path, **overrides) -> Path:  # noqa: ANN001
    from training.config import TrainConfig
    from training.pipeline import build_model

    build_model(examples, TrainConfig(base_model=str(base), **{**FAST, **overrides}), dest, version=dest.name,
                progress=False)
    return dest


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory, word_base: Path, kw_kb: Path) -> Path:
    from bot.knowledge import load_knowledge_base
    from training.data import knowledge_base_examples

    examples = knowledge_base_examples(load_knowledge_base(kw_kb), "train")
    return _train(examples, word_base, tmp_path_factory.mktemp("good") / "good")


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory: pytest.TempPathFactory, word_base: Path, kw_kb: Path) -> Path:
    """A real, parity-checked model that learned the wrong keywords (each intent's keyword -> the next intent)."""
    from bot.knowledge import load_knowledge_base
    from training.data import Example, knowledge_base_examples

    names = list(KEYWORDS)
    shifted = {a: names[(i + 1) % len(names)] for i, a in enumerate(names)}
    examples = [Example(e.text, shifted[e.intent] if e.intent else None, e.sentiment, source="kb")
                for e in knowledge_base_examples(load_knowledge_base(kw_kb), "train")]
    return _train(examples, word_base, tmp_path_factory.mktemp("weak") / "weak")


def data_dir(root: Path, *models: Path) -> Path:
    """A data directory with ``models`` as v0001, v0002, ...; the first is active."""
    data = root / "data"
    with Store(data / "csbot.db") as store:
        registry = Registry(data / "models", store)
        for i, model in enumerate(models, start=1):
            dest = data / "models" / f"v{i:04d}"
            modeldir.copy_model_dir(model, dest)
            modeldir.update_manifest(dest, version=dest.name)
        learning._set_active(store, registry, "v0001", "test setup")
    return data


def trained_side(intent: str, count: int, offset: int = 100) -> list[str]:
    """Correction texts that land in training (not in the hash-chosen evaluation slice)."""
    texts = [f"{t} please" for t in keyword_texts(intent, 20, offset)]  # 5 words: never a knowledge-base text
    return [t for t in texts if not held_out(t, 5)][:count]


def with_two_refund_corrections(tmp_path: Path, word_base: Path, kw_kb: Path, weak_model: Path) -> Settings:
    """The weak model active, and two corrections that a retrain can learn (so its candidate is better)."""
    settings = make_settings(data_dir(tmp_path, weak_model), kw_kb, word_base)
    with Store(settings.db_path) as store:
        for text in trained_side("refund", 2):
            correct(store, text, "refund", predicted="reset_password", sentiment="neutral")
    return settings


def test_a_label_the_active_version_trained_on_is_left_out_of_the_gate_and_of_fast_calibration(
        tmp_path: Path, word_base: Path, weak_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    kb_path = keyword_kb(tmp_path / "kb.yaml")
    kb = load_knowledge_base(kb_path)
    moved = next((e.text for e in kb.examples("train") if e.intent == "refund" and held_out(e.text, 5)), None)
    assert moved, "the fixture's knowledge base has no refund example in the hold-out bucket"
    settings = make_settings(data_dir(tmp_path, weak_model), kb_path, word_base)
    with Store(settings.db_path) as store:
        correct(store, moved, "refund")  # words the knowledge base trains on: the correction trains too
        for text in trained_side("refund", 2):
            correct(store, text, "refund", predicted="reset_password")
    assert run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))["active_after"] == "v0002"
    # The admin drops that phrasing from the knowledge base, so the correction on it joins the evaluation set,
    # although the active version v0002 trained on it.
    kb_path.write_text(kb_path.read_text(encoding="utf-8").replace(f'      - "{moved}"\n', ""), encoding="utf-8")
    with Store(settings.db_path) as store:
        correct(store, trained_side("track_order", 1)[0], "track_order")
    fast = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))

    assert fast["mode"] == "fast", fast["mode_reason"]
    compared = fast["metrics"]["compared"]
    assert compared["left_out_trained_by_active"] >= 1
    # The frozen encoder saw those: the thresholds are fitted on the rest of the evaluation set only.
    unseen = fast["metrics"]["candidate"]["samples"] + compared["left_out_served_by_active"] + \
        compared["left_out_unshared_intent"]
    assert modeldir.read(settings.models_dir / "v0003").metrics["validation"]["thresholds_fitted_on"] == unseen


def test_gate_promotes_a_better_candidate_then_skips_then_goes_fast(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                                    weak_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    settings = with_two_refund_corrections(tmp_path, word_base, kw_kb, weak_model)
    report = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))

    assert report["status"] == "promoted", report["gate"]
    assert report["mode"] == "full" and report["active_before"] == "v0001" and report["active_after"] == "v0002"
    metrics = report["metrics"]
    assert metrics["candidate"]["accuracy"] > metrics["active"]["accuracy"]
    assert metrics["delta"]["accuracy"] > 0 and metrics["intents_improved"]
    assert metrics["corrections"] == {**metrics["corrections"], "total": 2, "right": 2}
    assert report["manifest"]["per_source"]["correction"] == 2
    assert Path(report["chart"]).is_file() and Path(report["chart"]).stat().st_size > 5000
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        assert (registry.active(), registry.previous()) == ("v0002", "v0001")
        statuses = {r["version"]: r["status"] for r in store.db.query("SELECT * FROM model_versions")}
        assert statuses == {"v0001": "retired", "v0002": "active"}
        run = learning.get_run(store, report["run_id"])
    assert run["status"] == "promoted" and run["ended_at"] and run["mode"] == "full"
    assert run["manifest"]["per_source"]["correction"] == 2 and run["gate"]["passed"] is True
    assert run["metrics"]["delta"]["accuracy"] > 0 and "phase: evaluate" in run["log_excerpt"]
    assert (settings.models_dir / "v0002" / "encoder").is_dir()  # kept for later fast runs
    # Thresholds are fitted on the validation split plus the fixed evaluation set (never trained on).
    card = modeldir.read(settings.models_dir / "v0002")
    fitted_on = card.metrics["validation"]["thresholds_fitted_on"]
    assert fitted_on > card.metrics["validation"]["samples"] and metrics["eval_samples"] > 0

    again = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))
    assert again["status"] == "skipped" and "nothing new" in again["reason"]

    with Store(settings.db_path) as store:
        correct(store, trained_side("track_order", 1)[0], "track_order")
    fast = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))
    assert fast["mode"] == "fast", fast["mode_reason"]
    assert fast["status"] in ("promoted", "rejected")
    # Its frozen encoder was trained on nearly all of its validation split: thresholds use only unseen data.
    fast_card = modeldir.read(settings.models_dir / "v0003")
    compared = fast["metrics"]["compared"]
    unseen = fast["metrics"]["candidate"]["samples"] + compared["left_out_served_by_active"] + \
        compared["left_out_unshared_intent"]  # every intent-labelled example of the fixed evaluation set
    assert fast_card.metrics["validation"]["thresholds_fitted_on"] == unseen


@pytest.mark.parametrize("damaged", ["config.json", "model.safetensors"])  # weights: a SafetensorError, no OSError
def test_a_saved_encoder_that_does_not_load_makes_the_run_full_instead_of_failing(
        tmp_path: Path, word_base: Path, kw_kb: Path, weak_model: Path, damaged: str) -> None:
    # Fast mode starts from the active version's encoder/ folder, which the checksums do not cover. Damaged,
    # it used to fail every fast run, night after night; now the run trains in full from the base model.
    from training.retrain import RetrainOptions, run_retrain

    settings = with_two_refund_corrections(tmp_path, word_base, kw_kb, weak_model)
    assert run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))["active_after"] == "v0002"
    file = settings.models_dir / "v0002" / "encoder" / damaged
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])  # half copied
    with Store(settings.db_path) as store:
        correct(store, trained_side("track_order", 1)[0], "track_order")
    report = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))
    assert report["status"] in ("promoted", "rejected") and report["version"] == "v0003"
    assert report["mode"] == "full"
    assert report["mode_reason"].startswith("fast was chosen, but the saved encoder of v0002 does not load (")
    with Store(settings.db_path) as store:
        assert learning.get_run(store, report["run_id"])["mode"] == "full"


def test_gate_rejects_a_worse_candidate_with_the_reason(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                        good_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    # Someone points CSBOT_BASE_MODEL at a base whose tokenizer knows no words: the candidate cannot learn.
    blind_base = build_word_bert(tmp_path / "blind-bert", know_words=False)
    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, blind_base)
    report = run_retrain(settings, RetrainOptions(trigger="test", force=True, overrides=FAST))

    assert report["status"] == "rejected"
    assert any("fixed evaluation set" in r for r in report["gate"]["reasons"]), report["gate"]
    assert report["gate"]["checks"]["parity"]["passed"] and not report["gate"]["checks"]["eval"]["passed"]
    with Store(settings.db_path) as store:
        assert Registry(settings.models_dir, store).active() == "v0001"
        row = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = 'v0002'")))
        assert row["status"] == "rejected" and "fixed evaluation set" in row["reason"]
        run = learning.get_run(store, report["run_id"])
    assert run["status"] == "rejected" and run["gate"]["passed"] is False


def test_binomial_cdf_matches_hand_computed_values() -> None:
    from training.gate import binomial_cdf

    assert binomial_cdf(10, 10, 0.8) == pytest.approx(1.0)
    assert binomial_cdf(0, 3, 0.8) == pytest.approx(0.2**3)
    assert binomial_cdf(7, 9, 0.8) == pytest.approx(1 - 9 * 0.8**8 * 0.2 - 0.8**9)


def test_gate_checks_corrections_and_parity() -> None:
    from training.retrain import apply_gate

    good = {"accuracy": 0.9}
    fp32 = {"fp32": {"max_abs_diff": 1e-6, "intent_top1_agreement": 1.0}}
    assert apply_gate(good, {"accuracy": 0.9}, {"total": 0}, fp32, None, 0.005, 0.8)["passed"]
    assert apply_gate(good, {"accuracy": 0.903}, {"total": 0}, fp32, None, 0.005, 0.8)["passed"]  # within tolerance
    # Exactly at the tolerance is within it, whatever the floating-point rounding of the two shares.
    at_edge = apply_gate({"accuracy": 298 / 600}, {"accuracy": 301 / 600}, {"total": 0}, fp32, None, 0.005, 0.8)
    assert at_edge["passed"], at_edge["reasons"]
    assert not apply_gate({"accuracy": 297 / 600}, {"accuracy": 301 / 600}, {"total": 0}, fp32, None, 0.005,
                          0.8)["passed"]
    few = apply_gate(good, good, {"total": 10, "right": 5, "share": 0.5}, fp32, None, 0.005, 0.8)
    assert not few["passed"] and "5 of the 10 corrected examples" in few["reasons"][0]
    assert "probability 0.033" in few["reasons"][0]
    # 7 of 9 is within chance for a model that learns 80% of its corrections; 14 of 25 is not.
    assert apply_gate(good, good, {"total": 9, "right": 7, "share": 7 / 9}, fp32, None, 0.005, 0.8)["passed"]
    assert not apply_gate(good, good, {"total": 25, "right": 14, "share": 0.56}, fp32, None, 0.005, 0.8)["passed"]
    drift = apply_gate(good, good, {"total": 0}, {"fp32": {"max_abs_diff": 0.1, "intent_top1_agreement": 0.9}},
                       None, 0.005, 0.8)
    assert not drift["passed"] and "parity" in drift["reasons"][0]


def test_gate_without_a_shared_evaluation_message_leaves_promotion_to_a_person() -> None:
    from training.retrain import apply_gate

    fp32 = {"fp32": {"max_abs_diff": 1e-6, "intent_top1_agreement": 1.0}}
    nothing = {"version": "v0004", "samples": 0, "accuracy": None}  # an active model, scored on no message
    gate = apply_gate({"samples": 0, "accuracy": None}, nothing, {"total": 0}, fp32, None, 0.005, 0.8)
    assert not gate["passed"] and not gate["checks"]["eval"]["passed"]
    assert "no evaluation message that both it and v0004 can be scored on" in gate["reasons"][0]
    assert "csbot promote VERSION" in gate["reasons"][0]
    # The first version (no active model, or one whose files cannot be read) has nothing to be worse than.
    assert apply_gate({"samples": 0, "accuracy": None}, None, {"total": 0}, fp32, None, 0.005, 0.8)["passed"]


def test_sign_test_matches_hand_computed_values() -> None:
    from training.gate import sign_test

    assert sign_test(0, 7) == 1.0
    assert sign_test(5, 0) == pytest.approx(1 / 32)
    assert sign_test(7, 3) == pytest.approx((120 + 45 + 10 + 1) / 1024)  # P(X >= 7), X ~ Bin(10, 1/2)
    assert 0 < sign_test(700, 500) < 1e-8  # exact: 0.5**1200 would underflow to 0 in floats


def test_gate_lets_a_drop_within_chance_through_and_says_so() -> None:
    from bot.learning_report import report_text
    from training.retrain import apply_gate

    fp32 = {"fp32": {"max_abs_diff": 1e-6, "intent_top1_agreement": 1.0}}
    active = {"accuracy": 0.836, "correct": [True] * 322 + [False] * 63}
    # 4 messages worse on 385: the active model alone is right on 19, the candidate alone on 15.
    noisy = {"accuracy": 0.826, "correct": [True] * 303 + [False] * 19 + [True] * 15 + [False] * 48}
    gate = apply_gate(noisy, active, {"total": 0}, fp32, None, 0.005, 0.8, alpha=0.1)
    check = gate["checks"]["eval"]
    assert gate["passed"] and check["within_chance"] and gate["reasons"] == []
    assert (check["only_active_right"], check["only_candidate_right"]) == (19, 15)
    assert check["p_value"] == pytest.approx(0.3038, abs=1e-4)
    run = {"id": 3, "status": "promoted", "gate": gate,
           "metrics": {"candidate": {"accuracy": 0.826, "samples": 385}, "active": {"accuracy": 0.836}}}
    assert "within chance: the active model alone gets 19 evaluation messages right and the candidate alone 15 " \
        "(p = 0.30" in report_text(run)
    # The bare tolerance rule (alpha 1) rejects the same candidate, and the reason gives the split.
    strict = apply_gate(noisy, active, {"total": 0}, fp32, None, 0.005, 0.8, alpha=1.0)
    assert not strict["passed"] and "alone 15, a split with probability 0.304" in strict["reasons"][0]
    # 15 messages worse, 25 against 10, is not chance at 0.1.
    worse = {"accuracy": 0.797, "correct": [True] * 297 + [False] * 25 + [True] * 10 + [False] * 53}
    rejected = apply_gate(worse, active, {"total": 0}, fp32, None, 0.005, 0.8, alpha=0.1)
    assert not rejected["passed"] and "probability 0.008" in rejected["reasons"][0]


def test_promotion_and_rollback_are_atomic_while_predicting(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                            good_model: Path, weak_model: Path) -> None:
    from bot.context import Context
    from models.runtime import Classifier, softmax

    settings = make_settings(data_dir(tmp_path, good_model, weak_model), kw_kb, word_base)
    texts = keyword_texts("refund", 3) + keyword_texts("track_order", 3)
    reference = {v: softmax(Classifier.load(settings.models_dir / v, provider="cpu").logits(texts)[0])
                 for v in ("v0001", "v0002")}
    assert not np.allclose(reference["v0001"], reference["v0002"], atol=1e-3)
    intent_lists = {v: list(modeldir.read(settings.models_dir / v).intents) for v in ("v0001", "v0002")}
    ctx = Context.open(settings)
    stop, errors, seen = threading.Event(), [], []

    def predict_forever() -> None:
        while not stop.is_set():
            try:
                predictions = ctx.live.predict(texts, top_k=3)
                versions = {p.model_version for p in predictions}
                assert len(versions) == 1, versions  # one whole model per batch
                version = versions.pop()
                for i, p in enumerate(predictions):  # and every number is that model's
                    for score in p.intents:
                        expected = reference[version][i][intent_lists[version].index(score.intent)]
                        assert abs(score.probability - expected) < 1e-5
                seen.append(version)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    thread = threading.Thread(target=predict_forever)
    thread.start()
    try:
        cycles, deadline = 0, time.monotonic() + 60
        # At least four swaps each way, and on until the predicting thread has seen enough batches (a busy
        # machine may run only a few of them in a fixed time).
        while cycles < 4 or len(seen) <= 20:
            assert time.monotonic() < deadline, f"only {len(seen)} batches predicted in 60 s"
            cycles += 1
            assert learning.promote(settings, "v0002")["active"] == "v0002"
            assert ctx.refresh_model() and ctx.live.current.version == "v0002"
            time.sleep(0.05)
            assert learning.rollback(settings) == {"active": "v0001", "previous": "v0002"}
            assert ctx.refresh_model() and ctx.live.current.version == "v0001"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert {"v0001", "v0002"} <= set(seen) and len(seen) > 20
    with Store(settings.db_path) as store:
        statuses = {r["version"]: r["status"] for r in store.db.query("SELECT * FROM model_versions")}
    assert statuses == {"v0001": "active", "v0002": "retired"}


def test_a_job_killed_halfway_leaves_the_active_model_and_is_marked_failed(tmp_path: Path, word_base: Path,
                                                                          kw_kb: Path, good_model: Path) -> None:
    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, word_base)
    with Store(settings.db_path) as store:
        correct(store, trained_side("refund", 1)[0], "refund")
    handle = learning.start_retrain(settings, "test", force=True, extra_args=set_args({**FAST, "epochs": 40}))
    assert handle.started and handle.process is not None
    deadline = time.monotonic() + 60
    with Store(settings.db_path) as store:
        epochs = settings.data_dir / "runs" / f"run-{handle.run_id:05d}" / "metrics.jsonl"
        while not (epochs.is_file() and epochs.read_text().count("\n") >= 2):  # kill it mid-training
            assert handle.process.poll() is None, handle.log_path.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert learning.get_run(store, handle.run_id)["phase"] == "train"
        os.killpg(handle.process.pid, signal.SIGKILL)  # the OOM killer does not say goodbye either
        handle.process.wait()
        row = learning.get_run(store, handle.run_id)
        assert row["status"] == "running"  # nobody could record the death yet ...
        assert learning.lock_holder(store) is None  # ... but a lock held by a dead pid is free
        info = learning.status(settings)  # ... and the next status (or run) reaps it
        row = learning.get_run(store, handle.run_id)
        assert row["status"] == "failed" and "killed" in row["log_excerpt"] and row["ended_at"]
        assert info["active"] == "v0001" and info["running"] is None
        assert Registry(settings.models_dir, store).versions() == ["v0001"]
        assert row["version"] == "v0002"  # named when the run began: the next run will not reuse it
        assert Registry(settings.models_dir, store).next_version(learning.used_versions(store)) == "v0003"
        assert store.db.execute("SELECT count(*) FROM locks").fetchone()[0] == 0
    assert handle.wait()["status"] == "failed"
    assert json.loads(json.dumps(info, default=str))["last_run"]["status"] == "failed"


def test_a_run_whose_pid_lives_on_without_its_lock_is_reaped(tmp_path: Path, good_model: Path) -> None:
    # In a restarted container a dead run's pid can belong to another process: the pid alone kept the row
    # "running" (and `status` saying a retrain is going) for as long as that process lived.
    data = data_dir(tmp_path, good_model)
    with Store(data / "csbot.db") as store:
        reused = learning.create_run(store, "test", pid=os.getpid(), phase="train")  # this live test process
        assert learning.reap_stale_runs(store) == [reused]
        row = learning.get_run(store, reused)
        assert row["status"] == "failed" and "stopped renewing its lock" in row["log_excerpt"]
        # A run killed between building its version and the gate: the version is closed, not left a "candidate".
        built = learning.create_run(store, "test", pid=os.getpid(), phase="evaluate")
        learning.update_run(store, built, version="v0002")
        with store.transaction() as db:
            db.execute("INSERT INTO model_versions (version, path, status, created_at, reason) VALUES "
                       "('v0002', 'x', 'candidate', '2026-12-02T00:00:00', 'waiting')")
        assert learning.reap_stale_runs(store) == [built]
        version = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = 'v0002'")))
        assert (version["status"], version["reason"]) == ("rejected", messages.VERSION_RUN_DIED.format(run_id=built))
        alive = learning.create_run(store, "test", pid=os.getpid(), phase="train")
        assert learning.acquire_lock(store, f"run:{alive}", pid=os.getpid())  # a live run holds its lock
        assert learning.reap_stale_runs(store) == [] and learning.get_run(store, alive)["status"] == "running"


def test_a_lock_whose_pid_is_now_another_process_is_free_at_once(tmp_path: Path, good_model: Path) -> None:
    # After a container restart a dead run's pid can name a live process: its lock blocked every retrain (the
    # nightly one that came in that window was lost) until it expired, 10 minutes on.
    data = data_dir(tmp_path, good_model)
    with Store(data / "csbot.db") as store:
        run = learning.create_run(store, "test", pid=os.getpid(), phase="train")
        assert learning.acquire_lock(store, f"run:{run}", pid=os.getpid())
        held = learning.lock_holder(store)
        assert held is not None and held["pid_started"] == learning_locks.process_started(os.getpid())
        assert learning.reap_stale_runs(store) == []  # the very process that took it: held
        with store.transaction() as db:  # what the row says after the restart: the same pid, started before it
            db.execute("UPDATE locks SET pid_started = 'an-earlier-boot:12345'")
        assert learning.lock_holder(store) is None
        assert learning.reap_stale_runs(store) == [run] and learning.get_run(store, run)["status"] == "failed"
        assert learning.acquire_lock(store, "run:next")


def test_a_full_retrain_distils_from_the_active_model_when_asked(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                                 good_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, word_base)
    report = run_retrain(settings, RetrainOptions(trigger="test", force=True, mode="full",
                                                  overrides={**FAST, "distill_weight": 1.0}))
    assert report["mode"] == "full" and report["status"] in ("promoted", "rejected")
    card = modeldir.read(settings.models_dir / "v0002")
    # The active model is right on most knowledge-base examples: those rows carry its distribution.
    assert card.metrics["distilled_rows"] > 0
    assert json.loads((card.path / modeldir.CONFIG_FILE).read_text())["distill_weight"] == 1.0


def test_a_failure_after_the_promotion_keeps_the_run_promoted(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                              weak_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    settings = with_two_refund_corrections(tmp_path, word_base, kw_kb, weak_model)
    with Store(settings.db_path) as store:
        run_id = learning.create_run(store, "test", phase="starting")
    # A folder where the report chart goes: saving the chart, after the promotion, fails.
    (settings.data_dir / "runs" / f"run-{run_id:05d}" / "report.png").mkdir(parents=True)
    report = run_retrain(settings, RetrainOptions(trigger="test", run_id=run_id, overrides=FAST))

    assert report["status"] == "promoted" and "report.png" in report["error"]
    with Store(settings.db_path) as store:
        assert Registry(settings.models_dir, store).active() == "v0002"  # the new model is live
        run = learning.get_run(store, run_id)
    assert run["status"] == "promoted" and run["version"] == "v0002" and run["ended_at"]
    assert "report.png" in run["log_excerpt"]


def test_a_bad_training_option_fails_the_run_with_its_own_error(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                                good_model: Path) -> None:
    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, word_base)
    for extra, error in ((["--set", "epochs"], "--set 'epochs' is not KEY=VALUE"),
                         (["--set", "epochs=lots"], "Training option epochs='lots' is invalid")):
        handle = learning.start_retrain(settings, "test", force=True, extra_args=extra)
        run = handle.wait()
        assert run["status"] == "failed", run
        assert error in run["gate"]["reason"] and "Fix:" in run["gate"]["reason"]
        text = learning.report_text(run)
        assert error in text and "killed" not in text


def test_a_promote_during_the_run_wins_over_the_candidate(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                          weak_model: Path, good_model: Path) -> None:
    """The candidate was gated against the model active at the start; an admin's promote meanwhile stands."""
    settings = with_two_refund_corrections(tmp_path, word_base, kw_kb, weak_model)
    with Store(settings.db_path) as store:  # a second version for the admin to promote: v0002
        modeldir.copy_model_dir(good_model, settings.models_dir / "v0002")
        modeldir.update_manifest(settings.models_dir / "v0002", version="v0002")
    handle = learning.start_retrain(settings, "test", extra_args=set_args({**FAST, "epochs": 40}))
    assert handle.started and handle.process is not None
    epochs = settings.data_dir / "runs" / f"run-{handle.run_id:05d}" / "metrics.jsonl"
    deadline = time.monotonic() + 60
    while not (epochs.is_file() and epochs.read_text().count("\n") >= 1):  # the candidate is being trained
        assert handle.process.poll() is None, handle.log_path.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert learning.promote(settings, "v0002") == {"active": "v0002", "previous": "v0001"}
    run = handle.wait()

    assert run["status"] == "rejected", run
    assert any("active model changed during the run" in r and "v0001" in r and "v0002" in r
               for r in run["gate"]["reasons"]), run["gate"]
    with Store(settings.db_path) as store:
        assert Registry(settings.models_dir, store).active() == "v0002"
        row = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = 'v0003'")))
    assert row["status"] == "rejected" and "active model changed" in row["reason"]
    # "Run the retrain again", as the reason says: the data was never gated against v0002, so it is not "seen".
    with Store(settings.db_path) as store:
        assert not learning.nothing_new(store, settings.kb_path)


def test_a_candidate_an_admin_promoted_during_its_run_stays_active(tmp_path: Path, good_model: Path) -> None:
    # `csbot promote v0002` as soon as the folder appears, before the run records its candidate row:
    # the run's bookkeeping must not mark the live model "candidate" or "rejected", nor overwrite why it is live.
    from training.versions import register_version as _register

    data = data_dir(tmp_path, good_model, good_model)
    with Store(data / "csbot.db") as store:
        registry = Registry(data / "models", store)
        learning._set_active(store, registry, "v0002", "promoted by an admin")
        card = registry.check("v0002")
        _register(store, card, {"run": 7}, status="candidate", reason="")
        _register(store, card, {"run": 7}, status="rejected", reason="the gate said no")
        row = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = 'v0002'")))
        assert (row["status"], row["reason"]) == ("active", "promoted by an admin")
        assert json.loads(row["metrics_json"]) == {"run": 7}  # the run's scores are still recorded
        _register(store, registry.check("v0001"), {"run": 7}, status="rejected", reason="the gate said no")
        old = next(iter(store.db.query("SELECT * FROM model_versions WHERE version = 'v0001'")))
        assert (old["status"], old["reason"]) == ("rejected", "the gate said no")  # a version not live: as before


def test_a_promotion_and_its_run_record_are_one_transaction(tmp_path: Path, good_model: Path) -> None:
    # A job killed (OOM, the watchdog) right after the switch must not leave a run that says "failed, the active
    # model was not changed" beside a pointer that did change: the switch marks its run promoted.
    data = data_dir(tmp_path, good_model, good_model)
    with Store(data / "csbot.db") as store:
        registry = Registry(data / "models", store)
        run_id = learning.create_run(store, "test", phase="register")
        assert learning._set_active(store, registry, "v0002", "run: gate passed", expected="v0001",
                                    promoting_run=run_id)
        run = learning.get_run(store, run_id)
        assert (run["status"], run["version"], registry.active()) == ("promoted", "v0002", "v0002")
        stale = learning.create_run(store, "test", phase="register")
        learning.update_run(store, stale, status="failed")  # only a running run is marked: a finished record stands
        assert learning._set_active(store, registry, "v0001", "x", expected="v0002", promoting_run=stale)
        assert learning.get_run(store, stale)["status"] == "failed" and learning.get_run(store, run_id)["version"] \
            == "v0002"


def test_a_run_folder_that_cannot_be_made_fails_the_run_and_frees_the_lock(tmp_path: Path, word_base: Path,
                                                                         kw_kb: Path, good_model: Path) -> None:
    # Used to raise a bare OSError after taking the lock: every retrain was "still going" for the lock's lifetime.
    from models.errors import CsbotError

    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, word_base)
    (settings.data_dir / "runs").write_text("not a folder")  # as a read-only or full disk would refuse it
    with pytest.raises(CsbotError) as info:
        learning.start_retrain(settings, "test", force=True)
    assert str(info.value).startswith("Could not start the training process:") and "CSBOT_DATA_DIR" in info.value.fix
    with Store(settings.db_path) as store:
        assert learning.lock_holder(store) is None
        runs = [r["status"] for r in store.db.query("SELECT status FROM training_runs")]
    assert runs == ["failed"]


def test_a_run_past_its_time_limit_is_stopped_and_marked_failed(tmp_path: Path, word_base: Path, kw_kb: Path,
                                                                 good_model: Path) -> None:
    """A hung child keeps its lock alive through the heartbeat; the watchdog ends it so later runs can start."""
    settings = make_settings(data_dir(tmp_path, good_model), kw_kb, word_base, retrain_max_minutes=0.02)
    handle = learning.start_retrain(settings, "test", force=True, extra_args=set_args({**FAST, "epochs": 100,
                                                                                       "patience": 100}))
    run = handle.wait()
    assert handle.process is not None and handle.process.returncode == 3
    assert run["status"] == "failed" and "CSBOT_RETRAIN_MAX_MINUTES (0.02 min)" in run["gate"]["reason"]
    with Store(settings.db_path) as store:
        assert learning.lock_holder(store) is None  # the next run may start at once
        assert Registry(settings.models_dir, store).active() == "v0001"
    assert "CSBOT_RETRAIN_MAX_MINUTES" in learning.report_text(run)


def test_the_gate_compares_both_models_only_where_neither_is_favoured() -> None:
    from training.data import Example
    from training.dataset import example_key
    from training.gate import comparison_set

    examples = [Example("where is my parcel", "track_order", source="knowledge_base"),
                Example("refund me now", "refund", source="correction", served_by="v0003"),  # v0003's own mistake
                Example("refund me later", "refund", source="correction", served_by="v0002"),  # an older model's
                Example("gift cards?", "gift_cards", source="knowledge_base"),  # only the candidate knows it
                Example("ugh", None, "negative", source="knowledge_base")]
    kept, labels, left_out = comparison_set(examples, ["track_order", "refund", "gift_cards"], "v0003",
                                            ["track_order", "refund", "reset_password"])
    assert [e.text for e in kept] == ["where is my parcel", "refund me later", "ugh"]
    assert labels == ["refund", "track_order"]  # both models choose among the intents they share
    assert left_out == {"left_out_served_by_active": 1, "left_out_trained_by_active": 0, "left_out_unshared_intent": 1}
    # A label the active version trained on (same words, same intent) is no test of it; the same words with
    # another label are (a relabelled example is exactly what the candidate should get right).
    trained = {example_key(Example("Where is my parcel!", "track_order")), example_key(Example("ugh", "refund")),
               example_key(Example("refund me now", "refund"))}  # served by the active version and trained on
    kept, _, left_out = comparison_set(examples, ["track_order", "refund"], "v0003", ["track_order", "refund"],
                                       trained)
    assert [e.text for e in kept] == ["refund me later", "ugh"]
    assert left_out == {"left_out_served_by_active": 0, "left_out_trained_by_active": 2, "left_out_unshared_intent": 1}
    first, first_labels, _ = comparison_set(examples, ["track_order", "refund", "gift_cards"], None, None)
    assert first == examples and first_labels == ["gift_cards", "refund", "track_order"]  # no active model yet


def test_a_full_or_read_only_disk_is_a_reason_with_a_fix() -> None:
    # What a full data dir made of a run's reason: "Error: OSError: [Errno 28] No space left on device: '...'".
    import errno

    from training.job_guard import describe_error

    full = describe_error(OSError(errno.ENOSPC, "No space left on device", "/data/models/.v0002.staging/model.onnx"))
    assert full == messages.ERROR_PREFIX + messages.RETRAIN_DISK_FULL.format(
        path="/data/models/.v0002.staging/model.onnx") + "\nFix: " + messages.RETRAIN_DISK_FULL_FIX
    read_only = describe_error(OSError(errno.EROFS, "Read-only file system", "/data/runs/run-00002"))
    assert "could not write /data/runs/run-00002: Read-only file system" in read_only
    assert "Fix: make CSBOT_DATA_DIR writable" in read_only
    assert describe_error(OSError(errno.ENOENT, "No such file or directory", "x")).startswith(
        messages.ERROR_PREFIX + "FileNotFoundError: ")  # other errors keep their own words


def test_an_active_version_that_does_not_load_is_replaced_by_the_next_retrain(tmp_path: Path, word_base: Path,
                                                                             kw_kb: Path, weak_model: Path) -> None:
    from training.retrain import RetrainOptions, run_retrain

    settings = with_two_refund_corrections(tmp_path, word_base, kw_kb, weak_model)
    # v0001's graph becomes garbage that its manifest vouches for: every bot that starts now refuses it.
    active = settings.models_dir / "v0001"
    (active / modeldir.ONNX_FILE).write_bytes(b"not a protobuf" * 20)
    files = modeldir._load_json(active, modeldir.MANIFEST_FILE)["files"]
    modeldir.update_manifest(active, files={**files, modeldir.ONNX_FILE: modeldir.sha256_file(active / "model.onnx")})
    report = run_retrain(settings, RetrainOptions(trigger="test", overrides=FAST))
    # The nightly run does not fail on the model it is meant to replace: it compares against nothing.
    assert report["status"] == "promoted", report
    assert report["active_after"] == "v0002" and report["metrics"]["active"] == {}
