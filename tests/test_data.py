"""Dataset loaders and the checks that refuse untrainable data with a clear message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from models.errors import CsbotError, DataError
from training.data import (
    Columns,
    Example,
    check_trainable,
    few_shot,
    knowledge_base_examples,
    load_examples,
    manifest,
    run_columns,
    split_validation,
)

SHARED_DATA = Path(os.environ.get("CSBOT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def data_error(path: Path, columns: Columns | None = None) -> str:
    with pytest.raises(DataError) as info:
        load_examples(path, columns)
    assert isinstance(info.value, CsbotError) and info.value.fix
    return str(info.value)


def test_csv_with_intent_and_sentiment(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", 'text,intent,sentiment\n"where, oh where is my order",track_order,neg\n'
                                    "refund please,refund,\nlove it,,positive\n,refund,\nno label,,\n")
    examples = load_examples(path)
    assert examples == [Example("where, oh where is my order", "track_order", "negative", source="d.csv"),
                        Example("refund please", "refund", None, source="d.csv"),
                        Example("love it", None, "positive", source="d.csv")]


def test_rows_without_text_or_label_are_counted_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, "d.csv", "text,intent\nwhere,track_order\n,refund\nno label,\nmoney,refund\n")
    assert [e.text for e in load_examples(path)] == ["where", "money"]
    assert f"{path}: skipped 2 row(s) with no text or no label (lines 3, 4)." in caplog.text


def test_a_stray_quote_or_extra_cells_are_errors_not_lost_or_shifted_rows(tmp_path: Path) -> None:
    # An unclosed quote on line 5 ran every later line into one cell: 7 of 10 rows were lost without a word.
    rows = [f"message {i},intent_{i % 2}" for i in range(10)]
    rows[3] = '"oops stray quote,intent_0'
    message = data_error(write(tmp_path, "stray.csv", "text,intent\n" + "\n".join(rows) + "\n"))
    assert "stray.csv:5 cannot be read as CSV (unexpected end of data)" in message
    assert "an unclosed one runs on to the end of the file" in message
    closed = rows[:3] + ['"oops stray quote,intent_0', 'message 5,intent_1"', *rows[5:]]
    message = data_error(write(tmp_path, "closed.csv", "text,intent\n" + "\n".join(closed) + "\n"))
    assert "closed.csv:5 has 1 cell(s) where the header has 2 (CSV)" in message and "unclosed quote" in message
    assert "cannot be read as TSV" in data_error(write(tmp_path, "q.tsv", 'text\tintent\n"a" b\tx\nc\ty\n'))
    message = data_error(write(tmp_path, "twice.csv", "text,intent,text\nwhere,track_order,hello\n"))
    assert "twice.csv: the header names text twice." in message
    trailing = write(tmp_path, "trailing.csv", "text,intent,,\nwhere,track_order,,\n")  # unnamed columns may repeat
    assert load_examples(trailing) == [Example("where", "track_order", source="trailing.csv")]
    # "hello, there" unquoted: the text became "hello" and the intent "there".
    message = data_error(write(tmp_path, "ragged.csv", "text,intent\nwhere,track_order\nhello, there,greet\n"))
    assert "ragged.csv:3 has 3 cell(s) where the header has 2 (CSV)" in message
    assert 'Quote a cell that holds the delimiter ("a, b")' in message


def test_jsonl_values_and_line_separators(tmp_path: Path) -> None:
    # json.dumps(ensure_ascii=False) writes U+2028 raw; splitlines() broke the line there.
    jsonl = write(tmp_path, "d.jsonl", '{"text": "one\u2028two", "label": 3}\n{"text": "three", "label": 4}\n')
    assert [(e.text, e.intent) for e in load_examples(jsonl)] == [("one\u2028two", "3"), ("three", "4")]
    for value, kind in (('["a", "b"]', "list"), ("true", "bool"), ("1.5", "float")):
        bad = write(tmp_path, "bad.jsonl", '{"text": "fine", "intent": "x"}\n{"text": ' + value + ', "intent": "y"}\n')
        message = data_error(bad)
        assert f'bad.jsonl:2: "text" is a {kind} ({value}), not text.' in message and "JSON strings" in message


def test_a_header_with_spaces_and_a_folder_as_the_path(tmp_path: Path) -> None:
    spaced = write(tmp_path, "s.csv", "text, intent\nwhere is it,track_order\n")
    assert load_examples(spaced) == [Example("where is it", "track_order", source="s.csv")]
    (tmp_path / "folder.csv").mkdir()
    message = data_error(tmp_path / "folder.csv")
    assert "folder.csv is a folder, not a file" in message and "give the file inside it" in message
    assert f"e.g. {tmp_path / 'folder.csv'}/train.csv" in message  # the fix names the path, not "{path}"


def test_numeric_sentiment_codes_are_read_once_for_all_the_files_of_a_run(tmp_path: Path) -> None:
    train = write(tmp_path, "train.csv", "text,label\nawful,0\nfine I guess,1\nlovely,2\n")
    test = write(tmp_path, "test.csv", "text,label\nterrible,0\nit is ok,1\n")  # no 2s in this sample
    assert [e.sentiment for e in load_examples(test)] == ["negative", "positive"]  # alone: SST-2's 0/1
    columns = run_columns([train, test], Columns())
    assert columns.sentiment_codes == "ternary"
    assert [e.sentiment for e in load_examples(test, columns)] == ["negative", "neutral"]
    assert [e.sentiment for e in load_examples(train, columns)] == ["negative", "neutral", "positive"]
    sst = write(tmp_path, "sst.tsv", "sentence\tlabel\nbad\t0\ngood\t1\n")
    assert run_columns([sst, tmp_path / "missing.csv"], Columns()) == Columns()  # 0/1 everywhere: SST-2 style


def test_tsv_and_jsonl_and_named_columns(tmp_path: Path) -> None:
    tsv = write(tmp_path, "d.tsv", "utterance\tcategory\nwhere is it\ttrack_order\n")
    assert load_examples(tsv) == [Example("where is it", "track_order", source="d.tsv")]
    jsonl = write(tmp_path, "d.jsonl", '{"msg": "hi", "topic": "greeting"}\n\n{"msg": "bye", "topic": "goodbye"}\n')
    examples = load_examples(jsonl, Columns(text="msg", intent="topic"))
    assert [(e.text, e.intent) for e in examples] == [("hi", "greeting"), ("bye", "goodbye")]


def test_generic_label_column_is_decided_by_its_values(tmp_path: Path) -> None:
    sst = write(tmp_path, "s.tsv", "label\tsentence\n0\tawful film\n1\tgreat film\n")
    assert [(e.text, e.sentiment, e.intent) for e in load_examples(sst)] == [
        ("awful film", "negative", None), ("great film", "positive", None)]
    ternary = write(tmp_path, "t.csv", "text,label\nmeh,1\nbad,0\ngood,2\n")
    assert [e.sentiment for e in load_examples(ternary)] == ["neutral", "negative", "positive"]
    intents = write(tmp_path, "i.csv", "text,label\nwhere,track_order\nmoney,refund\n")
    assert [e.intent for e in load_examples(intents)] == ["track_order", "refund"]


def test_short_rows_and_an_oversized_cell(tmp_path: Path) -> None:
    # A spreadsheet export often drops a row's empty trailing cells; csv then gives None for them.
    short = write(tmp_path, "short.csv", "text,sentiment\nI love it,positive\nhello\n")
    assert load_examples(short) == [Example("I love it", None, "positive", source="short.csv")]
    label = write(tmp_path, "label.csv", "text,label\nwhere,track_order\nhello\n")
    assert [e.intent for e in load_examples(label)] == ["track_order"]
    huge = write(tmp_path, "huge.csv", "text,intent\nwhere,track_order\n" + "x" * 140_000 + ",refund\n")
    message = data_error(huge)
    assert "huge.csv:3 cannot be read as CSV (field larger than field limit" in message
    assert "fix or remove that line" in message


def test_knowledge_base_yaml_loads_training_split(tiny_kb_path: Path) -> None:
    examples = load_examples(tiny_kb_path)
    assert {e.intent for e in examples if e.intent} == {"track_order", "refund", "reset_password"}
    assert {e.sentiment for e in examples if e.sentiment} == {"negative", "neutral", "positive"}
    assert all(e.source == "knowledge_base" for e in examples)
    from bot.knowledge import load_knowledge_base

    kb = load_knowledge_base(tiny_kb_path)
    held_out = knowledge_base_examples(kb, "test")
    assert held_out and {e.text for e in held_out}.isdisjoint({e.text for e in examples})
    assert len(held_out) + len(examples) == len(knowledge_base_examples(kb, "all"))


def test_spreadsheet_bom_and_non_utf8(tmp_path: Path) -> None:
    bom = tmp_path / "excel.csv"
    bom.write_bytes("text,intent\nwhere is it,track_order\n".encode("utf-8-sig"))
    assert load_examples(bom) == [Example("where is it", "track_order", source="excel.csv")]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,intent\ncaf\xe9 order,track_order\n".encode("latin-1"))
    message = data_error(latin)
    assert "is not UTF-8 text (invalid continuation byte on line 2, byte 15)" in message
    assert "save the file as UTF-8" in message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_table_is_named_not_read_as_spaced_letters(tmp_path: Path, encoding: str) -> None:
    # Without a BOM, UTF-16 decodes as UTF-8 with a NUL after every letter: the header became "t e x t".
    path = tmp_path / "unicode.tsv"
    path.write_bytes("text\tintent\nwhere is it\ttrack_order\n".encode(encoding))
    message = data_error(path)
    assert "is UTF-16 text, not UTF-8" in message
    assert f"iconv -f UTF-16 -t UTF-8 {path}" in message


def test_nul_byte_in_a_table_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "where is it", "intent": "track_order"}\n{"text": "a\x00b", "intent": "refund"}\n')
    message = data_error(path)
    assert "holds a NUL byte (line 2)" in message
    assert "remove the NUL characters" in message


def test_unknown_label_column(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "text,category\nwhere is it,track_order\n")
    message = data_error(path, Columns(intent="nope"))
    assert "Column 'nope' (the intent column) is not in" in message
    assert "its columns are: text, category" in message
    assert "Fix: pass --intent-column with one of those names." in message


def test_no_text_or_label_column(tmp_path: Path) -> None:
    assert "has no text column" in data_error(write(tmp_path, "a.csv", "words,intent\nhi,greeting\n"))
    assert "has no label column" in data_error(write(tmp_path, "b.csv", "text,colour\nhi,blue\n"))


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    message = data_error(write(tmp_path, "empty.csv", ""))
    assert "is empty" in message and "Fix:" in message


def test_header_only_dataset_is_refused_before_training(tmp_path: Path) -> None:
    examples = load_examples(write(tmp_path, "header.csv", "text,intent\n"))
    assert examples == []
    with pytest.raises(DataError, match="The dataset is empty: no rows with text and a label") as info:
        check_trainable(examples)
    assert "check the file and its columns" in info.value.fix


def test_intent_with_a_single_example() -> None:
    examples = [Example(f"where {i}", "track_order") for i in range(3)] + [Example("money back", "refund")]
    with pytest.raises(DataError) as info:
        check_trainable(examples)
    assert "1 intent(s) have fewer than 2 examples: 'refund' (1)" in info.value.what
    assert "give every intent at least 2 examples" in info.value.fix


def test_one_intent_or_no_intents() -> None:
    with pytest.raises(DataError, match="one intent"):
        check_trainable([Example("a", "x"), Example("b", "x")])
    with pytest.raises(DataError, match="no intent labels"):
        check_trainable([Example("a", sentiment="positive")])


def test_unknown_file_type_missing_file_bad_json_bad_sentiment(tmp_path: Path) -> None:
    assert "Don't know how to read d.xlsx" in data_error(write(tmp_path, "d.xlsx", "x"))
    assert "does not exist" in data_error(tmp_path / "missing.csv")
    assert "d.jsonl:2 is not valid JSON" in data_error(write(tmp_path, "d.jsonl", '{"text": "a"}\n{oops\n'))
    assert "s.csv: unknown sentiment label(s) 'cross', 'furious'." in data_error(
        write(tmp_path, "s.csv", "text,sentiment\nugh,furious\nhm,positive\ngrr,cross\n"))


def test_split_dedup_few_shot_and_manifest() -> None:
    examples = [Example(f"track {i}", "track_order") for i in range(10)] + \
        [Example(f"refund {i}", "refund") for i in range(10)] + [Example("ok", sentiment="neutral")] * 2
    train, val = split_validation(examples, 0.2, seed=1)
    assert len(train) + len(val) == len(examples)
    assert sorted(e.intent for e in val if e.intent) == ["refund"] * 2 + ["track_order"] * 2
    assert split_validation(examples, 0.2, seed=1) == (train, val)  # seeded
    # Agents' corrections always train: the gate checks the candidate learned every one of them.
    fixes = [Example(f"refund please {i}", "refund", weight=2.0, source="correction") for i in range(5)]
    train2, val2 = split_validation([*examples, *fixes], 0.2, seed=1)
    assert all(f in train2 for f in fixes) and not [e for e in val2 if e.source == "correction"]
    assert len(train2) + len(val2) == len(examples) + len(fixes)
    assert sorted(e.intent for e in few_shot(examples, 3, seed=0)) == ["refund"] * 3 + ["track_order"] * 3
    info = manifest(examples)
    assert info["examples"] == 22 and info["per_intent"] == {"refund": 10, "track_order": 10}
    assert info["hash"] == manifest(list(reversed(examples)))["hash"]


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "banking77" / "train.csv").is_file(), reason="../shared/data is missing")
def test_banking77_and_sst2_load() -> None:
    banking = load_examples(SHARED_DATA / "banking77" / "train.csv", Columns(intent="category"))
    assert len(banking) == 10003
    assert len({e.intent for e in banking}) == 77
    sst = load_examples(SHARED_DATA / "sst2" / "dev.tsv")
    assert {e.sentiment for e in sst} == {"negative", "positive"}
    assert all(e.intent is None for e in sst)
