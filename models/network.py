"""The network: one transformer encoder, mean pooling, and two heads (linear or cosine).

Mean pooling over the attention mask (not the pooler/[CLS] output) because the
default encoder, all-MiniLM-L6-v2, was trained as a mean-pooled sentence encoder:
on Banking77 a linear head on the pooler output reached 87.6% after 3 epochs, while
mean pooling reached 93.0% (measured on the 2-core development machine before this
project began; benchmarks/RESULTS.md has every run since).

This module imports torch, so only ``training`` imports it; serving uses the ONNX export.
"""

from __future__ import annotations

import torch
from torch import nn


def mean_pool(token_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token states of real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    summed = (token_states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return summed / counts


class CosineHead(nn.Linear):
    """Logits are ``scale * cos(features, class weight)``: a normalised linear layer.

    Why: with unit-length weights and features, a class's score no longer grows with the
    feature norm, so the top probability means "close to a class" rather than "far out
    on one side of a boundary". That is what the router thresholds and out-of-scope
    detection need, and it keeps few-shot classes (short centroids) on equal terms.
    """

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = nn.functional.normalize(features, p=2, dim=-1)
        w = nn.functional.normalize(self.weight, p=2, dim=-1)
        return self.scale * (x @ w.t())


class IntentSentimentModel(nn.Module):
    """Encoder + mean pooling + an intent head and a sentiment head.

    ``forward`` returns ``(intent_logits, sentiment_logits, embedding)``, which is
    exactly the output signature of the exported ONNX graph. The embedding is the
    L2-normalised pooled vector (cosine-ready for nearest-neighbour lookups).
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, n_intents: int, n_sentiments: int = 3,
                 dropout: float = 0.1, cosine_scale: float = 0.0) -> None:
        super().__init__()
        if n_intents < 1:
            raise ValueError("n_intents must be >= 1")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        # cosine_scale > 0 makes the intent head a CosineHead; 0 keeps the plain linear head.
        self.intent_head: nn.Linear = (CosineHead(hidden_size, n_intents, cosine_scale) if cosine_scale > 0
                                       else nn.Linear(hidden_size, n_intents))
        self.sentiment_head = nn.Linear(hidden_size, n_sentiments)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(states, attention_mask)
        features = self.dropout(pooled)
        embedding = nn.functional.normalize(pooled, p=2, dim=-1)
        return self.intent_head(features), self.sentiment_head(features), embedding

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.intent_head.parameters()) + list(self.sentiment_head.parameters())
