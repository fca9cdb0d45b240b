"""Epoch selection: which epoch's weights a training run keeps, and when it stops."""

from __future__ import annotations

import pytest

from models.errors import ConfigError
from training.config import TrainConfig
from training.selection import EpochSelector, accuracy_noise


def run(rule: str, scores: list[float], val_size: int, epochs: int, patience: int = 2) -> tuple[int, int]:
    """Feed ``scores`` epoch by epoch; return (kept epoch, epochs run)."""
    selector = EpochSelector(rule, val_size, patience, epochs)
    for epoch, score in enumerate(scores, start=1):
        selector.observe(epoch, score)
        if selector.should_stop(epoch):
            return selector.kept_epoch, epoch
    return selector.kept_epoch, len(scores)


# A nightly retrain from the learning-loop simulation (316 validation messages, 7 epochs planned).
NIGHT = [0.9525, 0.9778, 0.9684, 0.9715, 0.9747, 0.9747, 0.9715]


def test_best_rule_keeps_the_lucky_early_epoch_and_stops() -> None:
    assert run("best", NIGHT, val_size=316, epochs=7) == (2, 4)


def test_latest_tied_keeps_a_later_epoch_within_noise_and_runs_on() -> None:
    # One standard error at 97.8% on 316 messages is about 0.9 pt: epochs 4-7 (0.3-0.6 pt below the
    # best) are ties, so the run goes on and keeps the last, most converged epoch.
    assert accuracy_noise(0.9778, 316) == pytest.approx(0.0093, abs=0.0003)
    kept, ran = run("latest_tied", NIGHT, val_size=316, epochs=7)
    assert ran == 7
    assert kept == 7


def test_a_real_drop_counts_towards_early_stopping() -> None:
    # On 2,000 messages a 3-point drop is far outside the noise: epochs 3 and 4 are stale.
    kept, ran = run("latest_tied", [0.90, 0.93, 0.90, 0.90, 0.93], val_size=2000, epochs=5)
    assert (kept, ran) == (2, 4)


def test_no_labelled_validation_falls_back_to_the_highest_score() -> None:
    assert accuracy_noise(0.5, 0) == 0.0
    assert run("latest_tied", [-0.3, -0.2, -0.25], val_size=0, epochs=3, patience=0) == (2, 3)


def test_a_perfect_small_split_still_allows_ties() -> None:
    assert accuracy_noise(1.0, 40) > 0.02
    assert run("latest_tied", [1.0, 0.975, 1.0, 0.975], val_size=40, epochs=4)[0] == 4


def test_last_rule_keeps_the_final_epoch_and_never_stops_early() -> None:
    # The readings would stop "best" after epoch 4; "last" runs every planned epoch and keeps the final one.
    assert run("last", NIGHT, val_size=316, epochs=7) == (7, 7)
    assert run("last", [0.0, 0.0, 0.0], val_size=0, epochs=3) == (3, 3)  # no validation split at all


def test_unknown_rule_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="keep_epoch") as err:
        TrainConfig(keep_epoch="newest")
    assert "latest_tied or best or last" in str(err.value.fix)


def test_no_validation_split_needs_the_last_rule() -> None:
    # With nothing held out no epoch can be chosen or stopped on, so only "last" may train on everything.
    with pytest.raises(ConfigError, match="val_fraction") as err:
        TrainConfig(val_fraction=0.0)
    assert "keep_epoch=last" in str(err.value.fix)
    assert TrainConfig(val_fraction=0.0, keep_epoch="last").val_fraction == 0.0
