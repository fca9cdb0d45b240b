"""The style rule that every user-facing text lives in one module, checked on the source.

csbot's errors (``CsbotError(what, fix)`` and its subclasses in models/errors.py) read the same in Slack,
the CLI and the logs, and a team rewords or translates them in one place: bot/messages.py for the bot,
models/messages.py for ``models`` and ``training``. This test fails when a new error is raised with its
text written inline (a string literal or an f-string) anywhere else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "models", "training")
TEXT_MODULES = (ROOT / "bot" / "messages.py", ROOT / "models" / "messages.py")


def error_classes() -> set[str]:
    """The names of the classes in models/errors.py: CsbotError and its subclasses."""
    tree = ast.parse((ROOT / "models" / "errors.py").read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def _is_inline_text(node: ast.expr | None) -> bool:
    """A string literal, an f-string, or text glued to one with ``+`` or ``%``."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_inline_text(node.left) or _is_inline_text(node.right)
    return False


def inline_texts(tree: ast.AST, known: set[str]) -> list[tuple[int, str]]:
    """(line, error name) of each call of a csbot error whose ``what`` or ``fix`` is written inline."""
    names = set(known)
    for node in ast.walk(tree):  # `from models.errors import X as Y` names it Y here
        if isinstance(node, ast.ImportFrom) and node.module == "models.errors":
            names |= {alias.asname or alias.name for alias in node.names if alias.name.endswith("Error")}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name not in names:
            continue
        texts = node.args[:2] + [k.value for k in node.keywords if k.arg in ("what", "fix")]
        if any(_is_inline_text(arg) for arg in texts):
            found.append((node.lineno, name))
    return found


def source_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if path not in TEXT_MODULES)


def test_the_rule_knows_the_errors_and_the_files() -> None:
    assert {"CsbotError", "ConfigError", "DataError", "ModelDirError", "RegistryError"} <= error_classes()
    files = {path.relative_to(ROOT).as_posix() for path in source_files()}
    assert {"models/modeldir.py", "training/data.py", "bot/config.py"} <= files
    assert "models/messages.py" not in files and "bot/messages.py" not in files


def test_no_csbot_error_is_raised_with_an_inline_text() -> None:
    known = error_classes()
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}(...)"
                 for path in source_files()
                 for line, name in inline_texts(ast.parse(path.read_text(encoding="utf-8")), known)]
    assert not offenders, ("Put these texts in models/messages.py (or bot/messages.py, for the bot) and raise "
                           "with messages.WHAT.format(...), messages.WHAT_FIX:\n" + "\n".join(offenders))


@pytest.mark.parametrize("code", [
    'raise DataError("The dataset is empty.", messages.DATASET_EMPTY_FIX)',
    'raise DataError(f"Dataset {path} does not exist.", "check the path.")',
    'raise modeldir.ModelDirError(messages.MODEL_DIR_EXISTS.format(dest=dest), "pick another name.")',
    'raise ConfigError(messages.OPTION_INVALID.format(name=n, value=v), fix=f"set {n} to {e}.")',
    'raise CsbotError("--set %r is not KEY=VALUE." % item)',
    'from models.errors import DataError as Bad\nraise Bad(messages.DATASET_EMPTY + " Sorry.")',
])
def test_the_rule_catches_an_inline_text(code: str) -> None:
    assert inline_texts(ast.parse(code), error_classes())


@pytest.mark.parametrize("code", [
    "raise DataError(messages.DATASET_MISSING.format(path=path), messages.DATASET_MISSING_FIX)",
    "raise KnowledgeBaseError(str(path), problems)",
    'raise ValueError(f"max_length {length} is not a token count")',  # internal, never shown as is
])
def test_the_rule_allows_texts_from_a_messages_module(code: str) -> None:
    assert not inline_texts(ast.parse(code), error_classes())


def test_models_messages_imports_nothing() -> None:
    """models/errors.py imports it, and ``models`` must never import ``bot``: it stays a leaf."""
    tree = ast.parse((ROOT / "models" / "messages.py").read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(node, ast.ImportFrom) and node.module == "__future__" for node in imports)


def test_models_messages_are_named_texts() -> None:
    from models import messages

    texts = {name: value for name, value in vars(messages).items() if not name.startswith("_")
             and name != "annotations"}
    assert texts and all(name.isupper() and isinstance(value, str) for name, value in texts.items())
    fixes = [name for name in texts if name.endswith("_FIX")]
    assert all(name[: -len("_FIX")] in texts or name == "MODEL_DIR_FIX" for name in fixes)
