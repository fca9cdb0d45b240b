"""An edited knowledge-base file is used by a running bot without a retrain or a restart (a support lead who fixes an
answer expects the next customer to get it), and a broken edit never replaces the file that was working."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_chat import ChatSetup, chat_setup  # noqa: F401 - the fixture, shared with the chat tests

from bot import messages
from bot.config import load_settings
from bot.context import Context
from bot.normalize import normalize

NEW_ANSWER = "Refunds now reach your card within 2 days."


def open_with_own_kb(setup: ChatSetup, tmp_path: Path) -> tuple[Context, Path]:
    kb_path = tmp_path / "kb.yaml"
    kb_path.write_text(Path(setup.env["CSBOT_KB_PATH"]).read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings(env_file=None, data_dir=setup.data_dir, kb_path=kb_path, onnx_provider="cpu")
    return Context.open(settings), kb_path


def edit_answer(kb_path: Path, old: str, new: str) -> None:
    text = kb_path.read_text(encoding="utf-8")
    assert old in text
    kb_path.write_text(text.replace(old, new), encoding="utf-8")


def test_an_edited_answer_is_used_without_a_retrain(chat_setup: ChatSetup, tmp_path: Path,  # noqa: F811
                                                    caplog: pytest.LogCaptureFixture) -> None:
    ctx, kb_path = open_with_own_kb(chat_setup, tmp_path)
    assert not ctx.refresh_knowledge_base()  # unchanged since it was read: nothing to do
    old = ctx.kb.intent("refund").answer.strip()
    edit_answer(kb_path, old, NEW_ANSWER)
    with caplog.at_level(logging.INFO, logger="bot.context"):
        assert ctx.refresh_knowledge_base()
    assert ctx.kb.intent("refund").answer.strip() == NEW_ANSWER and ctx.bot.kb is ctx.kb
    assert messages.KB_RELOADED.format(path=kb_path, intents=len(ctx.kb.intents)) in caplog.text
    assert not ctx.refresh_knowledge_base()
    assert ctx.live.current.version == "v0001"  # the model stays: only the file was re-read


def test_a_broken_edit_keeps_the_loaded_file_and_is_reported_once(chat_setup: ChatSetup,  # noqa: F811
                                                                  tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    ctx, kb_path = open_with_own_kb(chat_setup, tmp_path)
    good = kb_path.read_text(encoding="utf-8")
    old = ctx.kb.intent("refund").answer.strip()
    kb_path.write_text(good + "\nintents: [\n", encoding="utf-8")  # a save in the middle of an edit
    assert not ctx.refresh_knowledge_base() and not ctx.refresh_knowledge_base()
    assert caplog.text.count("keeps serving") == 1  # said once, not at every poll
    assert ctx.kb.intent("refund").answer.strip() == old
    kb_path.write_text(good.replace(old, NEW_ANSWER), encoding="utf-8")  # the edit finished
    assert ctx.refresh_knowledge_base() and ctx.kb.intent("refund").answer.strip() == NEW_ANSWER


def test_the_terminal_chat_gives_an_edited_answer_at_the_next_message(chat_setup: ChatSetup,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    from bot.chat import run_chat

    ctx, kb_path = open_with_own_kb(chat_setup, tmp_path)
    text = chat_setup.clear[0]
    intent = ctx.live.predict([normalize(text).text])[0].top.intent
    old = ctx.kb.intent(intent).answer.strip()

    def lines() -> Iterator[str]:
        yield text + "\n"
        edit_answer(kb_path, old, NEW_ANSWER)
        yield from (text + "\n", "/quit\n")

    out = io.StringIO()
    run_chat(ctx, lines(), out, user="lead")  # type: ignore[arg-type]
    said = out.getvalue()
    assert said.count(old) == 1 and said.count(NEW_ANSWER) == 1
    assert said.index(old) < said.index(NEW_ANSWER)


def test_the_running_bot_picks_up_an_edited_file_within_its_poll(chat_setup: ChatSetup,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    """What `csbot serve` runs beside Slack: the same thread that watches for a promoted model."""
    ctx, kb_path = open_with_own_kb(chat_setup, tmp_path)
    stop = ctx.watch_model(interval=0.02)
    try:
        edit_answer(kb_path, ctx.kb.intent("refund").answer.strip(), NEW_ANSWER)
        deadline = time.monotonic() + 10
        while ctx.kb.intent("refund").answer.strip() != NEW_ANSWER:
            assert time.monotonic() < deadline, "the edited file was never read"
            time.sleep(0.02)
        assert ctx.bot.kb is ctx.kb
    finally:
        stop.set()


def test_an_intent_dropped_from_the_file_is_handed_over_from_the_next_message(chat_setup: ChatSetup,  # noqa: F811
                                                                             tmp_path: Path) -> None:
    import yaml

    from bot.service import Incoming

    ctx, kb_path = open_with_own_kb(chat_setup, tmp_path)
    text = chat_setup.clear[0]
    intent = ctx.live.predict([normalize(text).text])[0].top.intent
    assert ctx.bot.handle(Incoming(text=text, user="U1", channel="term")).route.decision == "answer"
    data = yaml.safe_load(kb_path.read_text(encoding="utf-8"))
    data["intents"] = [i for i in data["intents"] if i["name"] != intent]
    kb_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert ctx.refresh_knowledge_base() and intent not in ctx.kb.intents
    decision = ctx.bot.handle(Incoming(text=text, user="U1", channel="term")).route
    assert (decision.decision, decision.reason, decision.intent) == ("handoff", "no_answer", intent)
