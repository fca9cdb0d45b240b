"""Focal distillation: targets from the active model (read with onnxruntime) and the loss."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from training.config import TrainConfig


def test_targets_keep_only_rows_the_teacher_gets_right(tiny_model: Path) -> None:
    import torch

    from models.runtime import Classifier
    from training.data import Example
    from training.distill import teacher_targets

    teacher = Classifier.load(tiny_model, provider="cpu", variant="fp32")
    text = "where is my order"
    predicted = teacher.intents[int(teacher.logits([text])[0][0].argmax())]
    other = next(name for name in teacher.intents if name != predicted)
    # The student knows one intent more and one less than the teacher.
    student = [name for name in teacher.intents if name != other] + ["gift_cards"]
    examples = [Example(text, intent=predicted), Example(text, intent=other), Example(text, sentiment="neutral")]
    targets = teacher_targets(tiny_model, examples, student)

    assert targets.shape == (3, len(student))
    right = targets[0]
    assert not torch.isnan(right).any()
    assert float(right.sum()) == pytest.approx(1.0, abs=1e-5)
    assert int(right.argmax()) == student.index(predicted)
    assert float(right[student.index("gift_cards")]) == 0.0  # the teacher never heard of it
    assert torch.isnan(targets[1]).all()  # the teacher is wrong there: nothing to keep
    assert torch.isnan(targets[2]).all()  # no intent label


def test_loss_is_zero_when_the_student_agrees_and_grows_when_it_does_not() -> None:
    import torch

    from training.distill import distillation_loss

    targets = torch.tensor([[0.7, 0.2, 0.1], [float("nan")] * 3])
    weight = torch.ones(2)
    agreeing = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    disagreeing = torch.log(torch.tensor([[0.1, 0.2, 0.7], [0.7, 0.2, 0.1]]))
    assert float(distillation_loss(agreeing, targets, weight)) == pytest.approx(0.0, abs=1e-6)
    expected = 0.7 * math.log(7) + 0.1 * math.log(1 / 7)  # KL(teacher || student) on the first row
    assert float(distillation_loss(disagreeing, targets, weight)) == pytest.approx(expected, rel=1e-4)


def test_loss_is_zero_without_targets() -> None:
    import torch

    from training.distill import distillation_loss

    logits = torch.randn(2, 3, requires_grad=True)
    loss = distillation_loss(logits, torch.full((2, 3), float("nan")), torch.ones(2))
    assert float(loss.detach()) == 0.0
    loss.backward()


def test_training_distils_from_a_teacher(tiny_config: TrainConfig, tiny_model: Path) -> None:
    import torch
    from conftest import tiny_examples

    from training.finetune import train

    config = tiny_config.replace(epochs=2, distill_weight=1.0)
    result = train(tiny_examples(), config, progress=False, teacher=tiny_model)
    assert result.extra["distilled_rows"] > 0
    without = train(tiny_examples(), config.replace(distill_weight=0.0), progress=False, teacher=tiny_model)
    assert without.extra["distilled_rows"] == 0
    # Same seed and batches: only the distillation term differs, so the kept weights must too.
    assert not torch.allclose(result.model.intent_head.weight, without.model.intent_head.weight)


def test_an_unreadable_teacher_only_turns_distillation_off(tiny_config: TrainConfig, tmp_path: Path) -> None:
    from conftest import tiny_examples

    from training.finetune import train

    broken = tmp_path / "v0001"
    broken.mkdir()  # a folder with no model in it
    result = train(tiny_examples(), tiny_config.replace(epochs=1, distill_weight=1.0), progress=False,
                   teacher=broken)
    assert result.extra["distilled_rows"] == 0 and len(result.history) == 1  # the one epoch still trained


def test_distill_weight_out_of_range_is_rejected() -> None:
    from models.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        TrainConfig(distill_weight=-1.0)
    assert "distill_weight" in info.value.what
