"""Starting the heads at each class's mean embedding, and the one pass that computes the embeddings."""

from __future__ import annotations

import torch

from models.network import IntentSentimentModel
from training.batches import Encoded


@torch.no_grad()
def set_centroid_heads(model: IntentSentimentModel, feats: torch.Tensor, data: Encoded) -> None:
    """Start each head at its classes' mean embedding (a nearest-centroid classifier).

    A random head sends noisy gradients into the pretrained body for the first few
    hundred steps; starting from the centroids costs one forward pass and matters
    most when there are few examples per intent.
    """
    # logit_k = w_k . x with |x| ~ mean norm, so w_k = 10 * unit(centroid_k) / mean norm
    # gives logits of about 10 * cos(x, centroid_k): confident but not saturated.
    scale = 10.0 / float(feats.norm(dim=1).mean().clamp(min=1e-6))
    for head, labels in ((model.intent_head, data.intent), (model.sentiment_head, data.sentiment)):
        for k in range(head.out_features):
            rows = labels == k
            if bool(rows.any()):
                centroid = feats[rows].mean(0)
                head.weight[k] = (centroid / centroid.norm().clamp(min=1e-6) * scale).to(head.weight.device)
        if head.bias is not None:
            head.bias.zero_()


@torch.no_grad()
def pooled_features(model: IntentSentimentModel, data: Encoded, device: torch.device) -> torch.Tensor:
    from models.network import mean_pool

    model.eval()
    feats = torch.zeros(len(data), model.intent_head.in_features)
    # Sorted by length so each batch pads to its own longest row, not to the longest of a random
    # 128: on 67k SST-2 phrases that is the difference between minutes and seconds.
    order = sorted(range(len(data)), key=lambda i: len(data.ids[i]))
    for start in range(0, len(order), 128):
        rows = order[start : start + 128]
        b = data.batch(rows, device)
        states = model.encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        feats[torch.tensor(rows)] = mean_pool(states, b["attention_mask"]).cpu()
    return feats
