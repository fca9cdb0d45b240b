"""Support figures over a period: answer rate, handoff rate, 👍 share, top intents, confusions.

Plain functions over the store, shared by `/csbot stats`, App Home and `csbot stats`, so all
three show the same numbers in the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bot import messages
from bot.store import NEW_TOPIC, Store, iso


@dataclass(frozen=True)
class Stats:
    days: int
    messages: int
    decisions: dict[str, int]
    up: int
    down: int
    corrections: int
    top_intents: list[tuple[str, int]] = field(default_factory=list)
    confused: list[tuple[str, str, int]] = field(default_factory=list)

    def share(self, decision: str) -> float:
        classified = self.messages - self.decisions.get("prompt", 0)
        return self.decisions.get(decision, 0) / classified if classified else 0.0

    @property
    def up_share(self) -> float:
        return self.up / (self.up + self.down) if self.up + self.down else 0.0


def compute(store: Store, days: int = 7, now: datetime | None = None) -> Stats:
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    counts: dict[str, Any] = store.feedback_counts(since)
    cutoff = {"c": iso(since), "new_topic": NEW_TOPIC}
    # What customers asked about, as best known: an agent's correction, else the customer's own clarify pick, else
    # the model's guess (a clarified "delivery" counted as the "greeting" it was unsure of). A new topic is none.
    top = [(r["intent"], r["n"]) for r in store.db.query(
        """SELECT intent, count(*) AS n FROM (
               SELECT coalesce((SELECT c.correct_intent FROM corrections c WHERE c.message_id = m.id),
                               (SELECT l.intent FROM labels l WHERE l.message_id = m.id ORDER BY l.id DESC LIMIT 1),
                               m.intent) AS intent
               FROM messages m WHERE m.created_at >= :c)
           WHERE intent IS NOT NULL AND intent != :new_topic
           GROUP BY intent ORDER BY n DESC, intent LIMIT 5""", cutoff)]
    # Confusions come from agents' corrections: what the model said against what was right.
    confused = [(r["predicted_intent"], r["correct_intent"], r["n"]) for r in store.db.query(
        "SELECT predicted_intent, correct_intent, count(*) AS n FROM corrections "
        "WHERE updated_at >= :c AND predicted_intent IS NOT NULL AND correct_intent IS NOT NULL "
        "AND predicted_intent != correct_intent GROUP BY predicted_intent, correct_intent "
        "ORDER BY n DESC LIMIT 5", cutoff)]
    return Stats(days=days, messages=int(counts.get("messages") or 0), decisions=dict(counts["decisions"]),
                 up=int(counts.get("up") or 0), down=int(counts.get("down") or 0),
                 corrections=int(counts.get("corrections") or 0), top_intents=top, confused=confused)


def render(stats: Stats) -> str:
    """Slack mrkdwn that also reads well in a terminal."""
    lines = [
        messages.STATS_HEAD.format(days=stats.days, messages=stats.messages),
        messages.STATS_DECISIONS.format(**{d: stats.share(d) for d in ("answer", "clarify", "handoff", "escalate")}),
        messages.STATS_FEEDBACK.format(up=stats.up, down=stats.down, helpful=stats.up_share,
                                       corrections=stats.corrections),
    ]
    if stats.top_intents:
        lines.append(messages.STATS_TOP_INTENTS.format(intents=", ".join(
            messages.STATS_INTENT.format(intent=name, count=n) for name, n in stats.top_intents)))
    if stats.confused:
        lines.append(messages.STATS_MOST_CORRECTED.format(pairs=", ".join(
            messages.STATS_CORRECTED_PAIR.format(predicted=a, correct=_intent_name(b), count=n)
            for a, b, n in stats.confused)))
    return "\n".join(lines)


def _intent_name(intent: str) -> str:
    """An intent as people read it: NEW_TOPIC is stored as a sentinel no one should see."""
    return messages.STATS_NEW_TOPIC if intent == NEW_TOPIC else intent
