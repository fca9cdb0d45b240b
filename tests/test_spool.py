"""The spool of writes the database refused: kept in order, replayed in order, never dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.spool import Spool, UnknownEntry


def test_kept_writes_are_replayed_in_order_and_the_file_goes(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool" / "writes.jsonl")
    assert not spool.has_entries() and spool.replay(lambda kind, entry: None) == 0
    spool.add("vote", reply_id=1, user="U1", rating=1)
    spool.add("vote", reply_id=1, user="U1", rating=-1)
    assert spool.pending() == 2
    seen: list[tuple[str, dict[str, Any]]] = []
    assert spool.replay(lambda kind, entry: seen.append((kind, entry))) == 2
    assert [(k, e["rating"]) for k, e in seen] == [("vote", 1), ("vote", -1)]
    assert seen[0][1]["at"] <= seen[1][1]["at"]  # each entry says when it was kept
    assert not spool.has_entries()


def test_an_entry_with_a_unicode_line_separator_stays_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("correction", note="first line\u2028second\x85third")  # written raw (ensure_ascii=False)
    seen: list[dict[str, Any]] = []
    assert spool.pending() == 1 and spool.replay(lambda kind, entry: seen.append(entry)) == 1
    assert seen[0]["note"] == "first line\u2028second\x85third"
    assert not spool.rejected_path.exists()


def test_an_entry_for_a_row_the_database_lacks_is_set_aside_and_the_rest_go_on(tmp_path: Path) -> None:
    # The database was replaced or restored from a backup while a vote waited: its reply is gone. The foreign key
    # fails the same way on every try, and it used to hold back every vote kept after it, for good.
    import sqlite3

    db = sqlite3.connect(tmp_path / "c.db")
    db.executescript("PRAGMA foreign_keys = ON; CREATE TABLE replies (id INTEGER PRIMARY KEY);"
                     "CREATE TABLE feedback (reply_id INTEGER REFERENCES replies(id), rating INTEGER);"
                     "INSERT INTO replies VALUES (1);")
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("vote", reply_id=7, rating=1)
    spool.add("vote", reply_id=1, rating=-1)

    def apply(kind: str, entry: dict[str, Any]) -> None:
        with db:
            db.execute("INSERT INTO feedback VALUES (?, ?)", [entry["reply_id"], entry["rating"]])
    assert spool.replay(apply) == 1 and not spool.has_entries()
    assert db.execute("SELECT reply_id, rating FROM feedback").fetchall() == [(1, -1)]
    set_aside = [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]
    assert len(set_aside) == 1 and '"reply_id": 7' in set_aside[0]["line"] and "FOREIGN KEY" in set_aside[0]["error"]


def test_a_write_that_still_fails_keeps_it_and_everything_after_it(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "writes.jsonl")
    for n in range(3):
        spool.add("vote", n=n)
    stored: list[int] = []

    def flaky(kind: str, entry: dict[str, Any]) -> None:
        if entry["n"] == 1:
            raise OSError("database is locked")  # anything but a bad entry: the database is still unwell
        stored.append(entry["n"])

    assert spool.replay(flaky) == 1 and stored == [0]
    assert spool.pending() == 2  # 1 and 2 wait, in order, so one person's later vote stays later
    assert spool.replay(lambda kind, entry: stored.append(entry["n"])) == 2 and stored == [0, 1, 2]


def test_an_entry_nobody_can_apply_is_set_aside_not_dropped(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("vote", n=0)
    with spool.path.open("a") as out:
        out.write("{not json\n")
    spool.add("mystery", n=2)
    stored: list[int] = []

    def apply(kind: str, entry: dict[str, Any]) -> None:
        if kind != "vote":
            raise UnknownEntry(f"unknown kind {kind!r}")
        stored.append(entry["n"])

    assert spool.replay(apply) == 1 and stored == [0] and not spool.has_entries()
    rejected = [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]
    assert [r["line"] for r in rejected][0] == "{not json"
    assert json.loads(rejected[1]["line"])["kind"] == "mystery" and "unknown kind" in rejected[1]["error"]


def test_a_spool_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    spool = Spool(tmp_path / "file" / "writes.jsonl")  # its folder is a file
    with pytest.raises(OSError):
        spool.add("vote", n=0)


def test_writes_kept_while_a_replay_runs_wait_for_the_next_one(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("vote", n=0)
    spool.add("vote", n=1)
    stored: list[int] = []

    def apply(kind: str, entry: dict[str, Any]) -> None:
        if entry["n"] == 0:
            spool.add("vote", n=2)  # a handler keeping a write meanwhile: not blocked by the replay's writes
            assert spool.replay(lambda k, e: None) == 0  # and a second replay does not run beside this one
        stored.append(entry["n"])

    assert spool.replay(apply) == 2 and stored == [0, 1]
    assert spool.pending() == 1
    assert spool.replay(apply) == 1 and stored == [0, 1, 2] and not spool.has_entries()


def test_a_torn_last_line_does_not_swallow_the_next_write(tmp_path: Path) -> None:
    # A crash before an append's fsync leaves a line without its newline; the next vote was glued onto it
    # and set aside with it, instead of being applied.
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("vote", reply_id=1, rating=1)
    spool.path.write_bytes(spool.path.read_bytes()[:-10])  # torn: no closing brace, no newline
    spool.add("vote", reply_id=2, rating=-1)
    assert spool.pending() == 2
    stored: list[int] = []
    assert spool.replay(lambda kind, entry: stored.append(entry["reply_id"])) == 1 and stored == [2]
    rejected = [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]
    assert len(rejected) == 1 and '"reply_id": 1' in rejected[0]["line"] and '"reply_id": 2' not in rejected[0]["line"]
    assert not spool.has_entries()


def test_a_tail_cut_inside_a_character_is_set_aside_and_the_whole_entries_are_stored(tmp_path: Path) -> None:
    # The whole file was decoded at once: a tail cut inside "å" raised UnicodeDecodeError in every replay
    # (nothing before it was ever stored) and in pending(), so `csbot status` printed a traceback.
    spool = Spool(tmp_path / "spool" / "writes.jsonl")
    spool.add("vote", reply_id=1, rating=1)
    spool.add("vote", reply_id=2, rating=-1)
    spool.add("message", event_id="E1", text="Hvor er pakken min? å")
    raw = spool.path.read_bytes()
    spool.path.write_bytes(raw[: raw.rindex("å".encode()) + 1])  # only the first byte of "å" reached the disk
    assert spool.pending() == 3
    stored: list[tuple[str, Any]] = []
    assert spool.replay(lambda kind, entry: stored.append((kind, entry.get("reply_id")))) == 2
    assert stored == [("vote", 1), ("vote", 2)] and not spool.has_entries() and spool.pending() == 0
    rejected = [json.loads(line) for line in spool.rejected_path.read_text().splitlines()]
    assert len(rejected) == 1 and "Hvor er pakken min?" in rejected[0]["line"]
    assert "UnicodeDecodeError" in rejected[0]["error"]


def test_a_write_kept_during_a_replay_after_a_torn_line_is_not_lost(tmp_path: Path) -> None:
    # The rewrite counted lines: with the new vote glued onto the torn one, "the lines after those read"
    # were none, and the vote was neither applied nor set aside. Byte offsets keep it.
    spool = Spool(tmp_path / "writes.jsonl")
    spool.add("vote", reply_id=1, rating=1)
    spool.add("vote", reply_id=2, rating=1)
    spool.path.write_bytes(spool.path.read_bytes()[:-12])  # the second append was torn

    def apply(kind: str, entry: dict[str, Any]) -> None:
        if entry["reply_id"] == 1:
            spool.add("vote", reply_id=3, rating=-1)  # a handler keeps a vote while the replay runs
    assert spool.replay(apply) == 1
    assert spool.pending() == 1
    stored: list[int] = []
    assert spool.replay(lambda kind, entry: stored.append(entry["reply_id"])) == 1 and stored == [3]
    rejected = spool.rejected_path.read_text()
    assert '\\"reply_id\\": 2' in rejected and '\\"reply_id\\": 3' not in rejected
