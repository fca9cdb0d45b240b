"""The "correct this answer" modal: building it, serving its intent search, reading a submission.

Pure functions (no Slack calls), shared by the message shortcut, the handoff post's
"Correct intent…" button and the review queue's "Label" buttons.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot import messages
from bot.knowledge import KnowledgeBase
from bot.service import SENTIMENTS
from bot.slack.blocks import Block, context, cut, error_text, section
from bot.store import NEW_TOPIC, Row
from models.errors import CsbotError

CALLBACK = "flag_submit"
SHORTCUT = "flag_wrong_answer"
INTENT_BLOCK, INTENT_ACTION = "intent", "intent_select"
SENTIMENT_BLOCK, SENTIMENT_ACTION = "sentiment", "sentiment_select"
NOTE_BLOCK, NOTE_ACTION = "note", "note_input"
OPTION_TEXT_MAX = 75
MAX_OPTIONS = 100
NOTE_MAX = 1000
SOURCES = ("flag", "handoff", "review", "home")  # where a label was asked for


@dataclass(frozen=True)
class Target:
    """What a submission labels, and where to confirm it (carried in ``private_metadata``)."""

    message_id: int
    channel: str | None = None  # where the ephemeral confirmation goes
    thread_ts: str | None = None
    source: str = "flag"  # flag | handoff | review | home
    post_ts: str | None = None  # the handoff post to update
    # The click's response URL: the confirmation's way back where the bot is not a member (a `/csbot review` in a
    # DM between two people), since chat.postEphemeral there fails. Slack keeps it valid for 30 minutes.
    response_url: str | None = None

    def dump(self) -> str:
        data = {"m": self.message_id, "c": self.channel, "t": self.thread_ts, "s": self.source, "p": self.post_ts,
                "r": self.response_url}
        return json.dumps({k: v for k, v in data.items() if v is not None}, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> Target:
        """Read what ``dump`` wrote; anything else is a ValueError (the view is the bot's, but the request is
        not: a 1e400 message id made an OverflowError and a 500, ``true`` read as message 1)."""
        data = json.loads(raw or "{}")
        message_id, source = data.get("m"), data.get("s", "flag")
        texts = [data.get(key) for key in ("c", "t", "p", "r")]
        if type(message_id) is not int or message_id < 1 or source not in SOURCES or not all(
                value is None or isinstance(value, str) for value in texts):
            raise ValueError(f"not a csbot label target: {raw[:200]!r}")
        return cls(message_id, texts[0], texts[1], source, texts[2], texts[3])


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(text, OPTION_TEXT_MAX), "emoji": True}


def option(value: str, text: str) -> dict[str, Any]:
    return {"text": _plain(text), "value": value}


def intent_options(kb: KnowledgeBase, query: str = "") -> list[dict[str, Any]]:
    """Intents whose name or description contains every word of ``query``, then "new topic"."""
    words = query.lower().replace("_", " ").split()
    found = []
    for name, intent in sorted(kb.intents.items()):
        haystack = f"{name.replace('_', ' ')} {name} {intent.description}".lower()
        if all(word in haystack for word in words):
            found.append(option(name, f"{name} — {intent.description}" if intent.description else name))
    return [*found[: MAX_OPTIONS - 1], option(NEW_TOPIC, messages.FLAG_NEW_TOPIC)]


def flag_view(message: Row, target: Target) -> dict[str, Any]:
    """The modal for one stored customer message."""
    confidence = message.get("confidence")
    guess = messages.FLAG_GUESS.format(
        version=message.get("model_version") or "?", intent=message.get("intent") or messages.AGENTS_UNKNOWN,
        confidence=f"{confidence:.0%}" if confidence is not None else messages.AGENTS_UNKNOWN,
        sentiment=message.get("sentiment") or messages.AGENTS_UNKNOWN)
    quoted = "\n".join(f">{line}" for line in cut(message.get("text") or "", 2800).splitlines() or [" "])
    blocks: list[Block] = [
        section(messages.FLAG_CUSTOMER.format(text=quoted)),
        context(guess),
        {"type": "input", "block_id": INTENT_BLOCK, "optional": True, "label": _plain(messages.FLAG_INTENT_LABEL),
         "element": {"type": "external_select", "action_id": INTENT_ACTION, "min_query_length": 0,
                     "placeholder": _plain(messages.FLAG_INTENT_PLACEHOLDER)}},
        {"type": "input", "block_id": SENTIMENT_BLOCK, "optional": True,
         "label": _plain(messages.FLAG_SENTIMENT_LABEL),
         "element": {"type": "static_select", "action_id": SENTIMENT_ACTION,
                     "options": [option(s, s) for s in SENTIMENTS]}},
        {"type": "input", "block_id": NOTE_BLOCK, "optional": True, "label": _plain(messages.FLAG_NOTE_LABEL),
         "element": {"type": "plain_text_input", "action_id": NOTE_ACTION, "multiline": True,
                     "max_length": NOTE_MAX}},
    ]
    return {"type": "modal", "callback_id": CALLBACK, "title": _plain(messages.FLAG_TITLE),
            "submit": _plain(messages.FLAG_SUBMIT), "close": _plain(messages.FLAG_CANCEL),
            "private_metadata": target.dump(), "blocks": blocks}


@dataclass(frozen=True)
class Submission:
    target: Target
    intent: str | None
    sentiment: str | None
    note: str | None


def read_submission(view: dict[str, Any]) -> Submission:
    values = (view.get("state") or {}).get("values") or {}

    def selected(block: str, action: str) -> str | None:
        chosen = ((values.get(block) or {}).get(action) or {}).get("selected_option") or {}
        return chosen.get("value") or None

    note = ((values.get(NOTE_BLOCK) or {}).get(NOTE_ACTION) or {}).get("value")
    return Submission(Target.load(view.get("private_metadata") or ""), selected(INTENT_BLOCK, INTENT_ACTION),
                      selected(SENTIMENT_BLOCK, SENTIMENT_ACTION), (note or "").strip() or None)


def validate(submission: Submission, kb: KnowledgeBase) -> dict[str, str]:
    """Errors to show in the modal, keyed by block id (empty: fine)."""
    if not submission.intent and not submission.sentiment:
        return {INTENT_BLOCK: messages.FLAG_NEED_INTENT}
    intent = submission.intent
    if intent and intent != NEW_TOPIC and intent not in kb.intents:
        known = ", ".join(sorted(kb.intents))
        error = CsbotError(messages.UNKNOWN_INTENT.format(intent=intent, known=known), messages.UNKNOWN_INTENT_FIX)
        return {INTENT_BLOCK: error_text(error)}
    return {}
