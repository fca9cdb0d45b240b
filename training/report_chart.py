"""The run's ``report.png``: accuracy per version and how the confusion matrix changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bot.store import Store


def _history(store: Store) -> list[tuple[str, float]]:
    from models.registry import version_number

    points = []
    for row in store.db.query("SELECT version, metrics_json FROM model_versions"):
        acc = json.loads(row["metrics_json"] or "{}").get("eval_accuracy")
        if acc is not None:
            points.append((row["version"], float(acc)))
    return sorted(points, key=lambda p: version_number(p[0]))


def save_report_chart(path: Path, history: list[tuple[str, float]], version: str, cand: dict[str, Any],
                      act: dict[str, Any] | None, labels: list[str], promoted: bool, top: int = 20) -> Path:
    """Left: eval accuracy per version (each measured by its own run). Right: how the confusion
    matrix changed from the active model to the candidate (share of each true label; blue on the
    diagonal and red off it is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    if history:
        names, accs = zip(*history, strict=True)
        left.plot(names, accs, marker="o", color="tab:gray")
    if cand.get("accuracy") is not None:
        left.scatter([version], [cand["accuracy"]], s=120, zorder=3,
                     color="tab:green" if promoted else "tab:red",
                     label=f"{version} ({'promoted' if promoted else 'rejected'})")
    if act and act.get("accuracy") is not None:
        left.axhline(act["accuracy"], color="tab:blue", linestyle="--",
                     label=f"active {act['version']} (same eval set)")
    left.set_ylabel("accuracy on the fixed evaluation set")
    left.set_title("Accuracy per version")
    left.tick_params(axis="x", rotation=45)
    left.legend(loc="lower right", fontsize=8)
    if act and act.get("confusion") is not None and cand.get("confusion") is not None:
        c, a = np.asarray(cand["confusion"], float), np.asarray(act["confusion"], float)
        rows = c.sum(axis=1, keepdims=True)
        diff = np.divide(c, rows, out=np.zeros_like(c), where=rows > 0) - \
            np.divide(a, rows, out=np.zeros_like(a), where=rows > 0)
        better = -diff  # fewer mistakes off the diagonal is better ...
        np.fill_diagonal(better, np.diag(diff))  # ... and more hits on it
        order = np.sort(np.argsort(-np.abs(diff).sum(axis=1) - np.abs(diff).sum(axis=0))[:top])
        image = right.imshow(better[np.ix_(order, order)], cmap="RdBu", vmin=-1, vmax=1)
        ticks = range(len(order))
        right.set_xticks(ticks, [labels[i] for i in order], rotation=90, fontsize=7)
        right.set_yticks(ticks, [labels[i] for i in order], fontsize=7)
        right.set_xlabel("predicted")
        right.set_ylabel("true")
        right.set_title(f"Confusion change, {act['version']} -> {version} (blue better, red worse)")
        fig.colorbar(image, ax=right, fraction=0.04)
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no active model to compare with", ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
