"""Optimiser options of the fine-tune, on the tiny BERT: layer-wise learning-rate decay and weight averaging."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.errors import ConfigError
from training.config import TrainConfig


def trained_differently(a, b) -> bool:  # noqa: ANN001 - two TrainResults
    """Same seed and data: different kept weights show that an option really changed the training."""
    import torch

    return not torch.allclose(a.model.intent_head.weight, b.model.intent_head.weight)

def _tiny_network(tiny_base: Path):
    from models.network import IntentSentimentModel
    from training.encoder import load_encoder

    encoder, _, hidden = load_encoder(str(tiny_base))
    return IntentSentimentModel(encoder, hidden, 3, 3, 0.1, 20.0)


def test_layer_decay_gives_lower_layers_smaller_rates(tiny_base: Path) -> None:
    from training.finetune import body_param_groups

    model = _tiny_network(tiny_base)
    groups = body_param_groups(model, 1e-3, 0.5)
    # The tiny BERT has 2 layers: embeddings, layer 0, layer 1 (+ pooler) -> three rates, top = lr_body.
    assert [g["lr"] for g in groups] == pytest.approx([2.5e-4, 5e-4, 1e-3])
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.encoder.parameters())  # each parameter exactly once
    layer0 = {id(p) for n, p in model.encoder.named_parameters() if ".layer.0." in n}
    assert layer0 == {id(p) for p in groups[1]["params"]}


def test_no_decay_is_one_group_and_skips_frozen_parameters(tiny_base: Path) -> None:
    from training.finetune import body_param_groups

    model = _tiny_network(tiny_base)
    model.encoder.get_input_embeddings().weight.requires_grad_(False)
    groups = body_param_groups(model, 1e-3, 1.0)
    assert len(groups) == 1 and groups[0]["lr"] == 1e-3
    assert id(model.encoder.get_input_embeddings().weight) not in {id(p) for p in groups[0]["params"]}


def test_layer_decay_trains(tiny_config: TrainConfig) -> None:
    from conftest import tiny_examples

    from training.finetune import train

    config = tiny_config.replace(epochs=2)
    result = train(tiny_examples(), config.replace(layer_lr_decay=0.7), progress=False)
    assert len(result.history) == 2
    assert trained_differently(result, train(tiny_examples(), config, progress=False))  # the option is used


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_layer_decay_out_of_range_is_rejected(bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(layer_lr_decay=bad)
    assert "layer_lr_decay" in info.value.what and "0.85" in info.value.fix


# --- weight averaging


def test_weight_average_tracks_the_weights_and_swaps_back() -> None:
    import torch

    from training.averaging import WeightAverage

    layer = torch.nn.Linear(2, 2)
    start = layer.weight.detach().clone()
    average = WeightAverage(layer, decay=0.5)
    with torch.no_grad():
        layer.weight.add_(1.0)
    average.update()  # first update: effective decay min(0.5, 2/11) -> mostly the new weights
    raw = layer.weight.detach().clone()
    with average.applied():
        inside = layer.weight.detach().clone()
    assert torch.allclose(inside, start + 1.0 - 2 / 11)  # lerp(start, start + 1, 1 - 2/11)
    assert torch.equal(layer.weight, raw)  # the raw weights come back after the block


def test_ema_training_keeps_the_averaged_weights(tiny_config: TrainConfig) -> None:
    import torch
    from conftest import tiny_examples

    from training.finetune import train

    config = tiny_config.replace(epochs=3, patience=0)
    raw = train(tiny_examples(), config, progress=False)
    averaged = train(tiny_examples(), config.replace(ema_decay=0.9), progress=False)
    assert len(averaged.history) == 3 and "val_intent_accuracy" in averaged.history[0]
    # Same seed, same batches: only the averaging differs, so the kept weights must differ.
    head_raw, head_avg = raw.model.intent_head.weight, averaged.model.intent_head.weight
    assert not torch.allclose(head_raw, head_avg)


@pytest.mark.parametrize("bad", [0.3, 1.0, -0.5])
def test_ema_decay_out_of_range_is_rejected(bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(ema_decay=bad)
    assert "ema_decay" in info.value.what and "0.998" in info.value.fix


# --- supervised contrastive loss (few examples per intent)


def test_intent_grouped_batches_cover_every_row_once_in_runs_of_one_intent() -> None:
    import random

    from training.batches import IGNORE, intent_grouped_batches

    labels = [0] * 9 + [1] * 6 + [2] * 5 + [IGNORE] * 3
    batches = intent_grouped_batches(labels, batch_size=8, per_intent=4, rng=random.Random(1))
    rows = [r for b in batches for r in b]
    assert sorted(rows) == list(range(len(labels)))
    assert all(len(b) == 8 for b in batches[:-1])
    # Runs of up to 4 rows of one intent: most rows share their batch with others of their intent.
    assert sum(len(b) - len({labels[r] for r in b}) for b in batches) >= 14


def test_contrastive_loss_is_low_when_intents_are_clustered() -> None:
    import torch

    from training.batches import IGNORE, supervised_contrastive_loss

    labels = torch.tensor([0, 0, 1, 1, IGNORE])
    weight = torch.ones(5)
    axis = torch.eye(3)
    clustered = torch.stack([axis[0], axis[0], axis[1], axis[1], axis[2]])
    mixed = torch.stack([axis[0], axis[1], axis[0], axis[1], axis[2]])
    low = supervised_contrastive_loss(clustered, labels, weight, 0.1)
    high = supervised_contrastive_loss(mixed, labels, weight, 0.1)
    assert float(low) < 0.01 < 5.0 < float(high)


def test_contrastive_loss_is_zero_without_positives() -> None:
    import torch

    from training.batches import supervised_contrastive_loss

    embedding = torch.nn.functional.normalize(torch.randn(3, 4, requires_grad=True), dim=-1)
    loss = supervised_contrastive_loss(embedding, torch.tensor([0, 1, 2]), torch.ones(3), 0.1)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph, so a batch without positives does not break the step


def test_contrastive_option_trains(tiny_config: TrainConfig) -> None:
    from conftest import tiny_examples

    from training.finetune import train

    config = tiny_config.replace(epochs=2, contrastive_weight=0.5, contrastive_per_intent=2)
    result = train(tiny_examples(), config, progress=False)
    assert len(result.history) == 2
    assert trained_differently(result, train(tiny_examples(), config.replace(contrastive_weight=0.0), progress=False))


def test_outlier_loss_is_high_where_the_head_is_sure_between_two_intents() -> None:
    import math

    import torch

    from models.network import CosineHead
    from training.batches import IGNORE, virtual_outlier_loss

    axis = torch.eye(3)
    features = torch.stack([axis[0], axis[1], axis[1]])
    labels = torch.tensor([0, 1, IGNORE])
    sure = CosineHead(3, 3, scale=20.0)
    unsure = CosineHead(3, 3, scale=20.0)
    with torch.no_grad():
        sure.weight.copy_(axis)  # points between intents 0 and 1 score high on both, 0 on intent 2
        unsure.weight.copy_(torch.ones(3, 3))  # every class the same: the uniform distribution everywhere
    generator = torch.Generator().manual_seed(0)
    # Cross-entropy against the uniform distribution is at least log(classes), reached when unsure.
    assert virtual_outlier_loss(features, labels, unsure, generator).item() == pytest.approx(math.log(3), abs=1e-5)
    assert virtual_outlier_loss(features, labels, sure, generator).item() > math.log(3) + 1.0


def test_outlier_loss_is_zero_without_two_intents() -> None:
    import torch

    from models.network import CosineHead
    from training.batches import IGNORE, virtual_outlier_loss

    features = torch.randn(3, 4, requires_grad=True)
    head = CosineHead(4, 2, scale=20.0)
    loss = virtual_outlier_loss(features, torch.tensor([1, 1, IGNORE]), head)
    assert float(loss.detach()) == 0.0
    loss.backward()  # still part of the graph, so such a batch does not break the step


@pytest.mark.parametrize("freeze", [False, True])
def test_outlier_option_trains_full_and_heads_only(tiny_config: TrainConfig, freeze: bool) -> None:
    from conftest import tiny_examples

    from training.finetune import train

    config = tiny_config.replace(epochs=2, outlier_weight=0.2, freeze_encoder=freeze)
    result = train(tiny_examples(), config, progress=False)
    assert result.history
    assert trained_differently(result, train(tiny_examples(), config.replace(outlier_weight=0.0), progress=False))


@pytest.mark.parametrize("changes", [{"outlier_weight": -0.1}, {"outlier_weight": 0.2, "cosine_scale": 0.0,
                                                                 "cosine_margin": 0.0}])
def test_outlier_option_out_of_range_is_rejected(changes: dict[str, float]) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    assert "outlier_weight" in info.value.what


@pytest.mark.parametrize(("field", "bad"), [("contrastive_weight", -1.0), ("contrastive_temperature", 0.0),
                                            ("contrastive_per_intent", 1)])
def test_contrastive_options_out_of_range_are_rejected(field: str, bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: bad})
    assert field in info.value.what


# --- the contrastive pair stage (SetFit's first stage)


def test_pairs_match_one_positive_and_one_negative_per_row_and_round() -> None:
    import random

    from training.batches import IGNORE
    from training.pairs import make_pairs

    intents = [0, 0, 0, 1, 1, 2, IGNORE]  # intent 2 has one example: no positive for it, still a negative
    pairs = make_pairs(intents, iterations=3, rng=random.Random(0))
    assert len(pairs) == 3 * (5 * 2 + 1)
    for a, b, target in pairs:
        assert IGNORE not in (intents[a], intents[b]) and a != b
        assert (intents[a] == intents[b]) == (target == 1.0)
    assert make_pairs([0, 0, IGNORE], iterations=3, rng=random.Random(0)) == []  # one intent: nothing to contrast


def test_pair_stage_moves_the_encoder_and_is_reported(tiny_config: TrainConfig) -> None:
    from conftest import tiny_examples

    from training.finetune import train

    plain = train(tiny_examples(), tiny_config.replace(epochs=1), progress=False)
    paired = train(tiny_examples(), tiny_config.replace(epochs=1, pair_iterations=2, pair_lr=1e-3), progress=False)
    assert paired.extra["pairs"] > 0 and paired.extra["pair_steps"] >= 1 and "pair_loss" in paired.extra
    assert "pairs" not in plain.extra
    assert trained_differently(plain, paired)


@pytest.mark.parametrize(("name", "bad"), [("pair_iterations", -1), ("pair_iterations", 101), ("pair_lr", 0.0)])
def test_pair_options_out_of_range_are_rejected(name: str, bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{name: bad})
    assert name in info.value.what


def test_loading_a_local_base_model_prints_no_weights_bar(tiny_base: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """First run showed transformers' own "Loading weights" bar before ours; a folder on disk loads quietly."""
    from transformers.utils import logging as hf_logging

    _tiny_network(tiny_base)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for a later download from the Hub
