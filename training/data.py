"""Labelled examples, and the loaders that turn files into them.

An example may carry an intent label, a sentiment label, or both; each head trains
on the examples that have its label. Loaders are plain functions registered by file
suffix, so a new source (the knowledge base, the feedback store) is one function.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from models import messages
from models.errors import DataError
from models.modeldir import SENTIMENTS
from training.tables import READERS, Rows

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "content", "utterance", "query", "message")
INTENT_COLUMNS = ("intent", "category", "intent_label")
SENTIMENT_COLUMNS = ("sentiment", "sentiment_label")
# Numeric sentiment labels: SST-2 style binary (0/1) or three-way (0/1/2).
_BINARY = {"0": "negative", "1": "positive"}
_TERNARY = {"0": "negative", "1": "neutral", "2": "positive"}
_SENTIMENT_ALIASES = {"neg": "negative", "pos": "positive", "neu": "neutral"}


@dataclass(frozen=True)
class Example:
    text: str
    intent: str | None = None
    sentiment: str | None = None
    weight: float = 1.0
    source: str = "file"
    served_by: str | None = None  # the model version that answered the message (store examples only)


@dataclass(frozen=True)
class Columns:
    """Which columns to read. ``None`` means: detect from the header."""

    text: str | None = None
    intent: str | None = None
    sentiment: str | None = None
    label: str | None = None  # a generic 'label' column; decided by its values
    # Numeric sentiment codes: "ternary" reads 1 as neutral even in a file that holds only 0 and 1. None: decided
    # per file (0/1 is SST-2's negative/positive). ``run_columns`` sets it for all the files of one run.
    sentiment_codes: str | None = None


def load_examples(path: str | Path, columns: Columns | None = None) -> list[Example]:
    """Load a CSV, TSV, JSONL or knowledge-base YAML file into examples."""
    path = Path(path)
    if path.is_dir():
        raise DataError(messages.DATASET_IS_FOLDER.format(path=path), messages.DATASET_IS_FOLDER_FIX.format(path=path))
    if not path.is_file():
        raise DataError(messages.DATASET_MISSING.format(path=path), messages.DATASET_MISSING_FIX)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataError(messages.DATASET_FORMAT.format(name=path.name),
                        messages.DATASET_FORMAT_FIX.format(suffixes=", ".join(sorted(_LOADERS))))
    return loader(path, columns or Columns())


def run_columns(paths: Sequence[Path], columns: Columns) -> Columns:
    """``columns`` for files trained and scored together: one reading of numeric sentiment codes for all.

    A test file of a 0/1/2 dataset may hold only 0s and 1s; read alone, its 1 would be positive, not neutral."""
    codes: set[str] = set()
    for path in paths:
        loader = READERS.get(Path(path).suffix.lower())
        if loader is None or not Path(path).is_file():
            continue  # load_examples says what is wrong with it
        header, rows = loader(Path(path))
        column = _sentiment_column(header, rows, columns, str(path))
        values = {_cell(row, column, str(path), line).strip() for line, row in rows} - {""} if column else set()
        if values and values <= set(_TERNARY):
            codes.add("ternary" if "2" in values else "binary")
    return replace(columns, sentiment_codes="ternary") if "ternary" in codes else columns


def _table_loader(reader: Callable[[Path], tuple[list[str], Rows]]) -> Callable[[Path, Columns], list[Example]]:
    def load(path: Path, columns: Columns) -> list[Example]:
        header, rows = reader(path)
        if not header and not rows:
            raise DataError(messages.DATASET_NO_ROWS.format(path=path), messages.DATASET_NO_ROWS_FIX)
        return rows_to_examples(rows, header, columns, origin=str(path))
    return load


def _pick(header: Sequence[str], wanted: str | None, candidates: Iterable[str], role: str, origin: str
          ) -> str | None:
    lowered = {h.strip().lower(): h for h in header}  # "text, intent": a space after the comma
    if wanted is not None:
        if wanted in header:
            return wanted
        stripped = {h.strip(): h for h in header}
        if wanted in stripped:
            return stripped[wanted]
        raise DataError(
            messages.COLUMN_MISSING.format(column=wanted, role=role, origin=origin, columns=", ".join(header)),
            messages.COLUMN_MISSING_FIX.format(role=role),
        )
    return next((lowered[c] for c in candidates if c in lowered), None)


def rows_to_examples(rows: Rows, header: Sequence[str], columns: Columns, origin: str) -> list[Example]:
    """Examples from (line, row) pairs; rows with no text or no label are skipped and counted in the log."""
    text_col = _pick(header, columns.text, TEXT_COLUMNS, "text", origin)
    intent_col = _pick(header, columns.intent, INTENT_COLUMNS, "intent", origin)
    sentiment_col = _sentiment_column(header, rows, columns, origin)
    label_col = _pick(header, columns.label, ("label",), "label", origin)
    if text_col is None:
        raise DataError(
            messages.NO_TEXT_COLUMN.format(origin=origin, candidates=", ".join(TEXT_COLUMNS),
                                           columns=", ".join(header)),
            messages.NO_TEXT_COLUMN_FIX,
        )
    if label_col and intent_col is None and sentiment_col is None:
        intent_col = label_col  # a generic label whose values are not sentiment ones
    if intent_col is None and sentiment_col is None:
        raise DataError(
            messages.NO_LABEL_COLUMN.format(origin=origin, candidates=", ".join(INTENT_COLUMNS + SENTIMENT_COLUMNS)),
            messages.NO_LABEL_COLUMN_FIX,
        )
    sentiment_map = (_sentiment_map({_cell(row, sentiment_col, origin, line) for line, row in rows}, origin,
                                    columns.sentiment_codes) if sentiment_col else {})
    examples, skipped = [], []
    for line, row in rows:
        text = _cell(row, text_col, origin, line).strip()
        intent = _cell(row, intent_col, origin, line).strip() if intent_col else ""
        raw_sentiment = _cell(row, sentiment_col, origin, line).strip() if sentiment_col else ""
        if not text or not (intent or raw_sentiment):
            skipped.append(line)
            continue
        examples.append(Example(text, intent or None, sentiment_map.get(raw_sentiment) if raw_sentiment else None,
                                source=Path(origin).name))
    if skipped:  # said, not silent: a label column with gaps is often a spreadsheet mistake
        log.warning("%s", messages.ROWS_SKIPPED.format(count=len(skipped), origin=origin,
                                                       lines=", ".join(map(str, skipped[:10])),
                                                       more=" ..." if len(skipped) > 10 else ""))
    return examples


def _sentiment_column(header: Sequence[str], rows: Rows, columns: Columns, origin: str) -> str | None:
    """The column read as sentiment: a named one, else a generic 'label' whose values look like sentiment."""
    named = _pick(header, columns.sentiment, SENTIMENT_COLUMNS, "sentiment", origin)
    if named or _pick(header, columns.intent, INTENT_COLUMNS, "intent", origin):
        return named
    label = _pick(header, columns.label, ("label",), "label", origin)
    if label and _looks_like_sentiment({_cell(row, label, origin, line) for line, row in rows}):
        return label
    return None


def _cell(row: dict[str, object], column: str, origin: str, line: int) -> str:
    """A cell as text. JSON may hold any type: strings, and whole numbers as labels, are accepted."""
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataError(messages.CELL_NOT_TEXT.format(origin=origin, line=line, column=column,
                                                  kind=type(value).__name__, value=json.dumps(value)[:60]),
                    messages.CELL_NOT_TEXT_FIX)


def _looks_like_sentiment(values: set[str]) -> bool:
    values = {v.strip().lower() for v in values if v.strip()}
    return bool(values) and (values <= set(_TERNARY) or values <= set(SENTIMENTS) | set(_SENTIMENT_ALIASES))


def _sentiment_map(values: set[str], origin: str = "", codes: str | None = None) -> dict[str, str]:
    present = {v.strip() for v in values if v.strip()}
    if codes == "ternary" and present <= set(_TERNARY):
        return dict(_TERNARY)
    if present <= set(_BINARY):
        return dict(_BINARY)
    if present <= set(_TERNARY):
        return dict(_TERNARY)
    mapping = {value: _SENTIMENT_ALIASES.get(value.lower(), value.lower()) for value in present}
    unknown = sorted(value for value, name in mapping.items() if name not in SENTIMENTS)
    if unknown:
        raise DataError(messages.SENTIMENT_UNKNOWN.format(origin=origin, values=", ".join(map(repr, unknown[:8]))),
                        messages.SENTIMENT_UNKNOWN_FIX)
    return mapping


def _load_knowledge_base(path: Path, columns: Columns) -> list[Example]:
    # Imported here: the knowledge base lives with the bot (it also holds answers).
    from bot.knowledge import load_knowledge_base

    return knowledge_base_examples(load_knowledge_base(path), split="train")


def knowledge_base_examples(kb: object, split: str = "train") -> list[Example]:
    """The knowledge base's examples as training examples (``split``: train, test or all)."""
    return [Example(t.text, t.intent, t.sentiment, source="knowledge_base") for t in kb.examples(split)]  # type: ignore[attr-defined]


_LOADERS: dict[str, Callable[[Path, Columns], list[Example]]] = {
    **{suffix: _table_loader(reader) for suffix, reader in READERS.items()},
    ".yaml": _load_knowledge_base,
    ".yml": _load_knowledge_base,
}


def check_trainable(examples: Sequence[Example], min_per_intent: int = 2) -> None:
    """Refuse data the trainer cannot learn from, with a message that says why."""
    if not examples:
        raise DataError(messages.DATASET_EMPTY, messages.DATASET_EMPTY_FIX)
    counts = Counter(e.intent for e in examples if e.intent)
    if not counts:
        raise DataError(messages.DATASET_NO_INTENTS, messages.DATASET_NO_INTENTS_FIX)
    if len(counts) < 2:
        raise DataError(messages.DATASET_ONE_INTENT.format(intent=next(iter(counts))),
                        messages.DATASET_ONE_INTENT_FIX)
    thin = sorted(name for name, n in counts.items() if n < min_per_intent)
    if thin:
        shown = ", ".join(messages.INTENT_COUNT.format(intent=n, count=counts[n]) for n in thin[:10]) + (
            messages.LIST_MORE if len(thin) > 10 else "")
        raise DataError(
            messages.INTENTS_TOO_FEW.format(count=len(thin), minimum=min_per_intent, shown=shown),
            messages.INTENTS_TOO_FEW_FIX.format(minimum=min_per_intent),
        )


def split_validation(examples: Sequence[Example], fraction: float, seed: int
                     ) -> tuple[list[Example], list[Example]]:
    """Stratified split by intent (sentiment-only examples split at random); every intent keeps
    at least one training example. Agents' corrections always train: they are the few messages the
    model got wrong, the gate checks that the candidate learned them, and a night has only a handful.
    ``fraction`` 0 holds out nothing (TrainConfig allows it only with ``keep_epoch="last"``)."""
    rng = random.Random(seed)
    if fraction == 0:
        train_all = list(examples)
        rng.shuffle(train_all)
        return train_all, []
    groups: dict[str, list[Example]] = defaultdict(list)
    train: list[Example] = [ex for ex in examples if ex.source == "correction"]
    for ex in examples:
        if ex.source != "correction":
            groups[ex.intent or f"__sentiment__{ex.sentiment}"].append(ex)
    val: list[Example] = []
    for key in sorted(groups):
        items = groups[key][:]
        rng.shuffle(items)
        n_val = min(len(items) - 1, max(1, round(len(items) * fraction))) if len(items) > 1 else 0
        val.extend(items[:n_val])
        train.extend(items[n_val:])
    rng.shuffle(train)
    return train, val


def few_shot(examples: Sequence[Example], per_intent: int, seed: int) -> list[Example]:
    """Keep ``per_intent`` examples of each intent (seeded), for few-shot benchmarks."""
    rng = random.Random(seed)
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        if ex.intent:
            groups[ex.intent].append(ex)
    out = []
    for name in sorted(groups):
        out.extend(rng.sample(groups[name], min(per_intent, len(groups[name]))))
    return out


def manifest(examples: Sequence[Example]) -> dict[str, object]:
    """Counts per source and per label, and a hash of the exact training data."""
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: (e.text, e.intent or "", e.sentiment or "")):
        digest.update(f"{ex.text}\x1f{ex.intent}\x1f{ex.sentiment}\x1f{ex.weight}\n".encode())
    return {
        "examples": len(examples),
        "per_source": dict(Counter(e.source for e in examples)),
        "per_intent": dict(sorted(Counter(e.intent for e in examples if e.intent).items())),
        "per_sentiment": dict(Counter(e.sentiment for e in examples if e.sentiment)),
        "hash": digest.hexdigest(),
    }
