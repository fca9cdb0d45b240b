"""The benchmark scripts' own arithmetic (their runs need ../shared/data and are not tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import answer_budget  # noqa: E402


def test_best_cut_keeps_wrong_answers_within_the_budget() -> None:
    score = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, True])
    assert answer_budget.best_within_budget(score, correct, 0.0) == (0.5, 0.0, 0.8)
    assert answer_budget.best_within_budget(score, correct, 0.25) == (0.75, 0.25, 0.6)


def test_tied_scores_are_accepted_together() -> None:
    score = np.array([0.9, 0.8, 0.8])
    correct = np.array([True, True, False])
    right, wrong, threshold = answer_budget.best_within_budget(score, correct, 0.0)
    assert (right, wrong, threshold) == (pytest.approx(1 / 3), 0.0, 0.9)


def test_no_cut_when_the_most_confident_answer_is_wrong() -> None:
    right, wrong, threshold = answer_budget.best_within_budget(np.array([0.9]), np.array([False]), 0.0)
    assert (right, wrong) == (0.0, 0.0) and threshold == float("inf")


def test_snake_matches_the_simulation_knowledge_base_names() -> None:
    assert answer_budget.intent_name("Refund_not_showing_up") == "refund_not_showing_up"
    assert answer_budget.intent_name("reverted_card_payment?") == "reverted_card_payment"


def test_set_options_are_parsed_into_config_fields() -> None:
    import common

    from training.config import TrainConfig

    overrides = common.config_overrides(["outlier_weight=0.2", "epochs=4", "freeze_embeddings=false",
                                         "base_model=prajjwal1/bert-tiny"])
    assert overrides == {"outlier_weight": 0.2, "epochs": 4, "freeze_embeddings": False,
                         "base_model": "prajjwal1/bert-tiny"}
    assert TrainConfig().replace(**overrides).outlier_weight == 0.2
    with pytest.raises(SystemExit, match="key=value"):
        common.config_overrides(["epochs"])


def test_flips_count_regressions_and_fixes_separately() -> None:
    import flips

    before = np.array([True, True, False, False, True])
    after = np.array([True, False, True, True, True])
    assert flips.flips(before, after) == (1, 2)


def test_simulation_table_splits_clarified_from_handed_over(tmp_path: Path) -> None:
    import simulate

    day = {"night": 1, "messages": 500, "answered_right": 374, "clarified": 86, "handed_over": 26,
           "answered_wrong": 14, "test_accuracy": 0.9}
    assert [simulate._pct(day, k) for k in ("answered_right", "clarified", "handed_over", "answered_wrong")] == \
        ["74.8%", "17.2%", "5.2%", "2.8%"]
    assert simulate._pct({"night": 0}, "clarified") == "-"
    simulate.chart([{"night": 0, "test_accuracy": 0.8}, day], tmp_path / "sim.png")
    assert (tmp_path / "sim.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_defaults_to_the_active_version_and_says_when_there_is_none(tmp_path: Path) -> None:
    # `make bench-latency` passes no --model: without an active version it must say so, not print a traceback.
    import os
    import subprocess

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "latency.py"
    env = {**os.environ, "CSBOT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "Error: There is no active model yet." in proc.stderr and "Fix:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_load_percentiles_are_nearest_rank() -> None:
    import load

    values = [i / 1000 for i in range(1, 101)]  # 1 .. 100 ms
    assert (load.pct(values, 0.5), load.pct(values, 0.99), load.pct(values, 1.0)) == (50.0, 99.0, 100.0)
    assert load.pct([0.007], 0.99) == 7.0 and np.isnan(load.pct([], 0.5))


def test_the_budget_counts_an_answer_only_where_the_router_answers() -> None:
    probs = np.array([[0.90, 0.05, 0.05], [0.55, 0.45, 0.0], [0.40, 0.30, 0.30]])
    # The second clears answer_min but not the margin: the router asks the customer to choose there.
    answered = answer_budget.routed_answer(probs, {"answer_min": 0.5, "clarify_margin": 0.2})
    assert answered.tolist() == [True, False, False]
