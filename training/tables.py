"""Tables on disk as (line number, row) pairs: CSV, TSV and JSONL, read strictly so no row is lost unsaid.

Errors name the file and the line. ``training.data`` turns the rows into labelled examples.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from models import messages
from models.errors import DataError

Rows = list[tuple[int, dict[str, object]]]  # (line number, row): errors name the line


def _read_text(path: Path) -> str:
    """The whole file as text; decoded at once so a bad byte's position is the file's, not a buffer's."""
    data = path.read_bytes()
    _refuse_utf16_and_nul(path, data)
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheets often write a BOM
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(messages.DATASET_NOT_UTF8.format(path=path, reason=exc.reason, line=line, start=exc.start),
                        messages.DATASET_NOT_UTF8_FIX) from exc


def _refuse_utf16_and_nul(path: Path, data: bytes) -> None:
    """UTF-16 (a spreadsheet's "Unicode Text") decodes as UTF-8 when it has no BOM: every other byte NUL.

    Read as it is, its header would be "t e x t" and the error about a missing text column. A text
    table never holds a NUL byte, so one anywhere means a wrong encoding or not a table at all.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or data[:64].count(0) * 4 >= len(data[:64]) > 0:
        raise DataError(messages.DATASET_UTF16.format(path=path), messages.DATASET_UTF16_FIX.format(path=path))
    if (first := data.find(0)) >= 0:
        raise DataError(messages.DATASET_NUL_BYTE.format(path=path, line=data[:first].count(b"\n") + 1),
                        messages.DATASET_NUL_BYTE_FIX)


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
                # Unnamed columns (a spreadsheet's trailing commas) are never read, so they may repeat.
                twice = sorted({name for name in header if name.strip() and header.count(name) > 1})
                if twice:  # a dict keeps one of them, silently
                    raise DataError(messages.DATASET_COLUMN_TWICE.format(path=path, names=", ".join(twice)),
                                    messages.DATASET_COLUMN_TWICE_FIX)
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


READERS: dict[str, Callable[[Path], tuple[list[str], Rows]]] = {
    ".csv": lambda p: _read_delimited(p, ","),
    ".tsv": lambda p: _read_delimited(p, "\t"),
    ".jsonl": _read_jsonl,
}
