"""The on-disk model format: a self-describing directory.

A model directory holds everything needed to serve and to audit a model::

    model.onnx            the graph (inputs input_ids, attention_mask; outputs
                          intent_logits, sentiment_logits, embedding)
    model.int8.onnx       optional CPU variant, present only if it passed the accuracy check
    tokenizer.json        the fast tokenizer (read by `tokenizers`, no transformers needed)
    labels.json           {"intents": [...], "sentiments": [...]}
    training_config.json  the TrainConfig that produced it
    metrics.json          validation/test metrics and the export parity report
    manifest.json         format version, labels count, routing thresholds, data-manifest
                          hash, package versions and the sha256 of every file above

Loading checks all of it, so a truncated copy or a hand-edited file is reported with
what is missing and how to fix it instead of failing deep inside onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models import messages
from models.errors import ModelDirError

FORMAT_VERSION = 1
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
LABELS_FILE = "labels.json"
CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
REQUIRED_FILES = (ONNX_FILE, TOKENIZER_FILE, LABELS_FILE, CONFIG_FILE, METRICS_FILE)
SENTIMENTS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class ModelCard:
    """What a model directory declares about itself, after it has been checked."""

    path: Path
    version: str
    intents: tuple[str, ...]
    sentiments: tuple[str, ...]
    max_length: int
    base_model: str
    data_hash: str
    created_at: str
    variants: tuple[str, ...]
    thresholds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Thresholds fitted on another variant's probabilities (int8 rounds them a little differently).
    variant_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)

    def onnx_path(self, variant: str = "fp32") -> Path:
        if variant not in self.variants:
            raise ModelDirError(
                messages.MODEL_NO_VARIANT.format(version=self.version, variant=variant,
                                                 variants=", ".join(self.variants)),
                messages.MODEL_NO_VARIANT_FIX,
            )
        return self.path / (INT8_FILE if variant == "int8" else ONNX_FILE)

    def thresholds_for(self, variant: str) -> dict[str, float]:
        """The router thresholds fitted on the probabilities ``variant`` gives (fp32's when none were)."""
        return self.variant_thresholds.get(variant) or self.thresholds


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def finalize(
    staging: Path,
    dest: Path,
    *,
    version: str,
    max_length: int,
    base_model: str,
    data_hash: str,
    packages: dict[str, str],
    thresholds: dict[str, float] | None = None,
    variant_thresholds: dict[str, dict[str, float]] | None = None,
) -> ModelCard:
    """Write the manifest for the files in ``staging`` and move it to ``dest`` in one rename.

    The rename is atomic on one filesystem, so a reader never sees half a model.
    """
    missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
    if missing:
        raise ModelDirError(messages.CANNOT_FINALISE.format(staging=staging, missing=", ".join(missing)),
                            messages.MODEL_DIR_FIX)
    files = [p.name for p in sorted(staging.iterdir()) if p.is_file() and p.name != MANIFEST_FILE]
    manifest = {
        "format_version": FORMAT_VERSION,
        "version": version,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "max_length": max_length,
        "base_model": base_model,
        "data_hash": data_hash,
        "packages": packages,
        "thresholds": thresholds or {},
        "variant_thresholds": variant_thresholds or {},
        "variants": ["fp32"] + (["int8"] if (staging / INT8_FILE).is_file() else []),
        "files": {name: sha256_file(staging / name) for name in files},
    }
    write_json(staging / MANIFEST_FILE, manifest)
    if dest.exists():
        raise ModelDirError(messages.MODEL_DIR_EXISTS.format(dest=dest), messages.MODEL_DIR_EXISTS_FIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, dest)
    return read(dest)


def update_manifest(path: Path, **changes: Any) -> ModelCard:
    """Change manifest fields (e.g. refitted thresholds) and write it back atomically."""
    manifest = _load_json(path, MANIFEST_FILE)
    manifest.update(changes)
    tmp = path / (MANIFEST_FILE + ".tmp")
    write_json(tmp, manifest)
    os.replace(tmp, path / MANIFEST_FILE)
    return read(path)


def read(path: str | Path, *, verify_hashes: bool = True) -> ModelCard:
    """Check a model directory and return its card, or raise ModelDirError saying what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ModelDirError(messages.MODEL_DIR_MISSING.format(path=path), messages.MODEL_DIR_FIX)
    manifest = _load_json(path, MANIFEST_FILE)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelDirError(
            messages.MODEL_FORMAT_VERSION.format(manifest=path / MANIFEST_FILE, found=manifest.get("format_version"),
                                                 expected=FORMAT_VERSION),
            messages.MODEL_DIR_FIX,
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        hint = messages.MODEL_TOKENIZER_HINT if TOKENIZER_FILE in missing else ""
        raise ModelDirError(messages.MODEL_FILES_MISSING.format(path=path, names=", ".join(missing), hint=hint),
                            messages.MODEL_DIR_FIX)
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        raise ModelDirError(messages.MODEL_FILES_NOT_MAPPING.format(manifest=path / MANIFEST_FILE),
                            messages.MODEL_DIR_FIX)
    if verify_hashes:
        for name, expected in files.items():
            file = path / name
            try:
                if not file.is_file():
                    raise ModelDirError(messages.MODEL_FILE_MISSING.format(path=path, name=name),
                                        messages.MODEL_DIR_FIX)
                matches = sha256_file(file) == expected
            except OSError as exc:  # a disk error, no permission, a name too long
                raise ModelDirError(messages.MODEL_FILE_UNREADABLE.format(file=file, error=exc.strerror or exc),
                                    messages.MODEL_DIR_FIX) from exc
            if not matches:
                raise ModelDirError(messages.MODEL_CHECKSUM.format(file=file), messages.MODEL_DIR_FIX)
    labels = _load_json(path, LABELS_FILE)
    intents = labels.get("intents")
    if not isinstance(intents, list) or not intents:
        raise ModelDirError(messages.MODEL_NO_INTENTS.format(labels=path / LABELS_FILE), messages.MODEL_DIR_FIX)
    try:
        return _card(path, manifest, labels, intents)
    except (TypeError, ValueError, AttributeError) as exc:
        # manifest.json is not covered by its own checksums, so a hand edit reaches here unchecked.
        what = messages.MODEL_BAD_VALUE.format(manifest=path / MANIFEST_FILE, labels=LABELS_FILE, error=exc)
        raise ModelDirError(what, messages.MODEL_DIR_FIX) from exc


def _positive_length(value: Any) -> int:
    length = int(value)
    if not 1 <= length <= 100_000:
        raise ValueError(f"max_length {length} is not a token count")
    return length


def _card(path: Path, manifest: dict[str, Any], labels: dict[str, Any], intents: list[Any]) -> ModelCard:
    return ModelCard(
        path=path,
        version=str(manifest.get("version", path.name)),
        intents=tuple(intents),
        sentiments=tuple(labels.get("sentiments", SENTIMENTS)),
        max_length=_positive_length(manifest.get("max_length", 128)),
        base_model=str(manifest.get("base_model", "")),
        data_hash=str(manifest.get("data_hash", "")),
        created_at=str(manifest.get("created_at", "")),
        variants=tuple(manifest.get("variants", ["fp32"])),
        thresholds={k: float(v) for k, v in manifest.get("thresholds", {}).items()},
        variant_thresholds={str(name): {k: float(v) for k, v in values.items()}
                            for name, values in (manifest.get("variant_thresholds") or {}).items()},
        metrics=_load_json(path, METRICS_FILE),
        packages=dict(manifest.get("packages", {})),
    )


def copy_model_dir(src: Path, dest: Path) -> None:
    """Copy a model directory (used by tests and by the registry's import)."""
    shutil.copytree(src, dest)


def _load_json(path: Path, name: str) -> dict[str, Any]:
    file = path / name
    if not file.is_file():
        raise ModelDirError(messages.MODEL_FILE_MISSING.format(path=path, name=name), messages.MODEL_DIR_FIX)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelDirError(messages.MODEL_JSON_INVALID.format(file=file, error=exc), messages.MODEL_DIR_FIX) from exc
    if not isinstance(data, dict):
        raise ModelDirError(messages.MODEL_JSON_NOT_OBJECT.format(file=file), messages.MODEL_DIR_FIX)
    return data
