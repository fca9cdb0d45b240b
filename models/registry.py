"""The model registry: one folder per version under the data directory, and a pointer.

The active version is a pointer kept by the caller's store (``kv`` in SQLite), so
several replicas sharing one database agree on it, and switching it is a single
transaction: atomic. Folders are written complete and renamed into place
(``modeldir.finalize``), so a version folder is never half there; pruning renames a
folder out of the version namespace before deleting it, for the same reason.

A version's lifecycle (``model_versions.status`` in SQLite, kept by ``bot.learning``):
``candidate`` (registered, gate pending) -> ``active`` (the pointer) or ``rejected``
(the gate said no, with the reason); an active version that is replaced becomes
``retired``. ``previous_model`` remembers the version that was active before the
current one, which is what ``rollback`` restores.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from models import messages, modeldir
from models.errors import RegistryError

ACTIVE_KEY = "active_model"
PREVIOUS_KEY = "previous_model"
STATUSES = ("candidate", "active", "rejected", "retired")
_VERSION = re.compile(r"^v(\d{4,9})$")  # v0001 ... (bounded: a name must fit the file system)


class Pointer(Protocol):
    def kv_get(self, key: str) -> str | None: ...
    def kv_set(self, key: str, value: str) -> None: ...


def version_number(version: str) -> int:
    match = _VERSION.match(version)
    return int(match.group(1)) if match else -1


class Registry:
    def __init__(self, root: Path, pointer: Pointer) -> None:
        self.root = Path(root)
        self.pointer = pointer

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted((p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name)),
                      key=version_number)

    def next_version(self, taken: Iterable[str] = ()) -> str:
        """One past every name used so far: folders, the pointers and ``taken`` (the names the caller's
        records hold). A folder deleted by hand must not free its name: ``previous_model``, the run
        records and the version rows would then speak of another model under it."""
        names = [*self.versions(), *taken, self.active() or "", self.previous() or ""]
        numbers = [n for n in map(version_number, names) if n > 0]
        return f"v{(max(numbers) + 1) if numbers else 1:04d}"

    def path(self, version: str) -> Path:
        path = self.root / version
        # Checked by name first: "../x" or a 300-character word must not reach the file system.
        if not _VERSION.match(version) or not path.is_dir():
            role = self._role(version) if _VERSION.match(version) else None
            if role:  # a pointer names it, so it did exist: say which folder is gone and how to get going again
                raise RegistryError(messages.VERSION_FOLDER_MISSING.format(version=version, role=role, path=path),
                                    messages.VERSION_FOLDER_MISSING_FIX.format(root=self.root))
            known = ", ".join(self.versions()) or messages.VERSIONS_NONE_YET
            raise RegistryError(messages.VERSION_UNKNOWN.format(version=version, known=known),
                                messages.VERSION_UNKNOWN_FIX)
        return path

    def _role(self, version: str) -> str | None:
        """What a pointer makes ``version``: the active or the previous one (None: no pointer names it)."""
        if version == self.active():
            return messages.VERSION_ROLE_ACTIVE
        return messages.VERSION_ROLE_PREVIOUS if version == self.previous() else None

    def active(self) -> str | None:
        return self.pointer.kv_get(ACTIVE_KEY)

    def previous(self) -> str | None:
        return self.pointer.kv_get(PREVIOUS_KEY)

    def check(self, version: str) -> modeldir.ModelCard:
        """Read and verify a version's files (checksums included); raise if anything is wrong."""
        return modeldir.read(self.path(version))

    def _transaction(self) -> AbstractContextManager[Any]:
        begin = getattr(self.pointer, "transaction", None)
        return begin() if callable(begin) else nullcontext()

    def switch(self, version: str) -> None:
        """Move the pointer to ``version`` (remembering the current one as previous) in one
        transaction. Does not check the files: call ``check`` first (``activate`` does both)."""
        with self._transaction():
            current = self.active()
            if current and current != version:
                self.pointer.kv_set(PREVIOUS_KEY, current)
            self.pointer.kv_set(ACTIVE_KEY, version)

    def activate(self, version: str) -> modeldir.ModelCard:
        """Check the version's files, then switch the pointer (the previous one is remembered)."""
        card = self.check(version)
        self.switch(version)
        return card

    def rollback_target(self) -> str:
        """The version ``rollback`` would restore, or RegistryError saying why there is none."""
        previous = self.previous()
        if not previous or previous == self.active():
            raise RegistryError(messages.NO_PREVIOUS_VERSION, messages.NO_PREVIOUS_VERSION_FIX)
        if not (self.root / previous).is_dir():
            raise RegistryError(messages.PREVIOUS_DELETED.format(previous=previous), messages.PREVIOUS_DELETED_FIX)
        return previous

    def active_card(self) -> modeldir.ModelCard | None:
        version = self.active()
        return modeldir.read(self.path(version)) if version else None

    def prune(self, keep: int, protect: Iterable[str | None] = ()) -> list[str]:
        """Delete all but the newest ``keep`` version folders; the active and previous
        versions (and ``protect``) are never deleted. Returns the deleted versions."""
        keep = max(1, keep)
        deleted = []
        # Reading the pointer and moving folders aside happen in one write transaction, so a promote of an
        # old version (which re-checks its folder inside its own transaction) runs wholly before or after.
        with self._transaction():
            safe = {v for v in (self.active(), self.previous(), *protect) if v}
            versions = self.versions()
            newest = set(versions[-keep:])
            for version in versions:
                if version in newest or version in safe:
                    continue
                # Rename first: a reader never sees a half-deleted version folder.
                trash = self.root / f".trash-{version}"
                shutil.rmtree(trash, ignore_errors=True)
                (self.root / version).rename(trash)
                deleted.append(version)
        for version in deleted:
            shutil.rmtree(self.root / f".trash-{version}", ignore_errors=True)
        return deleted
