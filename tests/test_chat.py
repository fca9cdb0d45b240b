"""The bot without Slack: ``csbot chat`` driven through a pipe, and ``Bot`` itself, with rows checked in SQLite."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_data_dir

from bot import messages
from bot.config import load_settings
from bot.context import Context
from bot.normalize import normalize, terminal_text
from bot.service import Incoming
from models.errors import CsbotError
from models.runtime import Classifier

CANDIDATES = ["where is my order", "i want a refund", "reset my password", "has my package shipped",
              "refund my purchase", "forgot my password", "track my parcel", "money back please"]
LONG = "where is my order " * 2300  # 41,400 characters


def margin(classifier: Classifier, text: str) -> float:
    (p,) = classifier.predict([normalize(text).text], top_k=2)
    return p.intents[0].probability - p.intents[1].probability


@dataclass
class ChatSetup:
    data_dir: Path
    env: dict[str, str]
    clear: list[str]  # answered: margin above the fitted clarify_margin
    close: str  # clarified: the smallest margin
    candidates: tuple[str, str]  # the two intents the close call offers


@pytest.fixture
def chat_setup(tmp_path: Path, tiny_model: Path, tiny_kb_path: Path) -> ChatSetup:
    """A data dir with the tiny model active, and thresholds placed so one message is a close call."""
    classifier = Classifier.load(tiny_model, provider="cpu")
    margins = {t: margin(classifier, t) for t in CANDIDATES}
    close = min(CANDIDATES, key=margins.__getitem__)
    above = sorted(m for m in margins.values() if m > margins[close] + 1e-4)
    assert above, "need two distinct margins to place the threshold between them"
    threshold = (margins[close] + above[0]) / 2
    clear = [t for t in CANDIDATES if margins[t] > threshold]
    thresholds = {"answer_min": 0.0, "clarify_margin": threshold, "clarify_min": 0.0, "escalate_negative": 1.01}
    data = make_data_dir(tmp_path, tiny_model, thresholds)
    (p,) = classifier.predict([close], top_k=2)
    env = {**os.environ, "CSBOT_DATA_DIR": str(data), "CSBOT_KB_PATH": str(tiny_kb_path),
           "CSBOT_ONNX_PROVIDER": "cpu", "USER": "tester", "LOGNAME": "tester"}
    return ChatSetup(data, env, clear[:2] if len(clear) > 1 else clear * 2, close,
                     (p.intents[0].intent, p.intents[1].intent))


def rows(db: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql)]


def test_terminal_chat_session_is_recorded(chat_setup: ChatSetup) -> None:
    a, c = chat_setup.clear
    # /correct after a clarify pick applies to the clarified message (the customer's pick may be wrong too).
    script = [a, "/up", chat_setup.close, "2", "/down", "/correct track_order", c, "/correct refund", "", "/intents",
              LONG, "/bogus",
              "/quit", "never read"]
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input="\n".join(script) + "\n",
                          cwd=chat_setup.data_dir.parent, env=chat_setup.env, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Tiny Shop support bot (csbot) in the terminal · model v0001 on CPU" in out
    assert "bot> Hi! Ask me anything." in out
    assert messages.CLARIFY_QUESTION in out and messages.CHAT_CHOOSE in out
    assert messages.RATED_UP in out and messages.RATED_DOWN in out
    assert terminal_text(messages.EMPTY_PROMPT) in out and "_\"where" not in out  # mrkdwn shown as plain text
    assert "bot> refund, reset_password, track_order" in out
    assert f"bot> {messages.CHAT_COMMANDS}" in out  # the answer to /bogus
    assert messages.CHAT_BYE.format(db=chat_setup.data_dir / "csbot.db") in out
    assert "never read" not in out

    db = chat_setup.data_dir / "csbot.db"
    conversations = rows(db, "SELECT * FROM conversations")
    assert [(r["source"], r["channel"], r["user"]) for r in conversations] == [
        ("terminal", "terminal", "terminal:tester")]
    msgs = rows(db, "SELECT * FROM messages ORDER BY id")
    assert [m["text"] for m in msgs] == [a, chat_setup.close, c, "", LONG]
    assert [m["decision"] for m in msgs[:4]] == ["answer", "clarify", "answer", "prompt"]
    assert msgs[0]["reason"].startswith("confident: ") and msgs[1]["reason"].startswith("close_call: ")
    assert msgs[3]["reason"].startswith("empty: ")
    assert all(m["model_version"] == "v0001" for m in msgs if m["decision"] != "prompt")
    assert all(m["latency_ms"] is not None and m["conversation_id"] == conversations[0]["id"] for m in msgs)
    assert msgs[1]["second_intent"] == chat_setup.candidates[1]

    long_row = msgs[4]
    assert len(long_row["text"]) == len(LONG)
    assert 0 < len(long_row["normalized_text"]) <= 2000
    long_reply = rows(db, f"SELECT * FROM replies WHERE message_id = {long_row['id']}")[0]
    assert messages.TRUNCATED_NOTE in long_reply["text"]

    replies = rows(db, "SELECT * FROM replies ORDER BY id")
    assert [(r["message_id"], r["kind"]) for r in replies] == [
        (msgs[0]["id"], "answer"), (msgs[1]["id"], "clarify"), (msgs[1]["id"], "answer"),
        (msgs[2]["id"], "answer"), (msgs[3]["id"], "prompt"), (msgs[4]["id"], long_row["decision"])]
    chosen = replies[2]
    assert chosen["intent"] == chat_setup.candidates[1]

    feedback = rows(db, "SELECT * FROM feedback ORDER BY id")
    assert [(f["reply_id"], f["rating"], f["source"], f["user"]) for f in feedback] == [
        (replies[0]["id"], 1, "terminal", "terminal:tester"), (chosen["id"], -1, "terminal", "terminal:tester")]
    labels = rows(db, "SELECT * FROM labels")
    assert [(x["message_id"], x["intent"], x["source"]) for x in labels] == [
        (msgs[1]["id"], chat_setup.candidates[1], "clarify")]
    corrections = rows(db, "SELECT * FROM corrections")
    assert [(x["message_id"], x["correct_intent"], x["predicted_intent"], x["agent"], x["status"])
            for x in corrections] == [(msgs[1]["id"], "track_order", msgs[1]["intent"], "terminal:tester", "open"),
                                      (msgs[2]["id"], "refund", msgs[2]["intent"], "terminal:tester", "open")]
    assert f"Noted: message {msgs[2]['id']} is really 'refund'" in out


def open_context(setup: ChatSetup) -> Context:
    settings = load_settings(env_file=None, data_dir=setup.data_dir, kb_path=Path(setup.env["CSBOT_KB_PATH"]),
                             onnx_provider="cpu")
    return Context.open(settings)


def test_chat_commands_without_an_answer_and_bad_corrections(chat_setup: ChatSetup) -> None:
    from bot.chat import run_chat

    ctx = open_context(chat_setup)
    out = io.StringIO()
    script = ["/up", "/correct refund", "   ", "/down", chat_setup.clear[0], "/correct nope", "/correct", "/up",
              "/quit"]
    handled = run_chat(ctx, io.StringIO("\r\n".join(script) + "\r\n"), out, user="agent-1")  # CRLF input
    text = out.getvalue()
    assert handled == 2
    assert "bot> Commands:" not in text  # every command was understood despite the \r
    assert text.count(messages.NOTHING_TO_RATE) == 2  # /up before any message, /down after a prompt
    assert text.count(messages.NOTHING_TO_CORRECT) == 1  # /correct before any message
    assert "bot> Error: 'nope' is not an intent in the knowledge base. Known intents: refund, reset_password" in text
    assert f"Fix: {messages.UNKNOWN_INTENT_FIX}" in text  # the same fix as in Slack's modal and `csbot label`
    assert rows(chat_setup.data_dir / "csbot.db", "SELECT * FROM corrections") == []
    feedback = rows(chat_setup.data_dir / "csbot.db", "SELECT * FROM feedback")
    assert [(f["rating"], f["user"]) for f in feedback] == [(1, "agent-1")]  # only the answer was rated


def test_a_locked_database_is_a_message_in_the_chat_and_the_vote_can_be_given_again(chat_setup: ChatSetup) -> None:
    from bot.chat import run_chat
    from bot.store import Store

    ctx = open_context(chat_setup)
    ctx.store.db.execute("PRAGMA busy_timeout = 100")  # this connection gives up after 0.1 s, not 10
    holder = Store(chat_setup.data_dir / "csbot.db")  # another csbot process (a purge, a backup) writing

    def lines() -> Iterator[str]:
        yield chat_setup.clear[0] + "\n"
        holder.db.execute("BEGIN IMMEDIATE")
        yield from ("/up\n", "where is my order\n")
        holder.db.execute("COMMIT")
        yield from ("/up\n", "/quit\n")

    out = io.StringIO()
    try:
        assert run_chat(ctx, lines(), out, user="agent-3") == 1  # type: ignore[arg-type]
    finally:
        holder.close()
    text = out.getvalue()
    busy = messages.DB_BUSY.format(path=ctx.settings.db_path, seconds=ctx.store.busy_timeout_ms / 1000)
    assert text.count(f"bot> {messages.ERROR_PREFIX}{busy}") == 2  # the vote and the message, not a traceback
    assert f"Fix: {messages.DB_BUSY_FIX}" in text
    assert text.count(messages.RATED_UP) == 1  # the vote given again once the lock is gone
    db = chat_setup.data_dir / "csbot.db"
    assert [m["text"] for m in rows(db, "SELECT text FROM messages")] == [chat_setup.clear[0]]
    assert [(f["rating"], f["user"]) for f in rows(db, "SELECT * FROM feedback")] == [(1, "agent-3")]


def test_chat_corrects_sentiment_and_picks_up_a_promoted_model(chat_setup: ChatSetup, tiny_model: Path) -> None:
    from bot.chat import run_chat
    from models import modeldir
    from models.registry import Registry

    ctx = open_context(chat_setup)
    modeldir.copy_model_dir(tiny_model, chat_setup.data_dir / "models" / "v0002")
    modeldir.update_manifest(chat_setup.data_dir / "models" / "v0002", version="v0002")
    modeldir.copy_model_dir(tiny_model, chat_setup.data_dir / "models" / "v0003")
    registry = Registry(chat_setup.data_dir / "models", ctx.store)

    def lines() -> Iterator[str]:
        yield from (chat_setup.clear[0] + "\n", "/correct refund negative\n", "/correct positive\n",
                    "/correct refund angry extra\n")
        registry.activate("v0002")  # what a retrain in another process does
        yield chat_setup.clear[1] + "\n"
        registry.activate("v0003")
        card = modeldir.read(chat_setup.data_dir / "models" / "v0003")
        card.onnx_path("fp32").write_bytes(b"corrupt")  # damaged after promotion: it cannot load
        yield from (chat_setup.clear[0] + "\n", chat_setup.clear[1] + "\n", "/quit\n")

    out = io.StringIO()
    assert run_chat(ctx, lines(), out, user="agent-2") == 4  # type: ignore[arg-type]
    text = out.getvalue()
    assert text.count(messages.CHAT_MODEL_SWAPPED.format(old="v0001", new="v0002")) == 1
    assert "v0003" not in text  # it does not load: the chat stays on v0002 and says so once, in the log
    assert text.count(messages.CHAT_CORRECT_USAGE) == 1
    msgs = rows(chat_setup.data_dir / "csbot.db", "SELECT * FROM messages ORDER BY id")
    assert [m["model_version"] for m in msgs] == ["v0001", "v0002", "v0002", "v0002"]
    assert "bot> Noted: message 1 is really 'refund'" in text and "bot> Noted: message 1 is negative." in text
    # A second /correct updates the verdict on that message: the sentiment changes, the intent it left out stays.
    corrections = rows(chat_setup.data_dir / "csbot.db", "SELECT * FROM corrections ORDER BY id")
    assert [(c["message_id"], c["correct_intent"], c["correct_sentiment"], c["agent"]) for c in corrections] == [
        (msgs[0]["id"], "refund", "positive", "agent-2")]


def test_the_model_watcher_tries_a_broken_version_once_and_still_swaps_a_good_one(
        chat_setup: ChatSetup, tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What `csbot serve` runs: a damaged active version is logged once, not re-hashed every few seconds."""
    from models import modeldir
    from models.registry import Registry

    ctx = open_context(chat_setup)
    for version in ("v0002", "v0003"):
        modeldir.copy_model_dir(tiny_model, chat_setup.data_dir / "models" / version)
        modeldir.update_manifest(chat_setup.data_dir / "models" / version, version=version)
    registry = Registry(chat_setup.data_dir / "models", ctx.store)
    registry.activate("v0002")
    modeldir.read(chat_setup.data_dir / "models" / "v0002").onnx_path("fp32").write_bytes(b"corrupt")
    stop = ctx.watch_model(interval=0.02)
    try:
        def failures() -> int:
            return sum("could not load the new active model v0002" in r.getMessage() for r in caplog.records)

        deadline = time.monotonic() + 10
        while not failures():
            assert time.monotonic() < deadline, "the broken version was never tried"
            time.sleep(0.02)
        time.sleep(0.5)  # many more polls (every 0.02 s): none of them tries v0002 again
        assert failures() == 1 and ctx.live.current.version == "v0001"
        registry.activate("v0003")
        deadline = time.monotonic() + 10
        while ctx.live.current.version != "v0003":
            assert time.monotonic() < deadline, "the good version was never swapped in"
            time.sleep(0.02)
    finally:
        stop.set()


def test_a_promoted_model_brings_the_edited_knowledge_base_with_it(chat_setup: ChatSetup, tiny_model: Path,
                                                                     tmp_path: Path) -> None:
    from models import modeldir
    from models.registry import Registry

    kb_path = tmp_path / "kb.yaml"
    kb_path.write_text(Path(chat_setup.env["CSBOT_KB_PATH"]).read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings(env_file=None, data_dir=chat_setup.data_dir, kb_path=kb_path, onnx_provider="cpu")
    ctx = Context.open(settings)
    old_answer = ctx.kb.intent("refund").answer
    kb_path.write_text(kb_path.read_text(encoding="utf-8").replace(old_answer.strip(), "Refunds take 3 days."),
                       encoding="utf-8")
    modeldir.copy_model_dir(tiny_model, chat_setup.data_dir / "models" / "v0002")
    modeldir.update_manifest(chat_setup.data_dir / "models" / "v0002", version="v0002")
    Registry(chat_setup.data_dir / "models", ctx.store).activate("v0002")  # a retrain on the edited file
    assert ctx.refresh_model()
    assert ctx.kb.intent("refund").answer.strip() == "Refunds take 3 days." and ctx.bot.kb is ctx.kb
    kb_path.write_text("intents: [", encoding="utf-8")  # half-edited: the loaded one stays
    Registry(chat_setup.data_dir / "models", ctx.store).activate("v0001")
    assert ctx.refresh_model() and ctx.kb.intent("refund").answer.strip() == "Refunds take 3 days."


def test_the_model_watcher_outlives_a_database_it_cannot_read_for_a_moment(
        chat_setup: ChatSetup, tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Its thread died on the first error ("unable to open database file"): every later promote went unseen while
    # `csbot promote` said running bots switch within seconds.
    from bot.store import Store
    from models import modeldir
    from models.registry import Registry

    ctx = open_context(chat_setup)
    modeldir.copy_model_dir(tiny_model, chat_setup.data_dir / "models" / "v0002")
    modeldir.update_manifest(chat_setup.data_dir / "models" / "v0002", version="v0002")
    away = chat_setup.data_dir.with_name("data-away")
    chat_setup.data_dir.rename(away)  # the watcher's thread opens its own connection: there is no file to open
    stop = ctx.watch_model(interval=0.02)
    try:
        deadline = time.monotonic() + 10
        while "could not read the active model version" not in caplog.text:
            assert time.monotonic() < deadline, "the failed read was never logged"
            time.sleep(0.02)
        away.rename(chat_setup.data_dir)
        with Store(chat_setup.data_dir / "csbot.db") as store:
            Registry(chat_setup.data_dir / "models", store).activate("v0002")
        while ctx.live.current.version != "v0002":
            assert time.monotonic() < deadline + 10, "the promoted version was never swapped in"
            time.sleep(0.02)
    finally:
        stop.set()


def test_a_message_with_a_lone_surrogate_does_not_fail_its_batch(chat_setup: ChatSetup) -> None:
    # Undecodable terminal bytes reach Python as lone surrogates, which neither the tokenizer nor
    # SQLite accepts; the message is kept with U+FFFD in their place and the batch goes on.
    ctx = open_context(chat_setup)
    texts = ["caf\udce9 where is my order", chat_setup.clear[0]]
    outcomes = ctx.bot.handle_many([Incoming(text=t, user="U9", channel="C1", thread_ts="3.0") for t in texts])
    assert all(o.reply.text for o in outcomes)
    assert outcomes[1].route.decision == "answer"  # the clear message next to it is answered as if alone
    assert ctx.store.get_message(outcomes[0].message_id)["text"] == "caf\ufffd where is my order"


def test_a_write_that_fails_mid_batch_stores_none_of_the_batch(chat_setup: ChatSetup) -> None:
    """The Slack pipeline retries each message of a failed batch alone: rows written before the failure would
    be stored twice (twice in the stats, twice in the review queue)."""
    ctx = open_context(chat_setup)
    # A real SQLite failure on the second message's insert (a temporary trigger on this connection).
    ctx.store.db.execute("CREATE TEMP TRIGGER refuse_one BEFORE INSERT ON messages WHEN NEW.text = 'refuse me' "
                         "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    texts = ["where is my order", "refuse me", "i want a refund"]
    batch = [Incoming(text=t, user="U9", channel="C1", thread_ts="4.0") for t in texts]

    def stored() -> list[str]:
        return [r["text"] for r in ctx.store.db.query("SELECT m.text FROM messages m JOIN conversations c ON "
                                                      "c.id = m.conversation_id WHERE c.thread_ts = '4.0'")]

    with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
        ctx.bot.handle_many(batch)
    assert stored() == [] and not ctx.store.db.conn.in_transaction
    for incoming in batch:  # what the pipeline does next
        try:
            ctx.bot.handle(incoming)
        except sqlite3.IntegrityError:
            pass
    assert stored() == ["where is my order", "i want a refund"]


def test_bytes_that_are_not_utf8_on_stdin_are_a_message_not_a_traceback(chat_setup: ChatSetup) -> None:
    env = {**chat_setup.env, "PYTHONIOENCODING": "utf-8"}  # strict decoding, as in a UTF-8 locale
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input=b"caf\xe9 where is my order\n/quit\n",
                          cwd=chat_setup.data_dir.parent, env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    assert "caf\ufffd where is my order" in proc.stdout.decode()
    texts = [r["text"] for r in rows(chat_setup.data_dir / "csbot.db", "SELECT text FROM messages")]
    assert "caf\ufffd where is my order" in texts


def test_a_closed_stdin_ends_the_chat_as_end_of_input_does(chat_setup: ChatSetup) -> None:
    # `csbot chat <&-` (or a service manager with no stdin): sys.stdin is None, and the chat raised a TypeError.
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], cwd=chat_setup.data_dir.parent,
                          env=chat_setup.env, capture_output=True, timeout=120,
                          preexec_fn=lambda: os.close(0))  # fd 0 closed before Python starts: sys.stdin is None
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr


def test_in_a_terminal_the_prompt_comes_first_and_a_line_shows_once(chat_setup: ChatSetup) -> None:
    # No prompt was printed before reading, and each typed line came back a second time after "you> ".
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "chat"], stdin=slave, stdout=slave, stderr=slave,
                            cwd=chat_setup.data_dir.parent, env=chat_setup.env, close_fds=True)
    os.close(slave)
    seen = b""

    def read_until(needle: bytes, timeout: float = 60) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while needle not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")
            if select.select([master], [], [], 0.2)[0]:
                seen += os.read(master, 65536)
    try:
        read_until(b"you> ")
        os.write(master, b"zebra umbrella 42\n")
        read_until(b"bot> ")
        os.write(master, b"/quit\n")
        proc.wait(timeout=60)
        while select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert text.count("zebra umbrella 42") == 1  # the terminal's own echo, after the prompt; not again
    assert "you> zebra umbrella 42" in text


def test_terminal_text_shows_slack_markup_as_plain_text() -> None:
    assert terminal_text("See *My account → Orders* once it is _delivered_. More: <https://x.example/t|Track> "
                         "or <mailto:help@x.example>") == ("See My account → Orders once it is delivered. More: "
                                                           "Track (https://x.example/t) or mailto:help@x.example")
    assert terminal_text("order_status and 2*3*4 stay") == "order_status and 2*3*4 stay"  # not markup


def test_bot_handles_a_40k_message_and_batches(chat_setup: ChatSetup) -> None:
    ctx = open_context(chat_setup)
    huge = "x" + "😀 hello <@U1> " * 3500  # 49,001 characters
    outcome = ctx.bot.handle(Incoming(text=huge, user="U9", channel="C1", thread_ts="1.0", source="slack"))
    assert outcome.normalized.truncated and len(outcome.normalized.text) <= 2000
    stored = ctx.store.get_message(outcome.message_id)
    assert stored is not None and stored["text"] == huge  # the model reads the first 2,000; the log keeps it all
    assert ctx.store.get_reply(outcome.reply_id)["kind"] == outcome.route.decision

    batch = [Incoming(text=t, user="U9", channel="C1", thread_ts="2.0", source="slack")
             for t in ["where is my order", "", ":tada:", LONG, chat_setup.close]]
    outcomes = ctx.bot.handle_many(batch)
    assert [o.route.decision for o in outcomes][1:3] == ["prompt", "prompt"]
    assert outcomes[1].prediction is None and outcomes[0].prediction is not None
    assert outcomes[4].route.decision == "clarify"
    assert len({o.conversation_id for o in outcomes}) == 1
    assert [o.reply.kind for o in outcomes] == [o.route.decision for o in outcomes]
    clarify = outcomes[4]
    assert [name for name, _ in clarify.reply.choices] == list(chat_setup.candidates)
    reply_id, reply = ctx.bot.choose(clarify.message_id, chat_setup.candidates[0], "U9", "C1")
    assert reply.kind == "answer" and reply.rateable and reply.context == messages.REASONS["clarified"]
    with pytest.raises(CsbotError, match="'nope' is not an intent"):
        ctx.bot.choose(clarify.message_id, "nope", "U9")
    with pytest.raises(CsbotError, match="'angry' is not a sentiment") as info:
        ctx.bot.correct(clarify.message_id, "agent", None, sentiment="angry")
    assert "negative, neutral, positive" in info.value.fix
    correction_id = ctx.bot.correct(clarify.message_id, "agent", "__new_topic__", note="new")
    feedback_id = ctx.bot.rate(reply_id, "U9", 1, "button")
    row = ctx.store.db.execute("SELECT message_id, correct_intent, note, agent FROM corrections WHERE id = ?",
                               [correction_id]).fetchone()
    assert tuple(row) == (clarify.message_id, "__new_topic__", "new", "agent")
    row = ctx.store.db.execute("SELECT reply_id, user, rating, source FROM feedback WHERE id = ?",
                               [feedback_id]).fetchone()
    assert tuple(row) == (reply_id, "U9", 1, "button")


def test_chat_without_an_active_model_is_a_clear_error(tmp_path: Path, tiny_kb_path: Path) -> None:
    env = {**os.environ, "CSBOT_DATA_DIR": str(tmp_path / "empty"), "CSBOT_KB_PATH": str(tiny_kb_path)}
    proc = subprocess.run([sys.executable, "-m", "bot.cli", "chat"], input="hello\n", cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Error: There is no active model yet." in proc.stderr
    assert "Fix: train one with `csbot train`" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_blank_or_emoji_line_leaves_the_last_answer_to_rate_and_correct(chat_setup: ChatSetup) -> None:
    """A prompt ("say a bit more") is not an answer: /up and /correct still reach the answer before it."""
    from bot.chat import run_chat

    ctx = open_context(chat_setup)
    out = io.StringIO()
    script = [chat_setup.clear[0], "", ":wave:", "/up", "/correct new-topic", "/quit"]
    run_chat(ctx, io.StringIO("\n".join(script) + "\n"), out, user="agent-4")
    text = out.getvalue()
    db = chat_setup.data_dir / "csbot.db"
    msgs = rows(db, "SELECT * FROM messages ORDER BY id")
    assert [m["decision"] for m in msgs] == ["answer", "prompt", "prompt"]
    answer = rows(db, f"SELECT * FROM replies WHERE message_id = {msgs[0]['id']}")[0]
    assert messages.NOTHING_TO_RATE not in text and messages.RATED_UP in text
    assert [(f["reply_id"], f["rating"]) for f in rows(db, "SELECT * FROM feedback")] == [(answer["id"], 1)]
    # `new-topic` is the same choice as in `csbot review label` and Slack's "None of these / new topic".
    corrections = rows(db, "SELECT * FROM corrections")
    assert [(c["message_id"], c["correct_intent"]) for c in corrections] == [(msgs[0]["id"], "__new_topic__")]
    assert messages.CORRECTED_NEW_TOPIC.format(message_id=msgs[0]["id"]) in text


def test_a_handoff_in_the_terminal_says_where_it_went(chat_setup: ChatSetup) -> None:
    # The handoff text promises a reply "in this thread", which no one can give in a terminal.
    from bot.chat import run_chat

    ctx = open_context(chat_setup)
    out = io.StringIO()
    assert run_chat(ctx, iter(["can I talk to a human please\n", "/quit\n"]), out) == 1
    text = out.getvalue()
    assert ctx.kb.company.handoff_text.splitlines()[0] in text and messages.CHAT_HANDOFF_NOTE in text
    assert rows(chat_setup.data_dir / "csbot.db", "SELECT decision FROM messages") == [{"decision": "handoff"}]
