"""Labelled examples, and the loaders that turn files into them.

An example may carry an intent label, a sentiment label, or both; each head trains
on the examples that have its label. Loaders are plain functions registered by file
suffix, so a new source (the knowledge base, the feedback store) is one function.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models import messages
from models.errors import DataError
from models.modeldir import SENTIMENTS

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


def load_examples(path: str | Path, columns: Columns | None = None) -> list[Example]:
    """Load a CSV, TSV, JSONL or knowledge-base YAML file into examples."""
    path = Path(path)
    if path.is_dir():
        raise DataError(messages.DATASET_IS_FOLDER.format(path=path), messages.DATASET_IS_FOLDER_FIX)
    if not path.is_file():
        raise DataError(messages.DATASET_MISSING.format(path=path), messages.DATASET_MISSING_FIX)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataError(messages.DATASET_FORMAT.format(name=path.name),
                        messages.DATASET_FORMAT_FIX.format(suffixes=", ".join(sorted(_LOADERS))))
    return loader(path, columns or Columns())


Rows = list[tuple[int, dict[str, object]]]  # (line number, row): errors name the line


def _read_text(path: Path) -> str:
    """The whole file as text; decoded at once so a bad byte's position is the file's, not a buffer's."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheets often write a BOM
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(messages.DATASET_NOT_UTF8.format(path=path, reason=exc.reason, line=line, start=exc.start),
                        messages.DATASET_NOT_UTF8_FIX) from exc


def _read_delimited(path: Path, delimiter: str) -> tuple[list[str], Rows]:
    kind = "TSV" if delimiter == "\t" else "CSV"
    # strict: a quote in the wrong place is an error, not a cell that runs on to the next quote.
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter, strict=True)
    header: list[str] = []
    rows: Rows = []
    line = 1
    try:
        for cells in reader:
            if not header:
                header = cells
            elif any(cell.strip() for cell in cells):  # blank lines are skipped, as csv.DictReader does
                # Extra cells would shift the labels. A short row is fine (spreadsheets drop empty trailing
                # cells), unless a cell spans lines: an unclosed quote swallowed the lines after it.
                if len(cells) > len(header) or (len(cells) < len(header) and any("\n" in c for c in cells)):
                    raise DataError(messages.DATASET_ROW_CELLS.format(path=path, line=line, cells=len(cells),
                                                                      columns=len(header), format=kind),
                                    messages.DATASET_ROW_CELLS_FIX)
                rows.append((line, dict(zip(header, cells, strict=False))))  # short: missing cells are absent
            line = reader.line_num + 1
    except csv.Error as exc:  # a misplaced quote, or a field over csv's 131,072-character limit
        raise DataError(messages.DATASET_ROW_UNREADABLE.format(path=path, line=line, format=kind, error=exc),
                        messages.DATASET_ROW_UNREADABLE_FIX) from exc
    return header, rows


def _read_jsonl(path: Path) -> tuple[list[str], Rows]:
    rows: Rows = []
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines() breaks on.
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(messages.JSONL_LINE_INVALID.format(path=path, line=lineno, error=exc),
                            messages.JSONL_LINE_INVALID_FIX) from exc
        if not isinstance(row, dict):
            raise DataError(messages.JSONL_LINE_NOT_OBJECT.format(path=path, line=lineno),
                            messages.JSONL_LINE_NOT_OBJECT_FIX)
        rows.append((lineno, row))
    header = list(dict.fromkeys(k for _, row in rows for k in row))
    return header, rows


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
        stripped = {h.strip(): h for h in header}
        if wanted in header or wanted in stripped:
            return wanted if wanted in header else stripped[wanted]
        raise DataError(
            messages.COLUMN_MISSING.format(column=wanted, role=role, origin=origin, columns=", ".join(header)),
            messages.COLUMN_MISSING_FIX.format(role=role),
        )
    return next((lowered[c] for c in candidates if c in lowered), None)


def rows_to_examples(rows: Rows, header: Sequence[str], columns: Columns, origin: str) -> list[Example]:
    """Examples from (line, row) pairs; rows with no text or no label are skipped and counted in the log."""
    text_col = _pick(header, columns.text, TEXT_COLUMNS, "text", origin)
    intent_col = _pick(header, columns.intent, INTENT_COLUMNS, "intent", origin)
    sentiment_col = _pick(header, columns.sentiment, SENTIMENT_COLUMNS, "sentiment", origin)
    label_col = _pick(header, columns.label, ("label",), "label", origin)
    if text_col is None:
        raise DataError(
            messages.NO_TEXT_COLUMN.format(origin=origin, candidates=", ".join(TEXT_COLUMNS),
                                           columns=", ".join(header)),
            messages.NO_TEXT_COLUMN_FIX,
        )
    if label_col and not intent_col and not sentiment_col:
        if _looks_like_sentiment({_cell(row, label_col, origin, line) for line, row in rows}):
            sentiment_col = label_col
        else:
            intent_col = label_col
    if intent_col is None and sentiment_col is None:
        raise DataError(
            messages.NO_LABEL_COLUMN.format(origin=origin, candidates=", ".join(INTENT_COLUMNS + SENTIMENT_COLUMNS)),
            messages.NO_LABEL_COLUMN_FIX,
        )
    sentiment_map = (_sentiment_map({_cell(row, sentiment_col, origin, line) for line, row in rows}, origin)
                     if sentiment_col else {})
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


def _sentiment_map(values: set[str], origin: str = "") -> dict[str, str]:
    present = {v.strip() for v in values if v.strip()}
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
    ".csv": _table_loader(lambda p: _read_delimited(p, ",")),
    ".tsv": _table_loader(lambda p: _read_delimited(p, "\t")),
    ".jsonl": _table_loader(_read_jsonl),
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
