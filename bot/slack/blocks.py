"""Block Kit rendering: pure functions from replies to the JSON Slack displays.

Slack rejects a whole message when one block breaks a limit (3,000 characters of
section text, 75 of button text, 2,000 of a button value), so every piece of text
that may come from a customer or the knowledge base is cut to fit here.
"""

from __future__ import annotations

import json
from typing import Any

from bot import messages
from bot.router import ANSWER, CLARIFY, ESCALATE, HANDOFF
from bot.service import Reply
from models.errors import CsbotError

Block = dict[str, Any]

SECTION_MAX = 3000
MODAL_ERROR_MAX = 300  # a field error in a modal: what went wrong and the fix, a few lines
BUTTON_TEXT_MAX = 75
FALLBACK_MAX = 3000
MESSAGE_BLOCKS_MAX = 50  # Slack's limit for one message
FEEDBACK_BLOCK = "csbot_feedback"
CLARIFY_BLOCK = "csbot_clarify"
UP, DOWN, HUMAN = "feedback_up", "feedback_down", "handoff_request"
CLARIFY_PREFIX, CLARIFY_NONE = "clarify_", "clarify_none"
HANDOFF_BLOCK, HANDOFF_RIGHT, HANDOFF_CORRECT = "csbot_handoff", "handoff_right", "handoff_correct"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(error: CsbotError, limit: int = MODAL_ERROR_MAX) -> str:
    """An error as the CLI prints it (what, then "Fix: ..."), shortened in its first part so the fix
    always shows (a modal's field error is a line or two under the field)."""
    if not error.fix:
        return cut(error.what, limit)
    tail = f"\nFix: {error.fix}"
    return cut(error.what, max(40, limit - len(tail))) + tail


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, SECTION_MAX)}}


def sections(text: str) -> list[Block]:
    """Long text as several sections, split on line breaks where possible."""
    out: list[Block] = []
    rest = text
    while len(rest) > SECTION_MAX:
        split = rest.rfind("\n", 0, SECTION_MAX)
        split = split if split > SECTION_MAX // 2 else SECTION_MAX
        out.append(section(rest[:split]))
        rest = rest[split:].lstrip("\n")
    out.append(section(rest or " "))
    return out


def long_text_blocks(text: str) -> list[Block] | None:
    """Blocks for a reply too long for its notification text, else None (the text alone says it all).

    Slack shows a message's ``text`` whole, but ours is cut at FALLBACK_MAX, the notification's length: a
    long ``/csbot models`` would lose its oldest rows, where the active version often is."""
    if len(text) <= FALLBACK_MAX:
        return None
    out = sections(text)
    return out if len(out) <= MESSAGE_BLOCKS_MAX else [*out[: MESSAGE_BLOCKS_MAX - 1], section(messages.REPLY_CUT)]


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, SECTION_MAX)}]}


def button(action_id: str, text: str, value: str, style: str | None = None) -> Block:
    out: Block = {"type": "button", "action_id": action_id, "value": value,
                  "text": {"type": "plain_text", "text": cut(text, BUTTON_TEXT_MAX), "emoji": True}}
    if style:
        out["style"] = style
    return out


def answer_blocks(reply: Reply, reply_id: int) -> list[Block]:
    """An answer: text, the context line, and the three feedback buttons carrying the reply id."""
    value = str(reply_id)
    blocks = sections(reply.text)
    if reply.context:
        blocks.append(context(reply.context))
    blocks.append({"type": "actions", "block_id": FEEDBACK_BLOCK, "elements": [
        button(UP, messages.BUTTON_HELPFUL, value),
        button(DOWN, messages.BUTTON_NOT_HELPFUL, value),
        button(HUMAN, messages.BUTTON_HUMAN, value)]})
    return blocks


def clarify_value(message_id: int, intent: str) -> str:
    return json.dumps({"m": message_id, "i": intent}, separators=(",", ":"))


def parse_clarify_value(value: str) -> tuple[int, str]:
    data = json.loads(value)
    return int(data["m"]), str(data["i"])


def clarify_blocks(reply: Reply, message_id: int) -> list[Block]:
    """The two candidate intents as buttons, plus a way out to a person."""
    blocks = sections(reply.text)
    if reply.context:
        blocks.append(context(reply.context))
    elements = [button(f"{CLARIFY_PREFIX}{n}", description, clarify_value(message_id, intent), "primary")
                for n, (intent, description) in enumerate(reply.choices)]
    elements.append(button(CLARIFY_NONE, messages.CLARIFY_NONE, str(message_id)))
    blocks.append({"type": "actions", "block_id": CLARIFY_BLOCK, "elements": elements})
    return blocks


def plain_blocks(reply: Reply) -> list[Block]:
    blocks = sections(reply.text)
    if reply.context:
        blocks.append(context(reply.context))
    return blocks


def reply_blocks(reply: Reply, reply_id: int, message_id: int) -> list[Block]:
    if reply.kind == ANSWER and reply.rateable:
        return answer_blocks(reply, reply_id)
    if reply.kind == CLARIFY and reply.choices:
        return clarify_blocks(reply, message_id)
    return plain_blocks(reply)


def replace_actions(blocks: list[Block] | None, note: str, fallback_text: str = "") -> list[Block]:
    """The same message with its buttons swapped for a context line (after a click)."""
    kept = [b for b in (blocks or []) if b.get("type") != "actions"]
    if not kept and fallback_text:
        kept = sections(fallback_text)
    return [*kept, context(note)]


def after_vote(blocks: list[Block] | None, note: str, fallback_text: str = "") -> list[Block]:
    """An answer once its customer voted: 👍/👎 give way to ``note``, and "Talk to a human" stays.

    After a 👎 the customer most needs a person; the button must not go with the vote."""
    kept: list[Block] = []
    for block in blocks or []:
        if block.get("type") == "actions":
            human = [e for e in block.get("elements", []) if e.get("action_id") == HUMAN]
            if human:
                kept.append({**block, "elements": human})
            continue
        kept.append(block)
    if not kept and fallback_text:
        kept = sections(fallback_text)
    actions = [b for b in kept if b.get("type") == "actions"]
    return [*(b for b in kept if b.get("type") != "actions"), context(note), *actions]


def agents_blocks(*, title: str, user: str, text: str, intent: str | None, confidence: float | None,
                  sentiment: str | None, sentiment_score: float | None, reason: str, link: str | None,
                  priority: bool, message_id: int | None = None, guess_known: bool = True) -> list[Block]:
    """The post in the agents' channel: who, what they wrote, the model's guess and why it handed over.

    ``guess_known``: False when the guess is not an intent of the knowledge base, so "Answer was right" is left
    out (a label the next retrain cannot train on)."""
    unknown = messages.AGENTS_UNKNOWN
    conf = f"{confidence:.0%}" if confidence is not None else unknown
    mood = messages.AGENTS_MOOD.format(sentiment=sentiment, negative=sentiment_score) if (
        sentiment and sentiment_score is not None) else (sentiment or unknown)
    quoted = "\n".join(f">{line}" for line in cut(text, SECTION_MAX - 200).splitlines() or [" "])
    fields = [template.format(user=user, intent=intent or unknown, confidence=conf, sentiment=mood, reason=reason)
              for template in messages.AGENTS_FIELDS]
    blocks: list[Block] = [section(f"*{title}*"), section(quoted),
                           {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]}]
    if link:
        blocks.append(context(messages.AGENTS_LINK.format(link=link)))
    if message_id is not None:  # agents label the message right from the post
        right = [button(HANDOFF_RIGHT, messages.BUTTON_ANSWER_RIGHT, str(message_id), "primary")] if (
            intent and guess_known) else []
        blocks.append({"type": "actions", "block_id": HANDOFF_BLOCK, "elements": [
            *right, button(HANDOFF_CORRECT, messages.BUTTON_CORRECT_INTENT, str(message_id))]})
    if priority:
        blocks[0]["block_id"] = "csbot_priority"
    return blocks


def fallback(text: str) -> str:
    """The notification / screen-reader text that goes with blocks."""
    return cut(text, FALLBACK_MAX)


def is_handoff(kind: str) -> bool:
    return kind in (HANDOFF, ESCALATE)
