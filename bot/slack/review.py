"""The review queue as Block Kit: one line per item, each with a "Label" button.

The lines are ``bot.admin.review_line``, so Slack and ``csbot review`` read the same.
"""

from __future__ import annotations

from typing import Any

from bot import admin, messages
from bot.slack.blocks import Block, button, section

LABEL = "review_label"


def item_block(item: dict[str, Any]) -> Block:
    block = section(admin.review_line(item))
    block["accessory"] = button(LABEL, messages.BUTTON_LABEL, str(item["message_id"]), "primary")
    return block


def review_blocks(items: list[dict[str, Any]], total: int = 0, limit: int = 40) -> list[Block]:
    """The header (or the "queue is empty" line) and up to ``limit`` items; ``total``: the whole queue's size."""
    if not items:
        return [section(messages.REVIEW_EMPTY)]
    shown = items[:limit]
    return [section(admin.review_header(len(shown), max(total, len(items)))), *(item_block(i) for i in shown)]
