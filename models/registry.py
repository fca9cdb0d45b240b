"""The model registry: one folder per version under the data directory, and a pointer.

The active version is a pointer kept by the caller's store (``kv`` in SQLite), so
several replicas sharing one database agree on it, and switching it is a single
row update: atomic. Folders are written complete and renamed into place
(``modeldir.finalize``), so a version folder is never half there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

from models import modeldir
from models.errors import RegistryError

ACTIVE_KEY = "active_model"
PREVIOUS_KEY = "previous_model"
_VERSION = re.compile(r"^v(\d{4,})$")


class Pointer(Protocol):
    def kv_get(self, key: str) -> str | None: ...
    def kv_set(self, key: str, value: str) -> None: ...


class Registry:
    def __init__(self, root: Path, pointer: Pointer) -> None:
        self.root = Path(root)
        self.pointer = pointer

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _VERSION.match(p.name))

    def next_version(self) -> str:
        numbers = [int(_VERSION.match(v).group(1)) for v in self.versions()]  # type: ignore[union-attr]
        return f"v{(max(numbers) + 1) if numbers else 1:04d}"

    def path(self, version: str) -> Path:
        path = self.root / version
        if not path.is_dir():
            known = ", ".join(self.versions()) or "none yet"
            raise RegistryError(f"Model version {version} does not exist (versions: {known}).",
                                "run `csbot models list` to see the versions.")
        return path

    def active(self) -> str | None:
        return self.pointer.kv_get(ACTIVE_KEY)

    def previous(self) -> str | None:
        return self.pointer.kv_get(PREVIOUS_KEY)

    def activate(self, version: str) -> modeldir.ModelCard:
        """Check the version's files, then switch the pointer (the previous one is remembered)."""
        card = modeldir.read(self.path(version))
        current = self.active()
        if current and current != version:
            self.pointer.kv_set(PREVIOUS_KEY, current)
        self.pointer.kv_set(ACTIVE_KEY, version)
        return card

    def active_card(self) -> modeldir.ModelCard | None:
        version = self.active()
        return modeldir.read(self.path(version)) if version else None
