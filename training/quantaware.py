"""Quantisation-aware fine-tuning: the last epochs train through the rounding the int8 export will apply.

The served int8 graph (training.export.quantise_int8) runs onnxruntime's dynamic int8 MatMul: each weight
column rounded to int8 with its own scale, and each activation tensor rounded to uint8 with ONE scale
taken from that message's own minimum and maximum. The encoder's LayerNorm and GELU outputs carry a few
channels 28-85x larger than the rest (benchmarks/RESULTS.md, latency run 4), which stretch that one
scale, so messages near a decision boundary flip between fp32 and int8. Training the last epochs with
the same rounding in the forward pass (gradients pass straight through the rounding) lets the weights
adapt to it.

The MatMuls simulated are those the int8 graph quantises: each layer's attention output projection, both
feed-forward projections, and the two heads. The query/key/value projections live inside onnxruntime's
fused Attention operator, which stays fp32. tests/test_quantaware.py checks the simulation against the
int8 graph's own logits: equal to float rounding where the CPU's kernel is exact. Where it saturates at
8-bit weights (training.int8kernel) no simulation reproduces it, so a quantisation-aware run there trains
for, and exports, 7-bit weights, which that kernel multiplies exactly.

Off by default (``TrainConfig.quant_aware_epochs``): measured on Banking77 (7-bit weights, AMD EPYC), one
such epoch of five raised the int8 graph's agreement with fp32 from 99.16% to 99.42%, two gave 99.32-99.48%:
within noise of the plain 8-bit graph's 99.35%, and short of 99.5% (benchmarks/RESULTS.md, latency run 5).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.network import CosineHead

# Suffixes of the nn.Linear modules, in a BERT-style encoder, that become DynamicQuantizeMatMul nodes.
QUANTISED_SUFFIXES = ("attention.output.dense", "intermediate.dense", "output.dense")


def fake_quant_activation(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Round ``x`` (batch, tokens, features) as DynamicQuantizeLinear would for each message on its own.

    Serving runs one message at a time without padding, so the range is taken per message over its real
    tokens (``mask``: batch x tokens, 1 for a real token). uint8, asymmetric, the range always holding 0.
    """
    real = mask.bool().unsqueeze(-1) if mask is not None and x.dim() == 3 else None  # heads: (batch, features)
    dims = tuple(range(1, x.dim()))
    low = (x if real is None else x.masked_fill(~real, float("inf"))).amin(dim=dims, keepdim=True).clamp(max=0)
    high = (x if real is None else x.masked_fill(~real, float("-inf"))).amax(dim=dims, keepdim=True).clamp(min=0)
    scale = ((high - low) / 255).clamp(min=1e-8).detach()
    zero_point = torch.round(-low / scale).clamp(0, 255).detach()
    rounded = (torch.clamp(torch.round(x / scale) + zero_point, 0, 255) - zero_point) * scale
    return x + (rounded - x).detach()  # straight-through: the forward sees the rounding, the gradient does not


def fake_quant_weight(weight: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Round an nn.Linear weight (out x in) to symmetric int8 with one scale per output feature: within +-127,
    or +-64 for 7 bits (onnxruntime's ``reduce_range``)."""
    limit = 127 if bits == 8 else 64
    scale = (weight.abs().amax(dim=1, keepdim=True) / limit).clamp(min=1e-12).detach()
    rounded = torch.clamp(torch.round(weight / scale), -limit, limit) * scale
    return weight + (rounded - weight).detach()


def quantised_linears(model: nn.Module) -> list[nn.Linear]:
    """The linear layers that the int8 graph quantises: the encoder's (none for a non-BERT layout) and the heads."""
    encoder = [m for name, m in model.named_modules()
               if type(m) is nn.Linear and name.endswith(QUANTISED_SUFFIXES) and ".layer." in f".{name}"]
    heads = [getattr(model, name) for name in ("intent_head", "sentiment_head") if hasattr(model, name)]
    return encoder + heads


def _rounded_forward(linear: nn.Linear, mask: dict[str, torch.Tensor | None], bits: int) -> Any:
    if isinstance(linear, CosineHead):  # the graph rounds the normalised features and the normalised class weights
        def cosine(x: torch.Tensor) -> torch.Tensor:
            features = fake_quant_activation(F.normalize(x, p=2, dim=-1), None)
            return linear.scale * (features @ fake_quant_weight(F.normalize(linear.weight, p=2, dim=-1), bits).t())
        return cosine

    def plain(x: torch.Tensor) -> torch.Tensor:
        return F.linear(fake_quant_activation(x, mask["mask"]), fake_quant_weight(linear.weight, bits), linear.bias)
    return plain


@contextmanager
def simulated_int8(model: nn.Module, weight_bits: int = 8) -> Iterator[int]:
    """Within the block, the model's forward rounds as the int8 graph does; yields how many layers it rounds.

    The attention mask of each call is read by a pre-hook on the model, so the activation ranges skip
    padding. Everything is undone on exit, also after an error.
    """
    linears = quantised_linears(model)
    state: dict[str, torch.Tensor | None] = {"mask": None}

    def remember_mask(_module: nn.Module, args: tuple[Any, ...]) -> None:
        state["mask"] = args[1] if len(args) > 1 else None

    hook = model.register_forward_pre_hook(remember_mask)
    for linear in linears:
        linear.forward = _rounded_forward(linear, state, weight_bits)  # type: ignore[method-assign]
    try:
        yield len(linears)
    finally:
        hook.remove()
        for linear in linears:
            del linear.forward  # back to the class's own forward


def quant_aware_weight_bits() -> int:
    """The weight width a quantisation-aware run trains for, and its int8 export then uses: 7 bits where this CPU's
    int8 kernel saturates at 8 (training.int8kernel; the simulation reproduces an exact kernel only), else 8."""
    from training.int8kernel import int8_matmul_saturates

    return 7 if int8_matmul_saturates() else 8
