"""Prometheus text-format metrics without a client library: counters and histograms.

Each replica exposes its own numbers on ``GET /metrics``; Prometheus sums them. A
lock keeps updates from the event loop and the worker threads consistent.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

Labels = tuple[tuple[str, str], ...]

HELP = {
    "csbot_slack_requests_total": ("counter", "HTTP requests to /slack/events by status code."),
    "csbot_slack_events_total": ("counter", "Slack events and actions received, by type."),
    "csbot_slack_duplicates_total": ("counter", "Events and clicks already handled (retries, double clicks)."),
    "csbot_slack_ignored_total": ("counter", "Events the bot chose not to answer, by reason."),
    "csbot_messages_total": ("counter", "Customer messages classified."),
    "csbot_decisions_total": ("counter", "Routing decisions, by decision."),
    "csbot_feedback_total": ("counter", "Votes received (buttons, reactions), by rating and source; a repeated vote "
                             "counts again here but replaces the earlier one in the database."),
    "csbot_spooled_writes_total": ("counter", "Writes the database refused past the retries, kept on disk for "
                                   "later (bot.spool), by kind."),
    "csbot_store_write_failures_total": ("counter", "Database writes that failed past their retries (each also "
                                         "logged; votes among them are spooled, see csbot_spooled_writes_total)."),
    "csbot_feedback_unmatched_total": ("counter", "Reactions on a bot post that is not a stored answer (not counted "
                                       "as feedback)."),
    "csbot_corrections_total": ("counter", "Agent corrections saved, by where they came from."),
    "csbot_commands_total": ("counter", "/csbot commands, by command and whether they succeeded."),
    "csbot_handoffs_total": ("counter", "Posts to the agents' channel, by kind."),
    "csbot_handoff_failures_total": ("counter", "Posts to the agents' channel that failed past their retries: "
                                     "no one was paged (each also logged at ERROR), by kind."),
    "csbot_slack_api_errors_total": ("counter", "Failed Slack Web API calls, by method."),
    "csbot_ack_seconds": ("histogram", "Time to answer an HTTP request to /slack/events (the ack)."),
    "csbot_reply_seconds": ("histogram", "From receiving a message event to its reply being posted."),
    "csbot_classify_seconds": ("histogram", "Classification and storage time per batch."),
    "csbot_batch_size": ("histogram", "Messages per inference batch."),
}


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _fmt(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = [*labels, extra] if extra else list(labels)
    if not items:
        return ""
    return "{" + ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                          for k, v in items) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._hists: dict[str, dict[Labels, list[float]]] = defaultdict(dict)  # bucket counts + [sum, count]

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        buckets = SIZE_BUCKETS if name == "csbot_batch_size" else LATENCY_BUCKETS
        key = _labels(labels)
        with self._lock:
            series = self._hists[name]
            counts = series.get(key)
            if counts is None:
                counts = series[key] = [0.0] * (len(buckets) + 3)  # buckets, +Inf, sum, count
            counts[bisect.bisect_left(buckets, value)] += 1  # the first bucket with bound >= value
            counts[-2] += value
            counts[-1] += 1

    def value(self, name: str, **labels: str) -> float:
        """A counter's value (for tests and the benchmark)."""
        with self._lock:
            return self._counters.get(name, {}).get(_labels(labels), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, (kind, text) in HELP.items():
                lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
                if kind == "counter":
                    for key, value in sorted(self._counters.get(name, {}).items()):
                        lines.append(f"{name}{_fmt(key)} {value:g}")
                    continue
                bounds = SIZE_BUCKETS if name == "csbot_batch_size" else LATENCY_BUCKETS
                for key, counts in sorted(self._hists.get(name, {}).items()):
                    running = 0.0
                    for bound, count in zip(bounds, counts, strict=False):
                        running += count
                        lines.append(f"{name}_bucket{_fmt(key, ('le', f'{bound:g}'))} {running:g}")
                    lines.append(f"{name}_bucket{_fmt(key, ('le', '+Inf'))} {counts[-1]:g}")
                    lines.append(f"{name}_sum{_fmt(key)} {counts[-2]:.6f}")
                    lines.append(f"{name}_count{_fmt(key)} {counts[-1]:g}")
        return "\n".join(lines) + "\n"
