"""Full or fast: which kind of retrain to run, and building the version either kind produces.

``full``: fine-tune the whole encoder (from the base model, so a retrain is reproducible from
its data and never compounds an earlier run's drift) plus both heads. With ``distill_weight`` > 0
it is also pulled towards the active version's answers on the training messages that version gets
right (``training.distill``), which keeps versions consistent without inheriting their mistakes. Cost on 2 CPU cores:
about 11 ms per training example per epoch (Banking77: 9,000 examples, ~100 s an epoch; the
default is 3 epochs), then export, parity and evaluation (~1 min for MiniLM).

``fast``: keep the active version's fine-tuned encoder (saved in its ``encoder/`` folder) frozen
and train only the two heads on cached sentence embeddings: one forward pass over the data
(about a tenth of one full epoch) plus a few seconds of head training. It can only re-draw the
decision boundaries in the embedding space the active model already has, which is enough for
a handful of corrections and not for many new phrasings.

``auto`` picks ``fast`` when all of these hold, else ``full``:

- the active version has a saved encoder and the same intents as the new data;
- at most ``FAST_MAX_NEW`` (25) training examples are new since the active version's data,
  and they are at most ``FAST_MAX_SHARE`` (5%) of the dataset.

The gate (``training.gate``) judges either kind the same way, so a fast run that cannot fit the
corrections is simply rejected and the next larger batch of data triggers a full run.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from models import modeldir
from training.config import TrainConfig
from training.data import Example
from training.dataset import RetrainDataset, example_key

ENCODER_DIR = "encoder"
DATA_KEYS_FILE = "data_keys.json"
FAST_MAX_NEW = 25
FAST_MAX_SHARE = 0.05


def _data_keys(examples: Sequence[Example]) -> set[str]:
    return {example_key(e) for e in examples}


def trained_keys(card: modeldir.ModelCard | None) -> set[str]:
    """What ``card``'s version trained on (``example_key`` of each example); empty when it did not record it."""
    if card is None or not (card.path / DATA_KEYS_FILE).is_file():
        return set()
    return set(json.loads((card.path / DATA_KEYS_FILE).read_text()))


def choose_mode(requested: str, data: RetrainDataset, active: modeldir.ModelCard | None,
                active_trained: set[str] | None = None) -> tuple[str, str, int]:
    """(mode, why, number of new training examples) -- see the module docstring for the rule.

    ``active_trained``: ``trained_keys(active)`` when the caller has already read it."""
    known = trained_keys(active) if active_trained is None else active_trained
    new = len(_data_keys(data.train) - known)
    can_fast, why_not = True, ""
    if active is None:
        can_fast, why_not = False, "there is no active model to start from"
    elif not (active.path / ENCODER_DIR).is_dir():
        can_fast, why_not = False, f"the active version {active.version} has no saved encoder"
    elif set(active.intents) != set(data.intents):
        can_fast, why_not = False, "the set of intents changed"
    if requested == "full":
        return "full", "requested", new
    if requested == "fast":
        return ("fast", "requested", new) if can_fast else ("full", f"fast requested but {why_not}", new)
    if not can_fast:
        return "full", why_not, new
    limit = min(FAST_MAX_NEW, int(FAST_MAX_SHARE * len(data.train)))
    if new <= limit:
        return "fast", f"{new} new examples (<= {limit}): heads only on the active encoder", new
    return "full", f"{new} new examples (> {limit})", new


# --- train and export ----------------------------------------------------------------------------


def build_version(data: RetrainDataset, config: TrainConfig, dest: Path, version: str, run_dir: Path,
                  progress: bool = False, teacher: Path | None = None,
                  calibration: Sequence[Example] | None = None) -> modeldir.ModelCard:
    """Fine-tune, save the encoder (for later fast runs), export with parity, and rename into place.

    ``teacher``: the active version's folder, distilled from when ``config.distill_weight`` > 0.
    ``calibration``: the held-out examples the router's thresholds are fitted on besides the validation
    split (default: the fixed evaluation set).
    """
    from training.finetune import train
    from training.pipeline import _write

    staging = dest.parent / f".{dest.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        result = train(data.train, config, log_dir=run_dir, progress=progress, teacher=teacher)
        encoder = staging / ENCODER_DIR
        result.model.encoder.save_pretrained(encoder)
        result.tokenizer.save_pretrained(encoder)
        (staging / DATA_KEYS_FILE).write_text(json.dumps(sorted(_data_keys(data.train))))
        # A fast run's frozen encoder is the active version's, fine-tuned on nearly all of this validation
        # split: only the fixed evaluation set is unseen data for fitting the router's thresholds.
        held = list(data.eval if calibration is None else calibration)
        return _write(result, staging, dest, version, data.eval, data.manifest, progress, calibration=held,
                      calibration_only=config.freeze_encoder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
