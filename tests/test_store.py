"""Tests for bot.store against real SQLite files (no mocks): schema, concurrency, queries, retention."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from bot import messages
from bot.migrations import MIGRATIONS
from bot.store import NEW_TOPIC, Store, iso, parse_age
from models.errors import StoreError

LONG_AGO = iso(datetime.now(timezone.utc) - timedelta(days=400))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "csbot.db") as opened:
        yield opened


@pytest.fixture
def conversation(store: Store) -> int:
    return store.get_or_create_conversation("C1", "1700000000.000100", "U1", "slack")


def message(store: Store, conversation_id: int, text: str = "where is my card?", **fields: Any) -> int:
    fields.setdefault("decision", "answer")
    fields.setdefault("intent", "card_arrival")
    return store.log_message(
        conversation_id, user="U1", text=text, normalized_text=text.lower(), reason="test", **fields
    )


def run_threads(count: int, target: Callable[[int], None]) -> None:
    """Run ``target(i)`` in ``count`` threads started together; re-raise the first failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]


def count(store: Store, table: str) -> int:
    return store.db[table].count


# -- schema and connection settings ------------------------------------------------


def test_migrations_are_recorded_in_order(store: Store) -> None:
    rows = list(store.db.query("SELECT id, name, applied_at FROM migrations ORDER BY id"))
    assert [(row["id"], row["name"]) for row in rows] == [
        (number, name) for number, (name, _) in enumerate(MIGRATIONS, start=1)
    ]
    assert all(datetime.fromisoformat(row["applied_at"]).utcoffset() == timedelta(0) for row in rows)
    assert store.schema_version == len(MIGRATIONS)


def test_reopening_applies_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "csbot.db"
    Store(path).close()
    with Store(path) as reopened:
        assert reopened.migrate() == []
        assert count(reopened, "migrations") == len(MIGRATIONS)


def test_old_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "csbot.db"
    with Store(path, migrations=MIGRATIONS[:1]) as old:
        assert old.schema_version == 1
        assert "kv" not in old.db.table_names()
        conversation_id = old.get_or_create_conversation("C1", "1.0", "U1", "slack")
        message_id = message(old, conversation_id, "kept across the upgrade")
    with Store(path) as upgraded:
        assert upgraded.schema_version == len(MIGRATIONS) > 1
        assert {"kv", "model_versions", "training_runs"} <= set(upgraded.db.table_names())
        assert upgraded.get_message(message_id)["text"] == "kept across the upgrade"  # type: ignore[index]
        upgraded.kv_set("active_model", "v1")
        assert upgraded.kv_get("active_model") == "v1"


def test_existing_corrections_start_the_history(tmp_path: Path) -> None:
    path = tmp_path / "csbot.db"
    with Store(path, migrations=MIGRATIONS[:3]) as old:
        conversation_id = old.get_or_create_conversation("C1", "1.0", "U1", "slack")
        message_id = message(old, conversation_id, "card never came")
        old.db.execute("INSERT INTO corrections (message_id, agent, correct_intent, status, created_at, updated_at) "
                       "VALUES (?, 'A1', 'card_arrival', 'open', '2026-01-01T00:00:00+00:00', "
                       "'2026-01-01T00:00:00+00:00')", [message_id])
        old.db.conn.commit()
    with Store(path) as upgraded:
        [entry] = list(upgraded.db["correction_history"].rows)
        assert (entry["message_id"], entry["agent"], entry["correct_intent"]) == (message_id, "A1", "card_arrival")


def test_connection_pragmas_are_on_in_every_thread(tmp_path: Path) -> None:
    with Store(tmp_path / "csbot.db", busy_timeout_ms=1234) as store:
        seen: list[tuple[Any, ...]] = []

        def read_pragmas(_: int) -> None:
            conn = store.db.conn
            seen.append(
                tuple(
                    conn.execute(f"PRAGMA {name}").fetchone()[0]
                    for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
                )
            )

        read_pragmas(0)
        run_threads(2, read_pragmas)
        # synchronous=1 is NORMAL.
        assert seen == [("wal", 1234, 1, 1)] * 3
    with Store(tmp_path / "default.db") as default:
        assert default.db.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000


def test_each_thread_gets_its_own_connection_and_close_closes_them_all(store: Store) -> None:
    connections: list[sqlite3.Connection] = []
    run_threads(3, lambda _: connections.append(store.db.conn))
    assert len({id(conn) for conn in connections + [store.db.conn]}) == 4
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        connections[0].execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        store.kv_get("active_model")


def test_writer_waits_for_the_lock_then_gives_up_after_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "csbot.db"
    holder, patient, impatient = Store(path), Store(path), Store(path, busy_timeout_ms=50)
    conversation_id = patient.get_or_create_conversation("C1", "1.0", "U1", "slack")
    with holder.transaction():
        with pytest.raises(StoreError, match="is busy") as caught:  # what every surface shows, not a traceback
            impatient.kv_set("k", "v")
        assert caught.value.fix == messages.DB_BUSY_FIX and "(nothing was changed)" in str(caught.value)
        waiter = threading.Thread(target=lambda: message(patient, conversation_id))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive(), "the second writer should be queued on the write lock"
    waiter.join(timeout=10)
    assert count(patient, "messages") == 1
    with pytest.raises(sqlite3.OperationalError, match="no such table"):  # a bug in csbot's SQL stays one
        with impatient.transaction() as db:
            db.execute("UPDATE no_such_table SET x = 1")
    for opened in (holder, patient, impatient):
        opened.close()


# -- concurrency -------------------------------------------------------------------


def test_eight_threads_lose_no_writes(store: Store) -> None:
    def write(worker: int) -> None:
        # Every thread races to create the same conversation as well.
        conversation_id = store.get_or_create_conversation("C1", "1700000000.000100", f"U{worker}", "slack")
        for i in range(200):
            message_id = message(store, conversation_id, f"worker {worker} message {i}")
            if i % 2:
                reply_id = store.log_reply(message_id, text="an answer", kind="answer")
                store.record_feedback(reply_id, f"U{worker}", 1 if i % 4 == 1 else -1, "button")

    run_threads(8, write)
    assert count(store, "messages") == 1600
    assert count(store, "feedback") == 800
    assert count(store, "conversations") == 1


def _write_rows_in_process(path: str, worker: int) -> None:
    with Store(path) as store:
        conversation_id = store.get_or_create_conversation("C1", "1.0", f"P{worker}", "slack")
        for i in range(200):
            message(store, conversation_id, f"process {worker} message {i}")


def test_opening_waits_for_a_writer_that_is_still_creating_the_file(tmp_path: Path) -> None:
    # Two csbot commands started at once on a fresh data dir: while one writes the new file (not yet in WAL mode),
    # SQLite answers the other's switch to WAL with "database is locked" at once, ignoring busy_timeout. That
    # made a flaky CI run ("busy: another process held its write lock for over 10 s"), and a failed start.
    import sqlite3
    import threading

    path = tmp_path / "csbot.db"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("CREATE TABLE early (x)")
    first.execute("BEGIN IMMEDIATE")
    first.execute("INSERT INTO early VALUES (1)")
    threading.Timer(0.5, lambda: first.execute("COMMIT")).start()
    with Store(path) as store:  # waits the half second out instead of failing
        assert store.schema_version == len(MIGRATIONS)
    first.close()


def test_two_processes_lose_no_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "csbot.db")
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_write_rows_in_process, args=(path, n)) for n in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    with Store(path) as store:
        assert count(store, "messages") == 400
        assert count(store, "conversations") == 1


# -- conversations, replies, feedback ------------------------------------------------


def test_conversations_and_replies(store: Store, conversation: int) -> None:
    assert store.get_or_create_conversation("C1", "1700000000.000100", "U2", "slack") == conversation
    terminal = [store.get_or_create_conversation("terminal", None, "me", "terminal") for _ in range(2)]
    assert len(set(terminal)) == 2, "terminal sessions have no thread to share"

    message_id = message(store, conversation, confidence=0.42, model_version="v1")
    assert store.get_message(message_id)["confidence"] == 0.42  # type: ignore[index]
    assert store.last_reply(conversation) is None
    reply_id = store.log_reply(message_id, text="Cards arrive soon.", kind="answer", intent="card_arrival")
    assert store.find_reply("C1", "1700000001.000200") is None
    store.set_reply_ts(reply_id, "C1", "1700000001.000200")
    found = store.find_reply("C1", "1700000001.000200")
    assert found is not None
    assert (found["id"], found["message_id"]) == (reply_id, message_id)
    assert found["conversation_id"] == conversation
    assert store.get_reply(reply_id) == found == store.last_reply(conversation)

    with pytest.raises(ValueError, match="invalid decision 'maybe'"):
        message(store, conversation, decision="maybe")
    with pytest.raises(ValueError, match="invalid kind"):
        store.log_reply(message_id, text="?", kind="shrug")


def test_feedback_is_one_vote_per_person(store: Store, conversation: int) -> None:
    reply_id = store.log_reply(message(store, conversation), text="an answer", kind="answer")
    first = store.record_feedback(reply_id, "U1", 1, "button")
    assert store.record_feedback(reply_id, "U1", -1, "reaction") == first
    rows = list(store.db["feedback"].rows)
    assert [(row["user"], row["rating"], row["source"]) for row in rows] == [("U1", -1, "reaction")]

    store.record_feedback(reply_id, "U2", 1, "button")
    assert count(store, "feedback") == 2
    assert store.remove_feedback(reply_id, "U2") is True
    assert store.remove_feedback(reply_id, "U2") is False
    assert count(store, "feedback") == 1


@pytest.mark.parametrize("rating", [0, 2, -2, True, "1"])
def test_invalid_rating_is_rejected(store: Store, conversation: int, rating: Any) -> None:
    reply_id = store.log_reply(message(store, conversation), text="an answer", kind="answer")
    with pytest.raises(ValueError, match=r"expected \+1 \(helpful\) or -1"):
        store.record_feedback(reply_id, "U1", rating, "button")
    assert count(store, "feedback") == 0


# -- corrections, labels, review queue ---------------------------------------------


def test_correction_is_upserted_with_the_prediction_copied(store: Store, conversation: int) -> None:
    message_id = message(store, conversation, sentiment="negative", model_version="v7")
    first = store.record_correction(message_id, agent="A1", correct_intent="card_lost")
    store.db["corrections"].update(first, {"status": "used"})
    second = store.record_correction(
        message_id, agent="A2", correct_intent=NEW_TOPIC, correct_sentiment="neutral", note="asks about fees"
    )
    assert second == first
    [row] = list(store.db["corrections"].rows)
    assert row["predicted_intent"] == "card_arrival"
    assert row["predicted_sentiment"] == "negative"
    assert row["model_version"] == "v7"
    assert (row["agent"], row["correct_intent"], row["correct_sentiment"]) == ("A2", NEW_TOPIC, "neutral")
    assert row["status"] == "open", "a resubmitted correction is new training data"
    # A field left out keeps what the earlier submission said; every submission stays in the history.
    store.record_correction(message_id, agent="A3", correct_intent=None, correct_sentiment="negative")
    [row] = list(store.db["corrections"].rows)
    assert (row["agent"], row["correct_intent"], row["correct_sentiment"], row["note"]) == (
        "A2", NEW_TOPIC, "negative", "asks about fees")  # the intent is still A2's verdict: a sentiment takes no credit
    history = list(store.db.query("SELECT agent, correct_intent, correct_sentiment, note FROM correction_history "
                                  "WHERE message_id = ? ORDER BY id", [message_id]))
    assert [tuple(h.values()) for h in history] == [
        ("A1", "card_lost", None, None), ("A2", NEW_TOPIC, "neutral", "asks about fees"),
        ("A3", None, "negative", None)]
    with pytest.raises(ValueError, match="no message with id 999"):
        store.record_correction(999, agent="A1", correct_intent="card_lost")


def test_review_queue(store: Store, conversation: int) -> None:
    downvoted = message(store, conversation, "thumbs down")
    handed_off = message(store, conversation, "needs a human", decision="handoff")
    escalated = message(store, conversation, "angry", decision="escalate")
    liked = message(store, conversation, "thumbs up")
    changed_mind = message(store, conversation, "down then up")
    message(store, conversation, "clarified", decision="clarify")
    for message_id, votes in ((downvoted, [("U1", 1), ("U2", -1)]), (liked, [("U1", 1)])):
        reply_id = store.log_reply(message_id, text="an answer", kind="answer")
        for user, rating in votes:
            store.record_feedback(reply_id, user, rating, "button")
    reply_id = store.log_reply(changed_mind, text="an answer", kind="answer")
    store.record_feedback(reply_id, "U1", -1, "button")
    store.record_feedback(reply_id, "U1", 1, "button")
    store.record_correction(escalated, agent="A1", correct_intent="complaint")
    # Make the handoff the oldest, to show ordering is by time rather than id.
    store.db["messages"].update(handed_off, {"created_at": LONG_AGO})

    queue = store.review_queue()
    assert [row["id"] for row in queue] == [handed_off, downvoted]
    assert queue[1]["text"] == "thumbs down"
    assert queue[1]["downvotes"] == 1
    assert {"id", "text", "intent", "confidence", "decision", "created_at"} <= set(queue[0])
    assert [row["id"] for row in store.review_queue(limit=1)] == [handed_off]
    assert store.review_count() == 2  # the whole queue, whatever the page


def test_feedback_counts(store: Store, conversation: int) -> None:
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    old = message(store, conversation, decision="handoff")
    store.db["messages"].update(old, {"created_at": LONG_AGO})
    answered = message(store, conversation)
    message(store, conversation, decision="clarify")
    reply_id = store.log_reply(answered, text="an answer", kind="answer")
    store.record_feedback(reply_id, "U1", 1, "button")
    store.record_feedback(reply_id, "U2", -1, "reaction")
    store.record_feedback(reply_id, "U3", -1, "reaction")
    store.record_correction(answered, agent="A1", correct_intent="card_lost")
    store.record_label(answered, intent="card_arrival", source="clarify", user="U1")

    counts = store.feedback_counts(since)
    assert counts == {
        "up": 1,
        "down": 2,
        "corrections": 1,
        "messages": 2,
        "decisions": {"answer": 1, "clarify": 1, "handoff": 0, "escalate": 0, "prompt": 0},
    }
    assert store.feedback_counts(since.replace(tzinfo=None))["messages"] == 2, "naive means UTC"
    # The customer took an answered message to a person ("Talk to a human"): it ended handed over, as the review
    # queue counts it; stats said "answered 100% · handed over 0%".
    asked = message(store, conversation)
    store.log_reply(asked, text="an answer", kind="answer")
    store.log_reply(asked, text="passing you on", kind="handoff")
    assert store.feedback_counts(since)["decisions"] == {"answer": 1, "clarify": 1, "handoff": 1, "escalate": 0,
                                                         "prompt": 0}


# -- Slack event dedupe --------------------------------------------------------------


def test_claim_event_once(store: Store) -> None:
    assert store.claim_event("Ev1") is True
    assert store.claim_event("Ev1") is False
    assert store.claim_event("Ev2") is True

    store.db["slack_events"].update("Ev1", {"received_at": LONG_AGO})
    assert store.prune_events(timedelta(days=1)) == 1
    assert store.claim_event("Ev1") is True, "a pruned id can be claimed again"
    # "Answered once" claims outlive the day: an old clarify question's buttons must not answer twice.
    for key in ("clarify:7", "handoff:7"):
        assert store.claim_event(key) is True
        store.db["slack_events"].update(key, {"received_at": LONG_AGO})
    store.prune_events(timedelta(days=1))
    assert store.claim_event("clarify:7") is False and store.claim_event("handoff:7") is False


def test_claim_event_from_ten_threads(store: Store) -> None:
    results: list[bool] = []
    run_threads(10, lambda _: results.append(store.claim_event("EvSame")))
    assert sorted(results) == [False] * 9 + [True]


# -- retention and backup ------------------------------------------------------------


def test_purge_keeps_labelled_text_and_respects_the_cutoff(store: Store, conversation: int) -> None:
    plain, corrected, labelled, recent = (
        message(store, conversation, text) for text in ("plain", "corrected", "labelled", "recent")
    )
    store.record_correction(corrected, agent="A1", correct_intent="card_lost")
    store.record_label(labelled, intent="card_arrival", source="clarify", user="U1")
    old_reply = store.log_reply(plain, text="old answer", kind="answer")
    new_reply = store.log_reply(recent, text="new answer", kind="answer")
    for message_id in (plain, corrected, labelled):
        store.db["messages"].update(message_id, {"created_at": LONG_AGO})
    store.db["replies"].update(old_reply, {"created_at": LONG_AGO})

    assert store.purge(timedelta(days=90)) == {"messages": 1, "replies": 1, "kept": 2, "awaiting_review": 0,
                                               "rated_up": 0}
    texts = {row["id"]: row for row in store.db["messages"].rows}
    assert (texts[plain]["text"], texts[plain]["normalized_text"], texts[plain]["text_purged"]) == ("", "", 1)
    assert [texts[i]["text"] for i in (corrected, labelled, recent)] == ["corrected", "labelled", "recent"]
    assert store.get_reply(old_reply)["text"] == ""  # type: ignore[index]
    assert store.get_reply(new_reply)["text"] == "new answer"  # type: ignore[index]
    assert store.purge(timedelta(days=90)) == {"messages": 0, "replies": 0, "kept": 2, "awaiting_review": 0,
                                               "rated_up": 0}


def test_purge_keeps_messages_waiting_for_review_unless_told(store: Store, conversation: int) -> None:
    downvoted, handed_over, plain = (message(store, conversation, text) for text in ("bad answer", "human", "ok"))
    store.record_feedback(store.log_reply(downvoted, text="an answer", kind="answer"), "U1", -1, "button")
    store.log_reply(handed_over, text="passing you on", kind="handoff")
    for message_id in (downvoted, handed_over, plain):
        store.db["messages"].update(message_id, {"created_at": LONG_AGO})
    assert [row["id"] for row in store.review_queue()] == [downvoted, handed_over]

    assert store.purge(timedelta(days=90)) == {"messages": 1, "replies": 0, "kept": 0, "awaiting_review": 2,
                                               "rated_up": 0}
    assert [row["id"] for row in store.review_queue()] == [downvoted, handed_over]
    purged = store.purge(timedelta(days=90), include_unreviewed=True)
    assert (purged["messages"], purged["awaiting_review"]) == (2, 2)  # the CLI says both left the queue
    assert store.review_queue() == []


def test_purge_counts_only_what_it_did(store: Store, conversation: int) -> None:
    # A clarify pick (a label) and a 👎 later: in the queue but labelled, so kept; it was counted as "left the queue".
    picked = message(store, conversation, "where is it")
    store.record_label(picked, intent="card_arrival", source="clarify", user="U1")
    store.record_feedback(store.log_reply(picked, text="an answer", kind="answer"), "U1", -1, "button")
    # A 👍 answer: silver training data, which purging takes away; it used to go without a word.
    liked = message(store, conversation, "my card came, thanks")
    store.record_feedback(store.log_reply(liked, text="great", kind="answer"), "U1", 1, "button")
    for message_id in (picked, liked):
        store.db["messages"].update(message_id, {"created_at": LONG_AGO})
    assert store.review_count() == 1
    purged = store.purge(timedelta(days=90), include_unreviewed=True)
    assert (purged["messages"], purged["kept"], purged["awaiting_review"], purged["rated_up"]) == (1, 1, 0, 1)
    assert store.review_count() == 1  # the labelled one is still there, with its text


def test_purge_in_batches_sums_the_counts_of_every_batch(store: Store, conversation: int) -> None:
    # One transaction held the write lock for the whole purge: on a big database the bot's writes failed "busy".
    # Batches of a few ids, with kept, waiting and 👍 messages spread across them, must add up to the same counts.
    plain, labelled, waiting, liked = [], [], [], []
    for i in range(25):
        kind = ("plain", "plain", "labelled", "waiting", "liked")[i % 5]
        message_id = message(store, conversation, f"{kind} {i}")
        if kind == "labelled":
            store.record_correction(message_id, agent="A1", correct_intent="card_lost")
        elif kind == "waiting":
            store.log_reply(message_id, text="passing you on", kind="handoff")
        elif kind == "liked":
            store.record_feedback(store.log_reply(message_id, text="an answer", kind="answer"), "U1", 1, "button")
        {"plain": plain, "labelled": labelled, "waiting": waiting, "liked": liked}[kind].append(message_id)
    recent = message(store, conversation, "recent")
    store.db.execute("UPDATE messages SET created_at = ? WHERE id != ?", [LONG_AGO, recent])
    store.db.execute("UPDATE replies SET created_at = ?", [LONG_AGO])
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)  # SQLite's own record of what ran, not a mock
    assert store.purge(timedelta(days=90), batch_size=3) == {  # replies: the 👍 ones; the waiting ones stay
        "messages": 15, "replies": 5, "kept": 5, "awaiting_review": 5, "rated_up": 5}
    store.db.conn.set_trace_callback(None)
    assert statements.count("BEGIN IMMEDIATE") >= 15 // 3 + 10 // 3  # the lock is let go between batches
    texts = {row["id"]: row["text"] for row in store.db["messages"].rows}
    assert all(texts[i] == "" for i in plain + liked) and texts[recent] == "recent"
    assert all(texts[i] for i in labelled + waiting)
    assert store.purge(timedelta(days=90), include_unreviewed=True, batch_size=2) == {
        "messages": 5, "replies": 5, "kept": 5, "awaiting_review": 5, "rated_up": 0}
    texts = {row["id"]: row["text"] for row in store.db["messages"].rows}
    assert all(texts[i] == "" for i in waiting) and all(texts[i] for i in labelled) and store.review_queue() == []


def test_purge_keeps_the_replies_of_the_messages_it_keeps(store: Store, conversation: int) -> None:
    # The kept messages kept their text but every reply was blanked: a reviewer judging a 👎 could not see the
    # answer that got it. A kept message keeps its whole exchange; a purged one loses its replies with it.
    downvoted, labelled, plain = (message(store, conversation, text) for text in ("bad answer", "labelled", "ok"))
    judged = store.log_reply(downvoted, text="the answer under review", kind="answer")
    store.record_feedback(judged, "U1", -1, "button")
    store.record_label(labelled, intent="card_arrival", source="clarify", user="U1")
    training = store.log_reply(labelled, text="the labelled one's answer", kind="answer")
    gone = store.log_reply(plain, text="a plain answer", kind="answer")
    store.db.execute("UPDATE messages SET created_at = ?", [LONG_AGO])
    store.db.execute("UPDATE replies SET created_at = ?", [LONG_AGO])

    assert store.purge(timedelta(days=90), batch_size=1) == {"messages": 1, "replies": 1, "kept": 1,
                                                              "awaiting_review": 1, "rated_up": 0}
    replies = {reply: store.get_reply(reply)["text"] for reply in (judged, training, gone)}  # type: ignore[index]
    assert replies == {judged: "the answer under review", training: "the labelled one's answer", gone: ""}
    # Purged out of the queue on purpose: then its reply goes too, the labelled one's stays.
    assert store.purge(timedelta(days=90), include_unreviewed=True)["replies"] == 1
    assert store.get_reply(judged)["text"] == "" and store.get_reply(training)["text"]  # type: ignore[index]


def test_purged_text_is_not_left_in_the_database_files(store: Store, conversation: int, tmp_path: Path) -> None:
    # SQLite leaves freed cells in the file unless secure_delete is on (off in builds without
    # SQLITE_SECURE_DELETE), and the WAL keeps the old pages until a checkpoint: "purged" text stayed readable.
    secret = "CARD-4111111111111111"
    for i in range(40):
        old = message(store, conversation, f"{secret} message {i} " + "x" * (3000 if i % 10 == 0 else 20))
        store.log_reply(old, text=f"{secret} reply {i}", kind="answer")
    store.db.execute("UPDATE messages SET created_at = ?", [LONG_AGO])
    store.db.execute("UPDATE replies SET created_at = ?", [LONG_AGO])
    assert store.db.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert store.purge(timedelta(days=90))["messages"] == 40
    for name in ("csbot.db", "csbot.db-wal"):
        path = tmp_path / name
        assert not path.exists() or secret.encode() not in path.read_bytes(), name


def test_parse_age() -> None:
    assert parse_age("90d") == timedelta(days=90)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age(" 2W ") == timedelta(weeks=2)


def test_parse_age_rejects_more_than_a_century() -> None:
    with pytest.raises(ValueError, match="at most 100 years"):
        parse_age("1000000d")
    with pytest.raises(ValueError, match="at most 100 years"):
        parse_age("99999999999999999999h")


@pytest.mark.parametrize("text", ["", "90", "d", "90m", "-1d", "1.5d", "90 days"])
def test_parse_age_rejects_bad_input(text: str) -> None:
    with pytest.raises(ValueError, match="expected a number followed by d, h or w, e.g. 90d"):
        parse_age(text)


def test_parse_age_rejects_zero() -> None:
    with pytest.raises(ValueError, match="greater than zero"):
        parse_age("0d")


def test_backup_while_a_writer_is_running(store: Store, conversation: int, tmp_path: Path) -> None:
    for i in range(50):
        store.log_reply(message(store, conversation, f"message {i}"), text="an answer", kind="answer")
    stop = threading.Event()
    events_written = threading.Event()

    def write_events() -> None:
        i = 0
        while not stop.is_set():
            store.claim_event(f"Ev{i}")
            i += 1
            if i == 20:
                events_written.set()

    writer = threading.Thread(target=write_events)
    writer.start()
    try:
        assert events_written.wait(timeout=10)
        dest = store.backup(tmp_path / "backups" / "copy.db")
    finally:
        stop.set()
        writer.join(timeout=10)

    copy = sqlite_utils.Database(dest)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for table in ("conversations", "messages", "replies", "migrations"):
        assert copy[table].count == count(store, table)
    assert 20 <= copy["slack_events"].count <= count(store, "slack_events")
    copy.close()

    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        store.backup(dest)
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    with pytest.raises(StoreError, match="Cannot create the folder for the backup") as caught:
        store.backup(blocked / "copy.db")
    assert "folder you can write to" in caught.value.fix


def test_unusable_data_folder_or_database_file_is_a_clear_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(StoreError, match="Cannot create the data folder") as caught:
        Store(not_a_folder / "sub" / "csbot.db")
    assert "CSBOT_DATA_DIR" in caught.value.fix
    garbage = tmp_path / "csbot.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot be opened as a csbot database") as caught:
        Store(garbage)
    assert "csbot db backup" in caught.value.fix
    assert garbage.read_bytes().startswith(b"this is not")  # never overwritten: nothing is lost


def test_a_busy_database_is_not_called_corrupt(tmp_path: Path) -> None:
    """A writer holding the lock (a long purge, another process) must not get "move the file away" advice."""
    path = tmp_path / "csbot.db"
    Store(path, migrations=MIGRATIONS[:-1]).close()  # an older schema: opening must migrate, under the lock
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="is busy") as caught:
            Store(path, busy_timeout_ms=200)
        assert "try again" in caught.value.fix and "creates a new one" not in caught.value.fix
    finally:
        holder.rollback()
    Store(path).close()  # once the lock is gone it opens (and migrates) as before
    # A current database opens without taking the write lock (reads never wait); its first write says busy.
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, busy_timeout_ms=200) as store:
            assert store.schema_version == len(MIGRATIONS)
            with pytest.raises(StoreError, match="is busy"):
                store.kv_set("k", "v")
    finally:
        holder.rollback()
        holder.close()


def test_errors_without_a_result_code_are_read_from_sqlites_text(tmp_path: Path) -> None:
    """Python 3.10 has no ``sqlite_errorname``: an error then carries only SQLite's message."""
    from bot.store_core import open_error

    path = tmp_path / "csbot.db"
    cases = {"database is locked": "is busy", "database or disk is full": "is full",
             "attempt to write a readonly database": "cannot be opened for writing",
             "file is not a database": "cannot be opened as a csbot database"}
    for text, said in cases.items():
        error = sqlite3.OperationalError(text)
        assert not getattr(error, "sqlite_errorname", None)
        assert said in str(open_error(path, error, 1000)), text


def test_stats_top_intents_count_what_was_asked_not_the_guess(store: Store, conversation: int) -> None:
    from bot import stats

    picked = message(store, conversation, "delivery")  # the model guessed card_arrival (the helper's default)
    store.record_label(picked, intent="track_order", source="clarify", user="U1")  # the customer picked
    corrected = message(store, conversation, "my card is gone")
    store.record_correction(corrected, agent="A1", correct_intent="card_lost")
    new_topic = message(store, conversation, "do you sell gift wrap")
    store.record_correction(new_topic, agent="A1", correct_intent=NEW_TOPIC)  # no intent covers it: not counted
    guessed = message(store, conversation, "where is my card")
    assert store.get_message(guessed)["intent"] == "card_arrival"  # type: ignore[index]
    assert sorted(stats.compute(store, 7).top_intents) == [("card_arrival", 1), ("card_lost", 1), ("track_order", 1)]
