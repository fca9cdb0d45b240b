"""Model promotion and rollback: move the active-model pointer atomically, and list the versions.

``promote`` and ``rollback`` verify the version's files first, then move the ``active_model``
pointer and the ``model_versions`` statuses in one SQLite transaction (``_set_active``, which
the training child also uses as the last step of a successful retrain). Running bots pick the
change up with ``Context.refresh_model`` between two messages. ``models_list`` merges what is on
disk with what the database knows, newest first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from bot import messages
from bot.config import Settings
from bot.store import Store, utcnow
from models.errors import CsbotError, RegistryError
from models.registry import Registry

# The same logger as bot.learning: the split into modules is not visible to log filters.
log = logging.getLogger("csbot.learning")


_ANY = object()  # `expected` default: switch whatever is active now
# The version the last rollback left, while no other switch has happened since. A second rollback would
# restore exactly that version (the pointer's "previous"): two admins fixing one bad model at once, or one
# admin clicking twice, would put the bad model back.
ROLLED_BACK_FROM_KEY = "rolled_back_from"


def _set_active(store: Store, registry: Registry, version: str, reason: str,
                expected: str | None | object = _ANY, rolled_back_from: str | None = None,
                promoting_run: int | None = None) -> bool:
    """Check the files, then move the pointer and the statuses in one transaction.

    With ``expected``, switch only if that version is still the active one (a compare-and-set in the
    same transaction), and return False otherwise: a retrain gated its candidate against the model that
    was active when it started, so an admin's promote or rollback meanwhile must win.
    ``rolled_back_from``: this switch is a rollback away from that version (``rollback`` refuses to undo it).
    ``promoting_run``: the retrain run whose candidate this is; it is marked promoted in the same transaction,
    so a job killed right after the switch can never be reported as "failed, the active model not changed"."""
    card = registry.check(version)
    now = utcnow()
    with store.transaction() as db:
        if expected is not _ANY and registry.active() != expected:
            return False
        registry.path(version)  # again, under the write lock: a retrain's prune may have deleted it since the check
        registry.switch(version)
        store.kv_set(ROLLED_BACK_FROM_KEY, rolled_back_from or "")
        if promoting_run is not None:
            db.execute("UPDATE training_runs SET status = 'promoted', version = ? WHERE id = ? AND status = 'running'",
                       [version, promoting_run])
        db.execute("UPDATE model_versions SET status = 'retired' WHERE status = 'active' AND version != ?",
                   [version])
        db.execute(
            "INSERT INTO model_versions (version, path, status, created_at, promoted_at, manifest_hash, reason)"
            " VALUES (?, ?, 'active', ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET status = 'active',"
            " promoted_at = excluded.promoted_at, reason = excluded.reason",
            [version, str(card.path), card.created_at or now, now, card.data_hash, reason])
    return True


def _must_load(registry: Registry, version: str, variants: Sequence[str] = ()) -> None:
    """Open the version's graphs (``variants``, or every one it has) on the CPU; raises the runtime's ModelError.

    Before an admin's switch: matching checksums do not make a file a model (a bad copy, a hand edit recorded
    in the manifest), and a pointer moved to one would stop every bot that starts afterwards. (A retrain's own
    candidate needs no such check: the gate has just scored it through the same runtime.)
    """
    from models.runtime import Classifier

    card = registry.check(version)
    for variant in variants or card.variants:
        Classifier(card, provider="cpu", variant=variant, threads=1)


def promote(settings: Settings, version: str, *, reason: str | None = None) -> dict[str, Any]:
    """Make ``version`` the active model (atomic; running bots swap it in between two messages)."""
    reason = reason or messages.REASON_PROMOTED.format(who=messages.WHO_ADMIN)
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        before = registry.active()
        if before == version:
            raise RegistryError(messages.ALREADY_ACTIVE.format(version=version), messages.ALREADY_ACTIVE_FIX)
        _must_load(registry, version)
        if not _set_active(store, registry, version, reason, expected=before):
            raise _switched_meanwhile(registry, before)
        log.info("model %s promoted (was %s): %s", version, before, reason)
        return {"active": version, "previous": before}


def rollback(settings: Settings, *, who: str = messages.WHO_ADMIN) -> dict[str, Any]:
    """Restore the previously active version, the same way as ``promote``; ``who`` goes into its reason."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        before, target = registry.active(), registry.rollback_target()
        if store.kv_get(ROLLED_BACK_FROM_KEY) == target:
            raise RegistryError(messages.ROLLBACK_AGAIN.format(active=before, target=target),
                                messages.ROLLBACK_AGAIN_FIX.format(target=target))
        _must_load(registry, target)
        if not _set_active(store, registry, target, messages.REASON_ROLLBACK.format(before=before, who=who),
                           expected=before, rolled_back_from=before):
            raise _switched_meanwhile(registry, before)
        log.info("rolled back from %s to %s", before, target)
        return {"active": target, "previous": before}


def _switched_meanwhile(registry: Registry, before: str | None) -> RegistryError:
    """Another promote, rollback or retrain moved the pointer between reading it and switching it."""
    return RegistryError(messages.ACTIVE_CHANGED_MEANWHILE.format(before=before or messages.NO_VERSION,
                                                                  now=registry.active() or messages.NO_VERSION),
                         messages.ACTIVE_CHANGED_MEANWHILE_FIX)


def models_list(settings: Settings) -> list[dict[str, Any]]:
    """Every version on disk or in the database, newest first, with status and headline metrics."""
    with Store(settings.db_path) as store:
        registry = Registry(settings.models_dir, store)
        active, previous = registry.active(), registry.previous()
        rows = {r["version"]: dict(r) for r in store.db.query("SELECT * FROM model_versions")}
        on_disk = set(registry.versions())
        load_problem = _load_problem(settings, registry, active) if active else None
    from models.registry import version_number

    out = []
    # The active pointer too: a version set by hand (or whose row is gone) is still the one bots try to serve.
    listed = set(rows) | on_disk | ({active} if active else set())
    for version in sorted(listed, key=lambda v: (version_number(v), v), reverse=True):
        row = rows.get(version, {"version": version, "status": "candidate"})
        metrics = json.loads(row.get("metrics_json") or "{}")
        out.append({"version": version, "status": "active" if version == active else row.get("status"),
                    "previous": version == previous, "on_disk": version in on_disk,
                    "created_at": row.get("created_at"), "promoted_at": row.get("promoted_at"),
                    "metrics": metrics, "reason": row.get("reason") or "",
                    "load_problem": load_problem if version == active else None})
    return out


def _load_problem(settings: Settings, registry: Registry, version: str) -> str | None:
    """Why ``version`` does not load (its folder, files, checksums or graph), or None when it does.

    The list is what an admin reads first: it called a version with a missing folder or a cut-short graph
    "answering now" while every bot refused it. Only the variant the bots serve is opened, as promote checks."""
    try:
        _must_load(registry, version, [settings.onnx_variant])
    except CsbotError as exc:
        return exc.what
    return None
