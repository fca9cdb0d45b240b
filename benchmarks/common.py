"""Helpers shared by the benchmark scripts: where the shared data lives, and the machine."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CSBOT_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "out"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"{path} is missing: the benchmarks read ../shared/data beside the checkout "
                 "(or set CSBOT_SHARED_DATA).")
    return path


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def header(command: str) -> str:
    return f"- command: `{command}`\n- machine: {machine()}\n- date: {date.today().isoformat()}"


def intent_name(category: str | None) -> str:
    """Banking77 names such as 'reverted_card_payment?' made into knowledge-base (snake_case) names."""
    return re.sub(r"[^a-z0-9_]", "", (category or "").lower())


def config_overrides(items: list[str]) -> dict[str, object]:
    """``key=value`` pairs from ``--set`` made into TrainConfig fields (numbers and booleans parsed)."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set {item!r}: write it as key=value, e.g. lr_body=5e-5.")
        overrides[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    return overrides
