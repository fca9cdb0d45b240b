"""Fine-tuning the two-head model: AdamW, warm-up then linear decay, early stopping.

Why these choices (measured on Banking77, 2 CPU cores; see benchmarks/RESULTS.md):
- Two learning rates: the pretrained body moves slowly, the new heads fast.
- Length-bucketed batches: most messages are short, so padding to the longest message
  in a random batch wastes most of the compute on a CPU.
- Label smoothing 0.1: calibrates confidence, which the router's thresholds rely on.
- A cosine intent head started at the class centroids, with a small margin: +0.3 pt on
  Banking77 and +1.6 pt at 10 examples per intent over a linear head.
- ``freeze_encoder`` (fast mode): embeddings are computed once and only the heads
  train, which costs one forward pass over the data instead of several epochs of
  forward + backward.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from models import messages
from models.errors import CsbotError
from models.modeldir import SENTIMENTS
from models.network import IntentSentimentModel
from training.averaging import WeightAverage
from training.batches import (
    IGNORE,
    Encoded,
    bucketed_batches,
    intent_grouped_batches,
    linear_schedule,
    margin_for,
    masked_loss,
    supervised_contrastive_loss,
    virtual_outlier_loss,
)
from training.centroids import pooled_features, set_centroid_heads
from training.config import TrainConfig
from training.data import Example, check_trainable, split_validation
from training.distill import distillation_loss
from training.encoder import load_encoder
from training.metric_log import MetricLog
from training.pairs import train_pairs
from training.quantaware import quant_aware_weight_bits, simulated_int8
from training.selection import EpochSelector


@dataclass
class TrainResult:
    model: IntentSentimentModel
    tokenizer: Any
    intents: list[str]
    config: TrainConfig
    history: list[dict[str, float]]
    train_examples: list[Example]
    val_examples: list[Example]
    best_epoch: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")



@torch.no_grad()
def predict_logits(model: IntentSentimentModel, data: Encoded, device: torch.device, batch_size: int = 128
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intent logits, sentiment logits and embeddings for every row, in order."""
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.ids[i]))
    outs: list[tuple[np.ndarray, ...]] = [()] * len(data)  # type: ignore[list-item]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        b = data.batch(rows, device)
        il, sl, emb = model(b["input_ids"], b["attention_mask"])
        for j, r in enumerate(rows):
            outs[r] = (il[j].float().cpu().numpy(), sl[j].float().cpu().numpy(), emb[j].float().cpu().numpy())
    return tuple(np.stack([o[k] for o in outs]) for k in range(3))  # type: ignore[return-value]


def _accuracy(logits: np.ndarray, labels: torch.Tensor) -> float | None:
    keep = labels.numpy() != IGNORE
    if not keep.any():
        return None
    return float((logits[keep].argmax(-1) == labels.numpy()[keep]).mean())


def validate(model: IntentSentimentModel, data: Encoded, device: torch.device) -> dict[str, float]:
    if len(data) == 0:  # val_fraction=0: nothing held out, and keep_epoch="last" needs no reading
        return {}
    il, sl, _ = predict_logits(model, data, device)
    metrics = {"val_intent_accuracy": _accuracy(il, data.intent),
               "val_sentiment_accuracy": _accuracy(sl, data.sentiment)}
    return {k: v for k, v in metrics.items() if v is not None}


def train(examples: Sequence[Example], config: TrainConfig, log_dir: Path | None = None,
          progress: bool = True, val_examples: Sequence[Example] | None = None,
          teacher: Path | None = None) -> TrainResult:
    """Fine-tune on ``examples``; hold out a validation split unless ``val_examples`` is given.

    ``teacher``: a model directory (the active version) to distil from where it is right, when
    ``config.distill_weight`` > 0 and the encoder trains (``training.distill``).
    """
    started = time.perf_counter()
    check_trainable(examples, min_per_intent=1 if val_examples is not None or not config.val_fraction else 2)
    seed_everything(config.seed)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    device = pick_device(config.device)
    if val_examples is None:
        train_ex, val_ex = split_validation(examples, config.val_fraction, config.seed)
    else:
        train_ex, val_ex = list(examples), list(val_examples)
    intents = sorted({e.intent for e in examples if e.intent})
    encoder, tokenizer, hidden = load_encoder(config.base_model)
    model = IntentSentimentModel(encoder, hidden, len(intents), len(SENTIMENTS), config.dropout,
                                 config.cosine_scale).to(device)
    train_data = Encoded(train_ex, tokenizer, intents, config.max_length)
    val_data = Encoded(val_ex, tokenizer, intents, config.max_length)
    if teacher is not None and config.distill_weight and not config.freeze_encoder:
        train_data.teacher = _teacher_or_none(teacher, train_ex, intents)
    log = MetricLog(log_dir)
    paired: dict[str, Any] = {}
    if config.pair_iterations:  # fast mode included: its heads then train on the moved embeddings
        if config.freeze_embeddings:
            model.encoder.get_input_embeddings().requires_grad_(False)
        paired = train_pairs(model, train_data, iterations=config.pair_iterations, lr=config.pair_lr,
                             batch_size=config.batch_size, seed=config.seed, device=device, progress=progress)
    if config.head_init == "centroids" and not config.freeze_encoder:  # fast mode does it on its cached features
        set_centroid_heads(model, pooled_features(model, train_data, device), train_data)
    runner = _train_heads_only if config.freeze_encoder else _train_full
    history, best_epoch = runner(model, train_data, val_data, config, device, log, progress)
    log.close()
    model.eval()
    return TrainResult(model.cpu(), tokenizer, intents, config, history, train_ex, val_ex, best_epoch,
                       time.perf_counter() - started,
                       {"sentiment_trained": bool((train_data.sentiment != IGNORE).any()), "device": str(device),
                        "distilled_rows": _distilled_rows(train_data), **paired})


def _teacher_or_none(teacher: Path, examples: Sequence[Example], intents: list[str]) -> torch.Tensor | None:
    from training.distill import teacher_targets

    try:
        return teacher_targets(teacher, examples, intents)
    except CsbotError as exc:  # a teacher that cannot be read must not stop the retrain
        logging.getLogger(__name__).warning("training without distillation: %s", exc)
        return None


def _distilled_rows(data: Encoded) -> int:
    return 0 if data.teacher is None else int((~torch.isnan(data.teacher).any(dim=1)).sum())


def _train_full(model: IntentSentimentModel, train_data: Encoded, val_data: Encoded, config: TrainConfig,
                device: torch.device, log: MetricLog, progress: bool) -> tuple[list[dict[str, float]], int]:
    rng = random.Random(config.seed)
    lengths = [len(x) for x in train_data.ids]
    if config.freeze_embeddings:
        # The word-embedding table is half of MiniLM's parameters; its dense gradient and
        # AdamW update cost a large share of each CPU step for little accuracy.
        for p in model.encoder.get_input_embeddings().parameters():
            p.requires_grad_(False)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    epochs = min(40, max(config.epochs, math.ceil(config.min_steps / steps_per_epoch)))
    if epochs != config.epochs:  # said, so "--epochs 2" running "epoch 1/40" is no mystery
        raised = messages.EPOCHS_RAISED.format(asked=config.epochs, epochs=epochs, steps=steps_per_epoch,
                                               min_steps=config.min_steps)
        if progress:
            tqdm.write(raised)
        else:  # the nightly job: its log
            logging.getLogger(__name__).info("%s", raised)
    config = config.replace(epochs=epochs)
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(
        [*body_param_groups(model, config.lr_body, config.layer_lr_decay),
         {"params": model.head_parameters(), "lr": config.lr_head}],
        weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(int(total * config.warmup_ratio), total))
    average = WeightAverage(model, config.ema_decay) if config.ema_decay else None

    def make_batches() -> list[list[int]]:
        if config.contrastive_weight:  # SupCon needs positives in each batch; length bucketing would scatter them
            return intent_grouped_batches(train_data.intent.tolist(), config.batch_size,
                                          config.contrastive_per_intent, rng)
        return bucketed_batches(lengths, config.batch_size, rng)

    return _epochs(model, train_data, val_data, config, device, log, progress, make_batches, optimizer, scheduler,
                   average=average)


def body_param_groups(model: IntentSentimentModel, lr_body: float, decay: float) -> list[dict[str, Any]]:
    """Optimiser groups for the encoder: one rate, or a rate per layer with ``decay`` < 1.

    Lower layers hold general language features that a small intent dataset should barely
    move; the top layers adapt most. Layers are found by the ``layer.N`` / ``layers.N`` in a
    parameter's name (BERT, RoBERTa, MPNet, ...); the rest (pooler) counts as the top layer
    and the embeddings as the one below layer 0.
    """
    named = [(n, p) for n, p in model.encoder.named_parameters() if p.requires_grad]
    if decay >= 1.0:
        return [{"params": [p for _, p in named], "lr": lr_body}]
    depth = {n: int(m.group(1)) if (m := re.search(r"\blayers?\.(\d+)\.", n)) else None for n, _ in named}
    top = max((d for d in depth.values() if d is not None), default=0)
    groups: dict[int, list[torch.nn.Parameter]] = {}
    for name, param in named:
        level = depth[name] if depth[name] is not None else (-1 if "embed" in name else top)
        groups.setdefault(level, []).append(param)
    return [{"params": ps, "lr": lr_body * decay ** (top - level)} for level, ps in sorted(groups.items())]


def _train_heads_only(model: IntentSentimentModel, train_data: Encoded, val_data: Encoded,
                      config: TrainConfig, device: torch.device, log: MetricLog, progress: bool
                      ) -> tuple[list[dict[str, float]], int]:
    for p in model.encoder_parameters():
        p.requires_grad_(False)
    # One pass through the frozen encoder; then the heads train on cached features.
    feats = pooled_features(model, train_data, device)
    if config.head_init == "centroids":
        set_centroid_heads(model, feats, train_data)
    rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
    epochs = max(config.epochs, 20)
    optimizer = torch.optim.AdamW(model.head_parameters(), lr=config.lr_head, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_schedule(int(steps_per_epoch * epochs * config.warmup_ratio), steps_per_epoch * epochs))

    def head_step(rows: list[int]) -> torch.Tensor:
        idx = torch.tensor(rows)
        x = model.dropout(feats[idx].to(device))
        loss = (masked_loss(model.intent_head(x), train_data.intent[idx].to(device),
                            train_data.weight[idx].to(device), config.label_smoothing, margin_for(config))
                + config.sentiment_loss_weight * masked_loss(
                    model.sentiment_head(x), train_data.sentiment[idx].to(device),
                    train_data.weight[idx].to(device), config.label_smoothing))
        if config.outlier_weight:
            loss = loss + config.outlier_weight * virtual_outlier_loss(
                torch.nn.functional.normalize(feats[idx].to(device), dim=-1), train_data.intent[idx].to(device),
                model.intent_head)
        return loss

    def batches() -> list[list[int]]:
        order = list(range(len(train_data)))
        rng.shuffle(order)
        return [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]

    return _epochs(model, train_data, val_data, config.replace(epochs=epochs), device, log, progress,
                   batches, optimizer, scheduler, step_loss=head_step)


def _epochs(model: IntentSentimentModel, train_data: Encoded, val_data: Encoded, config: TrainConfig,
            device: torch.device, log: MetricLog, progress: bool, make_batches: Callable[[], list[list[int]]],
            optimizer: torch.optim.Optimizer, scheduler: Any,
            step_loss: Callable[[list[int]], torch.Tensor] | None = None, average: WeightAverage | None = None
            ) -> tuple[list[dict[str, float]], int]:
    def full_step(rows: list[int]) -> torch.Tensor:
        b = train_data.batch(rows, device)
        il, sl, embedding = model(b["input_ids"], b["attention_mask"])
        loss = (masked_loss(il, b["intent"], b["weight"], config.label_smoothing, margin_for(config))
                + config.sentiment_loss_weight * masked_loss(sl, b["sentiment"], b["weight"], config.label_smoothing))
        if config.contrastive_weight:
            loss = loss + config.contrastive_weight * supervised_contrastive_loss(
                embedding, b["intent"], b["weight"], config.contrastive_temperature)
        if config.outlier_weight:
            loss = loss + config.outlier_weight * virtual_outlier_loss(embedding, b["intent"], model.intent_head)
        if "teacher" in b:
            loss = loss + config.distill_weight * distillation_loss(il, b["teacher"], b["weight"])
        return loss

    step = step_loss or full_step
    history: list[dict[str, float]] = []
    selector = EpochSelector(config.keep_epoch, int((val_data.intent != IGNORE).sum()), config.patience,
                             config.epochs)
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(1, config.epochs + 1):
        model.train()
        started, total_loss, batches = time.perf_counter(), 0.0, make_batches()
        # No bar where stderr is a file or a pipe (CI, nohup, a service's log): its frames would bury the
        # per-epoch lines, which are written either way.
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                   disable=not progress or not sys.stderr.isatty(), leave=False, dynamic_ncols=True)
        # The last quant_aware_epochs train through the int8 export's rounding (training.quantaware);
        # validation below always reads the plain fp32 model, the one the int8 graph is checked against.
        rounding = (simulated_int8(model, quant_aware_weight_bits())
                    if epoch > config.epochs - config.quant_aware_epochs else nullcontext())
        with rounding:
            for rows in bar:
                loss = step(rows)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                if average is not None:
                    average.update()
                value = loss.item()
                total_loss += value
                bar.set_postfix(loss=f"{value:.3f}")
        with average.applied() if average is not None else nullcontext():
            row = {"epoch": epoch, "train_loss": total_loss / max(1, len(batches)),
                   "epoch_seconds": time.perf_counter() - started, **validate(model, val_data, device)}
            # The tiny train-loss term breaks ties between equal accuracies.
            score = row.get("val_intent_accuracy", 0.0) - 1e-4 * row["train_loss"]
            if selector.observe(epoch, score):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(row)
        log.write(row)
        if progress:
            tqdm.write("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if selector.should_stop(epoch):
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return history, selector.kept_epoch
