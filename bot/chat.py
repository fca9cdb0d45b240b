"""The terminal bot: the same router, store and feedback as Slack, over stdin/stdout.

It reads lines, so it works interactively and with piped input (the tests drive it
through a pipe and check the rows it wrote).
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterable
from typing import TextIO

from bot import messages
from bot.context import Context
from bot.normalize import terminal_text
from bot.router import CLARIFY, ESCALATE, HANDOFF, PROMPT
from bot.service import Incoming, Outcome, valid_text
from bot.store import NEW_TOPIC, typed_intent
from models.errors import CsbotError

log = logging.getLogger(__name__)
SENTIMENTS = ("negative", "neutral", "positive")


def _show(out: TextIO, outcome_text: str, context: str = "") -> None:
    out.write(f"{messages.CHAT_PROMPT_BOT}{terminal_text(outcome_text)}\n")
    if context:
        out.write(f"     ({context})\n")
    out.flush()


def run_chat(ctx: Context, stdin: Iterable[str], stdout: TextIO, user: str | None = None) -> int:
    """Chat until EOF or /quit; returns the number of messages handled."""
    user = user or f"terminal:{getpass.getuser()}"
    company = ctx.kb.company
    stdout.write(messages.CHAT_BANNER.format(company=company.name, bot_name=company.bot_name,
                                             version=ctx.live.current.version, device=ctx.live.current.device)
                 + "\n")
    if company.greeting:
        _show(stdout, company.greeting)
    conversation = ctx.store.get_or_create_conversation("terminal", None, user, "terminal")
    last: Outcome | None = None
    last_reply_id: int | None = None
    last_message_id: int | None = None  # the message /correct applies to, also after a clarify pick
    handled = 0
    unloadable: set[str] = set()  # active versions that failed to load: warned about once
    typing = _is_terminal(stdin)
    lines = iter(stdin)
    while True:
        if typing:  # the prompt before the line, as a shell does; piped lines are echoed after it instead
            stdout.write(messages.CHAT_PROMPT_USER)
            stdout.flush()
        raw = next(lines, None)
        if raw is None:
            break
        line = valid_text(raw.rstrip("\r\n"))  # \r too: input piped from Windows files
        if not typing:
            stdout.write(f"{messages.CHAT_PROMPT_USER}{line}\n")
        _pick_up_new_model(ctx, stdout, unloadable)
        try:
            if line.strip() in ("/quit", "/exit"):
                break
            if line.startswith("/"):
                _command(ctx, stdout, line, last_message_id, last_reply_id, user)
                continue
            if last and last.route.decision == CLARIFY and line.strip() in ("1", "2"):
                intent = last.route.candidates[int(line.strip()) - 1]
                last_reply_id, reply = ctx.bot.choose(last.message_id, intent, user, "terminal")
                _show(stdout, reply.text, reply.context)
                last = None
                continue
            outcome = ctx.bot.handle(Incoming(text=line, user=user, conversation_id=conversation))
            handled += 1
            _show(stdout, outcome.reply.text, outcome.reply.context)
            if outcome.route.decision == PROMPT:
                continue  # "say a bit more" is no answer: /up, /correct and a clarify pick keep their target
            last, last_message_id = outcome, outcome.message_id
            # Only answers are rated (as in Slack, where only they get the buttons).
            last_reply_id = outcome.reply_id if outcome.reply.rateable else None
            if outcome.route.decision in (HANDOFF, ESCALATE):  # nobody is paged from a terminal: say where it went
                stdout.write(f"     {messages.CHAT_HANDOFF_NOTE}\n")
            for number, (_, description) in enumerate(outcome.reply.choices, start=1):
                stdout.write(f"     {number}. {description}\n")
            if outcome.reply.choices:
                stdout.write(f"     {messages.CHAT_CHOOSE}\n")
        except CsbotError as error:
            _show(stdout, f"{messages.ERROR_PREFIX}{error}")
    stdout.write(messages.CHAT_BYE.format(db=ctx.settings.db_path) + "\n")
    stdout.flush()
    return handled


def _command(ctx: Context, out: TextIO, line: str, message_id: int | None, reply_id: int | None, user: str) -> None:
    name, _, arg = line.partition(" ")
    if name in ("/up", "/down"):
        if reply_id is None:
            _show(out, messages.NOTHING_TO_RATE)
            return
        ctx.bot.rate(reply_id, user, 1 if name == "/up" else -1, "terminal")
        _show(out, messages.RATED_UP if name == "/up" else messages.RATED_DOWN)
    elif name == "/correct":
        if message_id is None:
            _show(out, messages.NOTHING_TO_CORRECT)
            return
        _correct(ctx, out, message_id, arg.split(), user)
    elif name == "/intents":
        _show(out, ", ".join(sorted(ctx.kb.intents)))
    else:
        _show(out, messages.CHAT_COMMANDS)


def _correct(ctx: Context, out: TextIO, message_id: int, words: list[str], user: str) -> None:
    """``/correct INTENT``, ``/correct SENTIMENT`` or ``/correct INTENT SENTIMENT``."""
    sentiment = words.pop() if words and words[-1] in SENTIMENTS and words[-1] not in ctx.kb.intents else None
    if len(words) > 1 or not (words or sentiment):
        _show(out, messages.CHAT_CORRECT_USAGE)
        return
    intent = typed_intent(words[0]) if words else None
    ctx.bot.correct(message_id, user, intent, sentiment=sentiment)
    if intent == NEW_TOPIC:
        _show(out, messages.CORRECTED_NEW_TOPIC.format(message_id=message_id))
    elif intent:
        _show(out, messages.CORRECTED.format(message_id=message_id, intent=intent))
    if sentiment:
        _show(out, messages.CORRECTED_SENTIMENT.format(message_id=message_id, sentiment=sentiment))


def _pick_up_new_model(ctx: Context, out: TextIO, unloadable: set[str]) -> None:
    """Between two messages, switch to the version a retrain or an admin made active, and to an edited
    knowledge-base file (as Slack does)."""
    ctx.refresh_knowledge_base()
    old = ctx.live.current.version
    try:
        active = ctx.registry.active()
    except CsbotError as error:  # a busy database: keep the current model and look again next message
        log.warning("%s", error)
        return
    if active in unloadable:
        return
    try:
        swapped = ctx.refresh_model()
    except CsbotError as error:  # a bad new version must not stop the chat on the current one
        unloadable.add(active or "")
        log.warning("%s: %s", messages.NEW_MODEL_UNLOADABLE.format(version=active, current=old), error)
        return
    if swapped:
        out.write(messages.CHAT_MODEL_SWAPPED.format(old=old, new=ctx.live.current.version) + "\n")


def _is_terminal(stream: Iterable[str]) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # a closed or unusual stream: read it as piped input
        return False
