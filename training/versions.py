"""The records a retrain leaves about versions: their ``model_versions`` rows, pruned folders, staging left by
killed runs. (The pointer itself moves in ``bot.learning``, in one transaction with the rows.)"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from bot import learning
from bot.store import Store
from models import modeldir
from models.registry import Registry

log = logging.getLogger("csbot.retrain")


def register_version(store: Store, card: modeldir.ModelCard, headline: dict[str, Any], status: str,
                     reason: str) -> None:
    """Record the candidate's row. A version an admin made active meanwhile (`csbot promote` as soon as its
    folder appears) stays active with the admin's reason: the run must not mark the live model rejected."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO model_versions (version, path, status, created_at, metrics_json, manifest_hash, reason)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET"
            " status = CASE WHEN model_versions.status = 'active' THEN 'active' ELSE excluded.status END,"
            " metrics_json = excluded.metrics_json,"
            " reason = CASE WHEN model_versions.status = 'active' THEN model_versions.reason ELSE excluded.reason END",
            [card.version, str(card.path), status, card.created_at, json.dumps(headline), card.data_hash, reason])


def prune_versions(store: Store, registry: Registry, keep: int) -> list[str]:
    """Delete the folders of old versions beyond ``keep`` (never the active or previous one); their rows stay."""
    pruned = registry.prune(keep)
    if pruned:
        with store.transaction() as db:
            for v in pruned:
                db.execute("UPDATE model_versions SET reason = trim(coalesce(reason, '') || ' [files deleted: "
                           "keep_versions]') WHERE version = ?", [v])
        log.info("pruned old versions: %s", ", ".join(pruned))
    return pruned


def clean_staging(root: Path) -> None:
    """Remove staging folders left by killed runs (their pid is in the name)."""
    if not root.is_dir():
        return
    for path in root.iterdir():
        match = re.match(r"^\.v\d+\.staging-(\d+)$", path.name)
        if (match and not learning.pid_alive(int(match.group(1)))) or path.name.startswith(".trash-"):
            shutil.rmtree(path, ignore_errors=True)
