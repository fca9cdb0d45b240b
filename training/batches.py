"""Tokenised examples, length-bucketed batches, the masked loss and the learning-rate schedule.

The pieces of a training step that do not depend on the model: kept apart from the training
loop (``training.finetune``) so that each can be read, and tested, on its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from models.modeldir import SENTIMENTS
from training.config import TrainConfig
from training.data import Example

IGNORE = -100  # the label of a row that has no label for this head


class Encoded:
    """Token ids and label tensors for a list of examples, tokenized once."""

    def __init__(self, examples: Sequence[Example], tokenizer: Any, intents: list[str], max_length: int):
        index = {name: i for i, name in enumerate(intents)}
        # The fast tokenizer fails on an empty batch (an empty validation split when val_fraction=0).
        self.ids: list[list[int]] = tokenizer([e.text for e in examples], truncation=True,
                                              max_length=max_length)["input_ids"] if examples else []
        self.intent = torch.tensor([index[e.intent] if e.intent in index else IGNORE for e in examples],
                                   dtype=torch.long)
        self.sentiment = torch.tensor(
            [SENTIMENTS.index(e.sentiment) if e.sentiment else IGNORE for e in examples], dtype=torch.long)
        self.weight = torch.tensor([e.weight for e in examples], dtype=torch.float32)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        # Optional per-row intent distributions to distil (training.distill); NaN rows have none.
        self.teacher: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
        width = max(len(self.ids[r]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            seq = self.ids[r]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        idx = torch.tensor(rows)
        batch = {"input_ids": ids.to(device), "attention_mask": mask.to(device),
                 "intent": self.intent[idx].to(device), "sentiment": self.sentiment[idx].to(device),
                 "weight": self.weight[idx].to(device)}
        if self.teacher is not None:
            batch["teacher"] = self.teacher[idx].to(device)
        return batch


def bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length inside chunks of 50 batches, cut batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 50
    batches = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def intent_grouped_batches(labels: Sequence[int], batch_size: int, per_intent: int,
                           rng: random.Random) -> list[list[int]]:
    """Batches made of runs of ``per_intent`` rows of one intent, so that each row meets positives.

    Each intent's rows are shuffled and cut into runs; the runs are shuffled and packed into batches
    of ``batch_size`` rows. Rows without an intent label form runs of their own. Every row appears once.
    """
    by_intent: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        by_intent.setdefault(int(label), []).append(row)
    runs: list[list[int]] = []
    for rows in by_intent.values():
        rng.shuffle(rows)
        runs.extend(rows[i : i + per_intent] for i in range(0, len(rows), per_intent))
    rng.shuffle(runs)
    flat = [row for run in runs for row in run]
    return [flat[i : i + batch_size] for i in range(0, len(flat), batch_size)]


def supervised_contrastive_loss(embedding: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                                temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al., 2020) over the rows with an intent label and at least one positive.

    ``embedding`` rows are L2-normalised. For each anchor, the mean log-probability of its
    same-intent rows among all the other rows, weighted by the anchor's example weight.
    """
    keep = labels != IGNORE
    emb, lab, w = embedding[keep], labels[keep], weight[keep]
    if len(lab) < 2:
        return embedding.sum() * 0.0
    logits = emb @ emb.t() / temperature
    self_mask = torch.eye(len(lab), dtype=torch.bool, device=emb.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (lab[:, None] == lab[None, :]) & ~self_mask
    counts = positive.sum(dim=1)
    anchors = counts > 0
    if not bool(anchors.any()):
        return embedding.sum() * 0.0
    mean_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1)[anchors] / counts[anchors]
    return -(mean_log_prob * w[anchors]).sum() / w[anchors].sum()


def virtual_outlier_loss(features: torch.Tensor, labels: torch.Tensor, head: nn.Module,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Outlier exposure on synthetic points between two intents (0 if the batch has none).

    A message about a topic the bot was never taught often sits *between* two taught intents
    (Banking77's held-out ``card_payment_not_recognised`` between ``direct_debit_payment_not_recognised``
    and the card-payment intents), where cross-entropy alone leaves the head confident. Each
    labelled row is mixed with its most similar row of another intent in the batch, at a random
    share in [0.35, 0.65], and the head is trained to be uncertain there: cross-entropy against
    the uniform distribution, as in outlier exposure (Hendrycks et al., 2019), on mixup-style
    synthetic outliers instead of a real outlier corpus.
    """
    keep = labels != IGNORE
    x, y = features[keep], labels[keep]
    if len(y) < 2:
        return features.sum() * 0.0
    unit = nn.functional.normalize(x.detach(), p=2, dim=-1)
    similarity = (unit @ unit.t()).masked_fill(y[:, None] == y[None, :], float("-inf"))
    has_partner = torch.isfinite(similarity).any(dim=1)
    if not bool(has_partner.any()):
        return features.sum() * 0.0
    partner = similarity.argmax(dim=1)
    share = torch.rand((len(y), 1), generator=generator, device="cpu").to(x.device) * 0.3 + 0.35
    logits = head(share * x + (1 - share) * x[partner])[has_partner]
    return (torch.logsumexp(logits, dim=1) - logits.mean(dim=1)).mean()


def masked_loss(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, smoothing: float,
                margin: float = 0.0) -> torch.Tensor:
    """Weighted cross-entropy over the rows that have a label (0 if none do).

    ``margin`` (in logit units) is taken off each row's true-class logit first, so a row
    counts as learned only when it beats the other classes by that much (CosFace).
    """
    keep = labels != IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0
    kept, targets = logits[keep], labels[keep]
    if margin:
        kept = kept - margin * nn.functional.one_hot(targets, kept.shape[-1]).to(kept.dtype)
    per_row = nn.functional.cross_entropy(kept, targets, reduction="none", label_smoothing=smoothing)
    w = weight[keep]
    return (per_row * w).sum() / w.sum()


def margin_for(config: TrainConfig) -> float:
    return config.cosine_scale * config.cosine_margin


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor
