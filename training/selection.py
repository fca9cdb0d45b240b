"""Which epoch's weights to keep, and when to stop, read against the validation split's noise.

The learning rate decays linearly to zero, so later epochs are usually the better-converged ones.
A validation split of a few hundred messages cannot tell two epochs apart by a point or two,
though: one standard error of a 95% accuracy on 300 messages is 1.3 points. Keeping the epoch with
the highest validation accuracy ("best") therefore often keeps an early, high-learning-rate epoch
on a lucky draw. In the learning-loop simulation a nightly retrain kept epoch 2 of 7 because it
read 97.78% against 97.15% two epochs later, a gap of 2 of 316 messages; early stopping then ended
the run.

"latest_tied" keeps the latest epoch whose accuracy is within one standard error of the best seen
so far, and counts an epoch towards early stopping only when it falls below that. It is an option,
not the default: with very few examples per intent the validation split is so small that nearly
every epoch ties, so it keeps the last of many epochs, which overfits (TrainConfig.keep_epoch has
the measurement).

"last" keeps the final epoch and never stops early. It needs no validation split, so it is the rule
for training on every example (``val_fraction=0``) once the number of epochs has been chosen on
validation runs: on Banking77 all four seeds of the 5-epoch recipe kept epoch 5 (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULES = ("latest_tied", "best", "last")


def accuracy_noise(accuracy: float, n: int) -> float:
    """One standard error of an accuracy measured on ``n`` examples.

    Uses the "plus four" rate (two right and two wrong added), so a perfect score on a small split
    still has some noise: one miss in 40 is then a tie with none.
    """
    if n <= 0:
        return 0.0
    rate = (accuracy * n + 2) / (n + 4)
    return math.sqrt(rate * (1 - rate) / n)


@dataclass
class EpochSelector:
    """Feed it one validation score per epoch; it says whether to keep the weights and when to stop."""

    rule: str
    val_size: int
    patience: int
    epochs: int
    best: float = -math.inf
    kept_epoch: int = 0
    stale: int = 0

    def observe(self, epoch: int, score: float) -> bool:
        """Record ``score`` for ``epoch``; True when this epoch's weights should be kept."""
        if self.rule == "last":
            keep = True
        elif self.rule == "best":
            keep = score > self.best
        else:
            floor = self.best - accuracy_noise(self.best, self.val_size) if self.best > -math.inf else -math.inf
            keep = score >= floor
        self.best = max(self.best, score)
        if keep:
            self.kept_epoch, self.stale = epoch, 0
        else:
            self.stale += 1
        return keep

    def should_stop(self, epoch: int) -> bool:
        # Stop early only in the second half: the first epochs run at a high learning rate.
        if self.rule == "last":
            return False
        return bool(self.patience) and self.stale >= self.patience and epoch >= (self.epochs + 1) // 2
