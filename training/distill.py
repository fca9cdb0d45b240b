"""Keeping a new version close to the active one where the active one was right.

A full retrain starts from the base model, so two versions trained on nearly the same data
still disagree on a few percent of messages, and some of those flips turn right answers into
wrong ones: test accuracy can drop a quarter point on a night the gate rightly promotes
(benchmarks/RESULTS.md, simulation run 5). Focal distillation (Yan et al., 2021,
"Positive-Congruent Training") adds a term that pulls the candidate's intent distribution
towards the active model's on the training messages the active model gets right, and
nowhere else, so old mistakes are not taught again.

The teacher is read with onnxruntime (``models.runtime``), as served: no second torch model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from training.data import Example


def teacher_targets(model_dir: Path, examples: Sequence[Example], intents: Sequence[str],
                    batch_size: int = 128) -> torch.Tensor:
    """The active model's intent probabilities over ``intents``, one row per example.

    A row is NaN where there is nothing to keep: the example has no intent label, or the
    teacher's top intent is not the label (or is not one of ``intents``).
    """
    from models.runtime import Classifier, softmax

    teacher = Classifier.load(model_dir, provider="cpu", variant="fp32")
    column = {name: i for i, name in enumerate(intents)}
    columns = np.array([column.get(name, -1) for name in teacher.intents])
    targets = torch.full((len(examples), len(intents)), float("nan"))
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        probs = softmax(teacher.logits([e.text for e in batch])[0])
        for row, (example, p) in enumerate(zip(batch, probs, strict=True)):
            top = int(p.argmax())
            if example.intent is None or teacher.intents[top] != example.intent or columns[top] < 0:
                continue
            projected = np.zeros(len(intents), dtype=np.float32)
            known = columns >= 0
            projected[columns[known]] = p[known]
            targets[start + row] = torch.from_numpy(projected / projected.sum())
    return targets


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the rows with a target (0 if none), weighted by example weight."""
    keep = ~torch.isnan(targets).any(dim=1)
    if not bool(keep.any()):
        return logits.sum() * 0.0
    t = targets[keep]
    log_student = torch.log_softmax(logits[keep], dim=-1)
    per_row = (t * (torch.log(t.clamp(min=1e-12)) - log_student)).sum(dim=-1)
    w = weight[keep]
    return (per_row * w).sum() / w.sum()
