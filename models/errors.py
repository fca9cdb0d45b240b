"""The exceptions csbot raises on bad input, as one documented tree.

Every error says what is wrong and how to fix it, and renders to the same text in
Slack, the CLI and the logs (``str(error)``)::

    CsbotError
    ├── ConfigError          a setting or training option is missing or invalid
    ├── DataError            a dataset is empty, has unknown columns or too few examples
    ├── KnowledgeBaseError   the knowledge-base YAML is malformed (lists every problem)
    ├── ModelError           a model cannot be used
    │   ├── ModelDirError    a model directory is incomplete or corrupt
    │   └── ExportError      an ONNX export failed its parity check
    ├── RegistryError        a model version does not exist or cannot be promoted
    └── StoreError           the SQLite database cannot be created or opened

This module sits in ``models`` because it is the package every other one imports.
"""

from __future__ import annotations

from models import messages


class CsbotError(Exception):
    """Base class: ``what`` went wrong, and the ``fix`` a user can apply."""

    def __init__(self, what: str, fix: str = "") -> None:
        self.what = what
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.what}\nFix: {self.fix}" if self.fix else self.what


class ConfigError(CsbotError):
    """A setting (environment, ``.env``) or a training option is missing or invalid."""


class DataError(CsbotError):
    """A dataset cannot be used for training or evaluation."""


class KnowledgeBaseError(CsbotError):
    """The knowledge base is invalid. ``problems`` lists each one with file and line."""

    def __init__(self, path: str, problems: list[str], fix: str | None = None) -> None:
        self.path = path
        self.problems = problems
        count = (messages.KB_PROBLEM_COUNT_ONE if len(problems) == 1 else messages.KB_PROBLEM_COUNT_MANY
                 ).format(count=len(problems))
        body = "\n".join(messages.KB_PROBLEM_ITEM.format(problem=p) for p in problems)
        super().__init__(
            messages.KB_INVALID.format(path=path, count=count, body=body),
            fix or messages.KB_INVALID_FIX.format(path=path),
        )


class ModelError(CsbotError):
    """A model cannot be loaded or used."""


class ModelDirError(ModelError):
    """A model directory is missing a file, or a file does not match its manifest."""


class ExportError(ModelError):
    """The ONNX export disagrees with PyTorch, so it was not saved."""


class RegistryError(CsbotError):
    """A model version is unknown, or the requested promotion/rollback is impossible."""


class StoreError(CsbotError):
    """The SQLite database (or its folder, CSBOT_DATA_DIR) cannot be created, opened or written (busy past the
    timeout, a full disk, a read-only file)."""
