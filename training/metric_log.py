"""Per-epoch training metrics: a JSONL file, and TensorBoard when it is installed."""

from __future__ import annotations

import json
from pathlib import Path


class MetricLog:
    """Per-epoch metrics to ``metrics.jsonl``, and to TensorBoard when it is installed."""

    def __init__(self, log_dir: Path | None) -> None:
        self.file = None
        self.tb = None
        if log_dir is None:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        self.file = (log_dir / "metrics.jsonl").open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(log_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self.tb = None

    def write(self, row: dict[str, float]) -> None:
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()
        if self.tb:
            for key, value in row.items():
                if key != "epoch":
                    self.tb.add_scalar(key, value, int(row["epoch"]))

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()
