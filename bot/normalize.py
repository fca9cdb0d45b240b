"""Turning a raw Slack message into text the classifier can read.

Slack mrkdwn carries markup that means nothing to the model (``<@U123>``,
``<https://x|label>``, code blocks, ``:emoji:``); it is replaced by what a reader
would see. Very long messages are cut at a word boundary: the model reads at most a
few dozen tokens anyway, and the opening of a message is where customers state
their problem.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# No class inside <...> matches '<': Slack sends a typed '<' as "&lt;", and a class that allowed it let
# every unclosed '<' scan to the end of the text and back (quadratic, with the GIL held).
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^<>]*)?>")
_CHANNEL = re.compile(r"<#[A-Z0-9]+(?:\|([^<>]*))?>")
_SPECIAL = re.compile(r"<!(?:here|channel|everyone)(?:\|[^<>]*)?>|<!subteam\^[A-Z0-9]+(?:\|([^<>]*))?>")
_DATE = re.compile(r"<!date\^[^|<>]*\|([^<>]*)>")
_LINK = re.compile(r"<((?:https?|mailto):[^|<>]+)(?:\|([^<>]*))?>")
_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`]*)`")
# Not between digits, so times such as 10:30:45 survive.
_SHORTCODE = re.compile(r"(?<!\d):[a-z0-9_+\-']+(?:::skin-tone-\d)?:(?!\d)")
# Keycap emoji (1️⃣, #️⃣): a digit, '#' or '*' then U+20E3. Removed whole, or the digit is left behind as a "word".
_KEYCAP = re.compile("[0-9#*]\uFE0F?\u20E3")
# Pictographs, dingbats, flags, variation selectors and joiners; the keycap mark; ℹ (a letter to Unicode, so it
# read as a word); the arrows and the watch, hourglass and clock emoji of the Arrows and Technical blocks.
_EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u200D\U000E0000-\U000E007F"
                    "\u20E3\u2139\u2194-\u21AA\u231A-\u23FF]")
# A letter or digit; not '_', which \w counts, so "_" or "😀_😀" is not text to classify.
_WORD = re.compile(r"[^\W_]", re.UNICODE)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_SPACES = re.compile(r"\s+")
RAW_FACTOR = 5  # at most max_chars * RAW_FACTOR characters of a raw message are parsed


@dataclass(frozen=True)
class Normalized:
    text: str
    truncated: bool
    original_length: int

    @property
    def empty(self) -> bool:
        """Nothing to classify: empty, whitespace, only emoji/markup, no letter at all ("1", "???"), or one letter
        repeated ("xxxxxxxx"). A model reads the last two as whatever they resemble (a line of "x" was answered as
        a greeting, 93% sure); the customer is better asked what they need. One or two letters ("k", "嗨") stay."""
        if not _WORD.search(self.text):
            return True
        letters = _LETTER.findall(self.text)
        return not letters or (len(letters) >= 3 and len({c.casefold() for c in letters}) == 1)


def normalize(raw: str | None, max_chars: int = 2000, bot_user_id: str | None = None) -> Normalized:
    raw = raw or ""
    # Markup patterns can backtrack over the whole text when a '<' or '|' is never closed, so only the
    # opening of a huge message is parsed (a generous multiple of what is kept anyway).
    text = raw[: max_chars * RAW_FACTOR]
    text = _CODE_BLOCK.sub(" [code] ", text)
    text = _USER.sub(lambda m: "" if m.group(1) == bot_user_id else "@user", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(1)}" if m.group(1) else "#channel", text)
    text = _DATE.sub(lambda m: m.group(1), text)
    text = _SPECIAL.sub(lambda m: m.group(1) or "", text)
    text = _LINK.sub(lambda m: m.group(2) or "link", text)
    text = _INLINE_CODE.sub(lambda m: m.group(1), text)
    text = _SHORTCODE.sub(" ", text)
    text = _KEYCAP.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = _SPACES.sub(" ", text).strip()
    truncated = len(text) > max_chars or len(raw) > max_chars * RAW_FACTOR
    if truncated:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = cut[:space] if space > max_chars // 2 else cut
    return Normalized(text=text, truncated=truncated, original_length=len(raw))


_PINGS = re.compile(r"<!(here|channel|everyone)(?:\|[^<>]*)?>|<!subteam\^([A-Z0-9]+)(?:\|([^<>]*))?>"
                    r"|<@([UW][A-Z0-9]+)(?:\|([^<>]*))?>")


def quiet_mentions(raw: str) -> str:
    """A customer's Slack text, safe to quote elsewhere: mentions shown as plain text, so none notifies.

    Quoted in the agents' channel, a customer's ``<!channel>`` would page every agent, and ``<@U123>``
    the person named. Links, formatting and everything else stay as the customer wrote them."""
    def plain(m: re.Match[str]) -> str:
        special, group, group_label, user, user_label = m.groups()
        if special:
            return f"@{special}"
        if group:
            return group_label or f"@{group}"
        return f"@{user_label or user}"
    return _PINGS.sub(plain, raw)


_BOLD = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(\S(?:[^_\n]*\S)?)_(?![\w_])")


def terminal_text(text: str) -> str:
    """Slack mrkdwn as a terminal shows it: ``<url|title>`` as "title (url)", *bold* and _italic_ plain.
    (Answers are written for Slack; the terminal chat printed the markup as it is.)"""
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return _ITALIC.sub(r"\1", _BOLD.sub(r"\1", text))


def text_key(text: str) -> str:
    """What makes two messages "the same text": Unicode-normalised, case-folded, punctuation and spacing
    ignored, so "Where is my card?" and "where is my card" never land on both sides of the evaluation set."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join("".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded).split())
