"""Metrics and charts: accuracy, macro-F1, per-intent F1, confusion matrix.

Pure numpy (plus matplotlib for the PNG), so the same code scores PyTorch logits
during training and onnxruntime predictions from a saved model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n: int) -> np.ndarray:
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]
                          ) -> dict[str, Any]:
    """Accuracy, macro-F1, per-label precision/recall/F1/support, and the most-confused pairs."""
    n = len(labels)
    matrix = confusion(y_true, y_pred, n)
    tp = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(1, support.sum())),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "samples": int(support.sum()),
        "per_label": {labels[i]: {"precision": float(precision[i]), "recall": float(recall[i]),
                                  "f1": float(f1[i]), "support": int(support[i])} for i in range(n) if present[i]},
        "confused_pairs": top_confused(matrix, labels),
        "confusion": matrix.tolist(),
    }


def top_confused(matrix: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict[str, Any]]:
    """The k label pairs most often mixed up, counting both directions."""
    both = matrix + matrix.T
    pairs = [(int(both[i, j]), i, j) for i in range(len(labels)) for j in range(i + 1, len(labels)) if both[i, j]]
    pairs.sort(reverse=True)
    return [{"a": labels[i], "b": labels[j], "count": c, "a_as_b": int(matrix[i, j]), "b_as_a": int(matrix[j, i])}
            for c, i, j in pairs[:k]]


def binary_sentiment_accuracy(sentiment_logits: np.ndarray, gold: Sequence[str]) -> float:
    """Score negative against positive only (for data such as SST-2 with no neutral class)."""
    neg, pos = 0, 2
    pred = np.where(sentiment_logits[:, pos] > sentiment_logits[:, neg], "positive", "negative")
    return float((pred == np.asarray(gold)).mean())


def save_confusion_png(matrix: np.ndarray | list[list[int]], labels: Sequence[str], path: Path,
                       title: str = "Confusion matrix") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.asarray(matrix, dtype=float)
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    size = max(6.0, 0.18 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(labels))
    fontsize = 8 if len(labels) <= 40 else 5
    ax.set_xticks(ticks, labels, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.03, label="share of true label")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
