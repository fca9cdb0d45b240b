"""Quantisation-aware fine-tuning (training.quantaware): the rounding simulated in PyTorch is the rounding of the
int8 graph that onnxruntime serves, and a run that trains through it exports a model that still passes parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_examples

from models.errors import ConfigError
from training.config import TrainConfig
from training.export import export_onnx, optimise, quantise_int8, run_onnx, run_torch
from training.finetune import train
from training.quantaware import fake_quant_activation, quant_aware_weight_bits, quantised_linears, simulated_int8

TEXTS = ["where is my order", "i want a refund", "forgot my password", "this is terrible", "great service",
         "has my package shipped", "refund status", "locked out of my account", "ok", "what time is it"]


def test_activation_rounding_uses_each_message_s_own_range_over_its_real_tokens() -> None:
    x = torch.tensor([[[0.0, 1.0], [2.0, -1.0], [100.0, 100.0]],  # third token is padding
                      [[0.0, 10.0], [5.0, -10.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    out = fake_quant_activation(x, mask)
    # Message 1's range is [-1, 2] (the padding's 100 is ignored): steps of 3/255, so 1.0 lands within half a step.
    assert abs(float(out[0, 0, 1]) - 1.0) <= 1.5 / 255 + 1e-6
    # Every value lands on its message's own grid of whole steps: 3/255 for message 1, 20/255 for message 2.
    for row, step in ((0, 3 / 255), (1, 20 / 255)):
        steps = (out[row] / step).numpy()
        assert np.allclose(steps, np.round(steps), atol=1e-3)
    assert not np.allclose((out[0, :2] / (20 / 255)).numpy() % 1, 0, atol=1e-3)  # not message 2's grid
    assert torch.equal(out[1, 2], torch.zeros(2))  # zero is always exact
    # The gradient passes straight through the rounding.
    x.requires_grad_(True)
    fake_quant_activation(x, mask).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_the_simulated_rounding_matches_onnxruntime_s_int8_graph(tiny_config: TrainConfig, tmp_path: Path) -> None:
    result = train(tiny_examples(), tiny_config.replace(epochs=3), progress=False)
    model, tokenizer, max_length = result.model, result.tokenizer, result.config.max_length
    export_onnx(model, tokenizer, tmp_path / "raw.onnx")
    body = model.encoder.config
    optimise(tmp_path / "raw.onnx", tmp_path / "fused.onnx", body.num_attention_heads, body.hidden_size)
    # The width this CPU multiplies exactly (7 bits where 8 saturate, training.int8kernel): there the simulation
    # is exact.
    bits = quant_aware_weight_bits()
    quantise_int8(tmp_path / "fused.onnx", tmp_path / "int8.onnx", weight_bits=bits)
    # One message per run, as the bot serves: the int8 graph takes each message's own activation range.
    int8 = np.concatenate([run_onnx(tmp_path / "int8.onnx", tokenizer, [t], max_length)[0] for t in TEXTS])
    fp32 = run_torch(model, tokenizer, TEXTS, max_length)[0]
    with simulated_int8(model, bits) as rounded_layers:
        simulated = run_torch(model, tokenizer, TEXTS, max_length, batch_size=4)[0]  # padded batches: mask honoured
    assert rounded_layers == 3 * body.num_hidden_layers + 2  # and the two heads
    plain_gap, simulated_gap = np.abs(fp32 - int8).max(), np.abs(simulated - int8).max()
    assert plain_gap > 1e-4  # the int8 graph really rounds...
    assert simulated_gap < 1e-4 < plain_gap / 100  # ...and the simulation reproduces it to float rounding
    # Leaving the block restores the plain model exactly.
    np.testing.assert_array_equal(run_torch(model, tokenizer, TEXTS, max_length)[0], fp32)
    assert all("forward" not in vars(m) for m in quantised_linears(model))


def test_quant_aware_epochs_train_and_export_with_parity(tiny_config: TrainConfig, tmp_path: Path) -> None:
    from training.pipeline import build_model

    config = tiny_config.replace(epochs=4, quant_aware_epochs=2, export_int8=True)
    dest = tmp_path / "model"
    build_model(tiny_examples(), config, dest, version="qat-1", progress=False)
    assert (dest / "model.onnx").is_file()
    saved = json.loads((dest / "training_config.json").read_text(encoding="utf-8"))
    assert saved["quant_aware_epochs"] == 2
    # Its int8 graph has the weight width it trained for (7 bits where this CPU's kernel saturates at 8).
    int8 = json.loads((dest / "metrics.json").read_text(encoding="utf-8"))["parity"]["int8"]
    assert int8["weight_bits"] == quant_aware_weight_bits()


@pytest.mark.parametrize("value", [-1, 5])
def test_quant_aware_epochs_must_fit_in_the_run(tiny_config: TrainConfig, value: int) -> None:
    with pytest.raises(ConfigError) as info:
        tiny_config.replace(epochs=4, quant_aware_epochs=value)
    assert "quant_aware_epochs" in info.value.what and "up to epochs" in info.value.fix
