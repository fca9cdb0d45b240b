"""A contrastive pair stage before the heads train (SetFit's first stage), for few examples per intent.

Each labelled message is paired ``pair_iterations`` times with a random message of its own intent
(target cosine 1) and one of another intent (target 0), and the encoder is trained on the squared
error between the pooled embeddings' cosine and that target. With 10 examples per intent this turns
770 labelled messages into tens of thousands of training pairs. The heads then start from the
centroids of the moved embeddings (``training.finetune``), and train as usual.
"""

from __future__ import annotations

import math
import random
import sys
from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.network import IntentSentimentModel
from training.batches import IGNORE, Encoded, linear_schedule

Pair = tuple[int, int, float]


def make_pairs(intents: list[int], iterations: int, rng: random.Random) -> list[Pair]:
    """(row, row, target) pairs: per labelled row and iteration, one positive and one negative."""
    by_intent: dict[int, list[int]] = defaultdict(list)
    for row, intent in enumerate(intents):
        if intent != IGNORE:
            by_intent[intent].append(row)
    labelled = [row for rows in by_intent.values() for row in rows]
    if len(by_intent) < 2:
        return []
    pairs: list[Pair] = []
    for _ in range(iterations):
        for row in labelled:
            own = by_intent[intents[row]]
            if len(own) > 1:
                other = rng.choice(own)
                while other == row:
                    other = rng.choice(own)
                pairs.append((row, other, 1.0))
            negative = rng.choice(labelled)
            while intents[negative] == intents[row]:
                negative = rng.choice(labelled)
            pairs.append((row, negative, 0.0))
    rng.shuffle(pairs)
    return pairs


def train_pairs(model: IntentSentimentModel, data: Encoded, *, iterations: int, lr: float, batch_size: int,
                seed: int, device: torch.device, progress: bool) -> dict[str, Any]:
    """Move the encoder with the pair loss; returns what was done, for the run's metrics."""
    pairs = make_pairs(data.intent.tolist(), iterations, random.Random(seed))
    if not pairs:
        return {"pairs": 0}
    params = [p for p in model.encoder_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = math.ceil(len(pairs) / batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(int(steps * 0.1), steps))
    model.train()
    total = 0.0
    bar = tqdm(range(0, len(pairs), batch_size), desc="pairs", unit="batch",
               disable=not progress or not sys.stderr.isatty(), leave=False)  # no bar frames in a log file
    for start in bar:
        chunk = pairs[start:start + batch_size]
        rows = [a for a, _, _ in chunk] + [b for _, b, _ in chunk]
        batch = data.batch(rows, device)
        _, _, embedding = model(batch["input_ids"], batch["attention_mask"])
        left, right = embedding[: len(chunk)], embedding[len(chunk):]
        target = torch.tensor([t for _, _, t in chunk], device=device)
        loss = F.mse_loss(F.cosine_similarity(left, right), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        total += value
        bar.set_postfix(loss=f"{value:.3f}")
    return {"pairs": len(pairs), "pair_steps": steps, "pair_loss": total / steps}
