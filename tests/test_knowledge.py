"""Knowledge-base loading and validation: every error names the file and line, and the default KB
meets the content rules of issue 3."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from bot import messages
from bot.knowledge import MIN_EXAMPLES, KnowledgeBase, load_knowledge_base
from models.errors import CsbotError, KnowledgeBaseError


def examples_block(prefix: str, count: int = MIN_EXAMPLES, indent: int = 6) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}- {prefix} question number {i}" for i in range(count))


def kb_text(*intents: str, extra_top: str = "") -> str:
    return "company:\n  name: Test Shop\nintents:\n" + "".join(intents) + extra_top


def intent(name: str, *, examples: str | None = None, answer: str | None = "Here is the answer.",
           extra: str = "") -> str:
    body = f"  - name: {name}\n    description: About {name}\n"
    body += "    examples:\n" + (examples if examples is not None else examples_block(name)) + "\n"
    if answer is not None:
        body += f"    answer: {answer}\n"
    return body + extra


def write(tmp_path: Path, text: str, name: str = "kb.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(KnowledgeBaseError) as info:
        load_knowledge_base(path)
    assert isinstance(info.value, CsbotError)
    assert "csbot kb check" in str(info.value)  # the fix
    return info.value.problems


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return lines[occurrence - 1]


def test_valid_kb_loads(tmp_path: Path) -> None:
    path = write(tmp_path, kb_text(intent("track_order"), intent("refund", extra="    handoff: true\n")))
    kb = load_knowledge_base(path)
    assert isinstance(kb, KnowledgeBase)
    assert list(kb.intents) == ["track_order", "refund"]
    assert kb.intents["refund"].handoff and not kb.intents["track_order"].handoff
    assert len(kb.intents["refund"].examples) == MIN_EXAMPLES
    assert kb.company.name == "Test Shop"
    held_out = kb.examples("test")
    assert held_out and len(held_out) < len(kb.examples("train"))
    assert {e.text for e in held_out}.isdisjoint({e.text for e in kb.examples("train")})


def test_duplicate_intent_names_file_and_line(tmp_path: Path) -> None:
    text = kb_text(intent("refund"), intent("refund", examples=examples_block("other")))
    found = problems(write(tmp_path, text))
    assert f"kb.yaml:{line_of(text, '- name: refund', 2)}: intent 'refund' is defined twice" in found[0]
    assert "merge the two or rename one" in found[0]


def test_intent_with_no_examples(tmp_path: Path) -> None:
    text = kb_text(intent("track_order"), intent("refund", examples="      []"))
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert found[0].startswith(f"kb.yaml:{line_of(text, '[]')}: intent 'refund' has no examples")
    assert f"add at least {MIN_EXAMPLES}" in found[0]


def test_intent_with_no_answer(tmp_path: Path) -> None:
    text = kb_text(intent("track_order"), intent("refund", answer=None))
    found = problems(write(tmp_path, text))
    # The intent is named: in a 30-intent file, "an intent is missing 'answer'" sends the lead hunting.
    assert found == [f"kb.yaml:{line_of(text, '- name: refund')}: intent 'refund' is missing 'answer'; add it"]


def test_intent_with_empty_answer(tmp_path: Path) -> None:
    text = kb_text(intent("refund", answer='""'))
    found = problems(write(tmp_path, text))
    assert found == [f"kb.yaml:{line_of(text, 'answer:')}: intent 'refund' answer should be non-empty text"]


@pytest.mark.parametrize("null", ["null", "~", "Null"])
def test_a_yaml_null_is_no_text(tmp_path: Path, null: str) -> None:
    """`answer: null` is YAML for "nothing", not the answer "null" (quote it to mean the word)."""
    text = kb_text(intent("refund", answer=null))
    found = problems(write(tmp_path, text))
    assert found == [f"kb.yaml:{line_of(text, 'answer:')}: intent 'refund' answer should be non-empty text"]
    quoted = load_knowledge_base(write(tmp_path, kb_text(intent("refund", answer='"null"')), "quoted.yaml"))
    assert quoted.intents["refund"].answer == "null"


def test_a_key_that_is_a_list_is_named_as_such(tmp_path: Path) -> None:
    text = kb_text(intent("refund", extra="    ? [answer, examples]\n    : both\n"))
    found = problems(write(tmp_path, text))
    assert len(found) == 1 and "Node" not in found[0]
    line = line_of(text, "? [answer")
    assert found[0].startswith(f"kb.yaml:{line}: a key of intent 'refund' is a list or mapping, not a name; "
                               "use one of:")


def test_example_under_two_intents(tmp_path: Path) -> None:
    shared = "      - Where Is   my order\n"
    text = kb_text(intent("track_order", examples=examples_block("track") + "\n      - where is my order"),
                   intent("refund", examples=examples_block("refund") + "\n" + shared.rstrip("\n")))
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert found[0].startswith(f"kb.yaml:{line_of(text, 'Where Is   my order')}: example \"Where Is   my order\"")
    assert "intent 'track_order' and intent 'refund'" in found[0]
    assert "keep it under one intent only" in found[0]


def test_examples_that_differ_only_in_punctuation_conflict_across_intents_not_within_one(tmp_path: Path) -> None:
    # Training treats "Where is my order?" and "where is my order" as the same words (text_key): under two
    # intents they would teach both labels, and deduplication would quietly keep one.
    text = kb_text(intent("track_order", examples=examples_block("track") + "\n      - Where is my order?"
                          + "\n      - where is my order"),  # one intent: a harmless variant, not an error
                   intent("refund", examples=examples_block("refund") + "\n      - where is my order!"))
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert found[0].startswith(f"kb.yaml:{line_of(text, 'where is my order!')}: example \"where is my order!\"")
    assert "intent 'track_order' and intent 'refund'" in found[0]


def test_a_sentiment_example_under_two_sentiments(tmp_path: Path) -> None:
    sentiments = ("sentiment_examples:\n  negative: [this is not great, awful service]\n"
                  "  positive: [thanks a lot, This is not great!]\n")
    text = kb_text(intent("refund"), intent("track_order"), extra_top=sentiments)
    found = problems(write(tmp_path, text))
    assert found == [f"kb.yaml:{line_of(text, 'This is not great!')}: sentiment example \"This is not great!\" is "
                     "listed under negative and positive; keep it under one sentiment only"]


def test_unknown_keys_at_every_level(tmp_path: Path) -> None:
    text = kb_text(intent("refund", extra="    answr: typo\n"), extra_top="colour: blue\n")
    text = text.replace("  name: Test Shop\n", "  name: Test Shop\n  fax: 123\n")
    found = problems(write(tmp_path, text))
    joined = "\n".join(found)
    assert f"kb.yaml:{line_of(text, 'answr:')}: unknown key 'answr' in intent 'refund'" in joined
    assert f"kb.yaml:{line_of(text, 'colour:')}: unknown key 'colour' in the top level" in joined
    assert f"kb.yaml:{line_of(text, 'fax:')}: unknown key 'fax' in company" in joined
    assert "allowed keys: name, title, description, examples, answer" in joined
    assert len(found) == 3


def test_an_intent_without_a_usable_name_is_still_called_an_intent(tmp_path: Path) -> None:
    text = kb_text(intent("refund"), "  - description: nameless\n    answr: typo\n")
    found = problems(write(tmp_path, text))
    assert f"kb.yaml:{line_of(text, 'answr:')}: unknown key 'answr' in an intent" in "\n".join(found)


def test_problems_are_listed_in_file_order(tmp_path: Path) -> None:
    # The validator finds an intent's unknown key before its short example list; the lead reads top down.
    text = kb_text(intent("refund", examples=examples_block("refund", count=2), extra="    colour: red\n"),
                   intent("track_order", answer='""'))
    found = problems(write(tmp_path, text))
    lines = [int(problem.split(":")[1]) for problem in found]
    assert len(found) == 3
    assert lines == sorted(lines)


def test_bad_yaml_names_line_and_fix(tmp_path: Path) -> None:
    text = kb_text(intent("refund")) + "  - name: [unclosed\n    answer: x\n"
    found = problems(write(tmp_path, text))
    assert len(found) == 1
    assert re.match(r"kb\.yaml:\d+: bad YAML: ", found[0])
    line = int(found[0].split(":")[1])
    assert line_of(text, "[unclosed") <= line <= line_of(text, "[unclosed") + 1
    assert "check indentation" in found[0]


def test_absurdly_deep_nesting_is_bad_yaml_not_a_recursion_error(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "[" * 5000 + "]" * 5000 + "\n"))
    assert found == ["kb.yaml: bad YAML: nested hundreds of levels deep, which no knowledge base is (look for a run "
                     "of unclosed brackets)"]


def test_tab_indentation_is_bad_yaml(tmp_path: Path) -> None:
    text = "company:\n\tname: x\n"
    found = problems(write(tmp_path, text))
    assert found[0].startswith("kb.yaml:2: bad YAML")


def test_fewer_than_min_examples(tmp_path: Path) -> None:
    text = kb_text(intent("refund", examples=examples_block("refund", 3)))
    found = problems(write(tmp_path, text))
    assert found == [f"kb.yaml:{line_of(text, '    examples:') + 1}: intent 'refund' has 3 examples; "
                     f"add at least {MIN_EXAMPLES} varied phrasings"]


def test_unknown_follow_up(tmp_path: Path) -> None:
    text = kb_text(intent("refund", extra="    follow_ups:\n      - track_order\n      - refnd\n"),
                   intent("track_order", extra="    follow_ups: [refund]\n"))
    found = problems(write(tmp_path, text))
    assert found == [f"kb.yaml:{line_of(text, '- refnd')}: intent 'refund' follows up with unknown intent "
                     "'refnd'; use one of the intent names"]


def test_follow_ups_and_links_load(tmp_path: Path) -> None:
    links = "    links:\n      - title: Returns\n        url: https://example.com/returns\n"
    text = kb_text(intent("refund", extra="    follow_ups: [track_order]\n" + links), intent("track_order"))
    kb = load_knowledge_base(write(tmp_path, text))
    assert kb.intents["refund"].follow_ups == ("track_order",)
    assert kb.intents["refund"].links[0].url == "https://example.com/returns"
    assert kb.intents["track_order"].follow_ups == ()


def test_the_new_topic_marker_is_not_an_intent_name(tmp_path: Path) -> None:
    from bot.knowledge import _NAME, RESERVED_NAMES
    from bot.store_feedback import NEW_TOPIC_NAMES

    # Every new-topic word an intent name could be is reserved (the others are not snake_case anyway).
    assert {name for name in NEW_TOPIC_NAMES if _NAME.match(name)} <= RESERVED_NAMES
    text = kb_text(intent("new_topic"), intent("refund"))
    assert [p for p in problems(write(tmp_path, text)) if "reserved" in p] == [
        f"kb.yaml:{line_of(text, 'new_topic')}: " + messages.KB_INTENT_RESERVED.format(name="new_topic")]


def test_an_intent_name_too_long_for_slacks_menus(tmp_path: Path) -> None:
    long = "refund_" + "x" * 150
    text = kb_text(intent(long), intent("refund"))
    assert [p for p in problems(write(tmp_path, text)) if "characters" in p] == [
        f"kb.yaml:{line_of(text, long)}: " + messages.KB_INTENT_NAME_LONG.format(name=long[:40], length=157, most=100)]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = kb_text(intent("refund", answer=None), intent("refund", examples=examples_block("x", 2)),
                   extra_top="extra: 1\n")
    found = problems(write(tmp_path, text))
    assert len(found) == 4
    assert all(re.match(r"kb\.yaml:\d+: ", p) for p in found)


def test_bad_link_and_flag_and_name(tmp_path: Path) -> None:
    extra = "    handoff: maybe\n    links:\n      - title: Docs\n        url: www.example.com\n"
    text = kb_text(intent("Refund-Now", extra=extra))
    joined = "\n".join(problems(write(tmp_path, text)))
    assert "should be snake_case" in joined
    assert f"kb.yaml:{line_of(text, 'handoff:')}: intent 'Refund-Now' handoff should be true or false" in joined
    assert f"kb.yaml:{line_of(text, 'url:')}: link url 'www.example.com' should start with https://, http:// or " \
        "mailto:" in joined


def test_missing_file_and_empty_file(tmp_path: Path) -> None:
    missing = problems(tmp_path / "nope.yaml")
    assert missing == ["cannot read the file (No such file or directory)"]
    with pytest.raises(KnowledgeBaseError) as info:  # the fix says where the path comes from, not "edit nope.yaml"
        load_knowledge_base(tmp_path)
    assert info.value.problems == ["cannot read the file (Is a directory)"]
    assert info.value.fix == messages.KB_CANNOT_READ_FIX and "csbot kb check PATH" in info.value.fix
    empty = problems(write(tmp_path, ""))
    assert any("the top level should be a mapping" in p for p in empty)


def test_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("company:\n  name: Caf\xe9\n".encode("latin-1"))
    found = problems(path)
    assert "UTF-8" in found[0]


def test_utf16_without_a_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notepad.yaml"
    path.write_bytes("company:\n  name: Larkspur\n".encode("utf-16-le"))  # was "bad YAML: unacceptable character"
    assert problems(path) == [messages.KB_UTF16.format(file="notepad.yaml", path=path)]
    assert "is UTF-16 text" in problems(path)[0]


def test_unknown_intent_lookup_lists_known(tmp_path: Path) -> None:
    kb = load_knowledge_base(write(tmp_path, kb_text(intent("refund"))))
    with pytest.raises(KnowledgeBaseError, match="unknown intent 'nope'; known: refund"):
        kb.intent("nope")


# --- the shipped knowledge base

@pytest.fixture(scope="module")
def default_kb() -> KnowledgeBase:
    return load_knowledge_base()


def test_default_kb_content_rules(default_kb: KnowledgeBase) -> None:
    assert len(default_kb.intents) >= 30
    thin = {name: len(i.examples) for name, i in default_kb.intents.items() if len(i.examples) < 20}
    assert thin == {}
    assert sum(len(v) for v in default_kb.sentiment_examples.values()) >= 300
    assert set(default_kb.sentiment_examples) == {"negative", "neutral", "positive"}
    for name in ("talk_to_human", "greeting", "thanks", "goodbye"):
        assert name in default_kb.intents, name
    assert default_kb.intents["talk_to_human"].handoff
    assert all(i.answer and i.description for i in default_kb.intents.values())
    assert default_kb.company.name and default_kb.company.handoff_text


def test_default_kb_has_no_duplicates(default_kb: KnowledgeBase) -> None:
    keys = [" ".join(t.lower().split()) for i in default_kb.intents.values() for t in i.examples]
    assert [k for k, n in Counter(keys).items() if n > 1] == []
    sentiment = [" ".join(t.lower().split()) for texts in default_kb.sentiment_examples.values() for t in texts]
    assert [k for k, n in Counter(sentiment).items() if n > 1] == []


def test_missing_intents_is_one_problem_with_its_line(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "company:\n  name: X\n")) == [
        "kb.yaml:1: the top level is missing 'intents'; add it"]
    assert problems(write(tmp_path, "company:\n  name: X\nintents: []\n")) == [
        "kb.yaml:3: intents should be a non-empty list of intents"]


def test_example_repeated_within_one_intent(tmp_path: Path) -> None:
    text = kb_text(intent("refund", examples=examples_block("refund") + "\n      - Refund question number 3"))
    assert problems(write(tmp_path, text)) == [
        f"kb.yaml:{line_of(text, 'Refund question number 3')}: example \"Refund question number 3\" is listed "
        "twice under intent 'refund'; remove one"]


def test_variants_of_one_phrasing_stay_on_one_side_of_the_test_split() -> None:
    from bot.knowledge import held_out_texts

    siblings = tuple(f"question number {i}" for i in range(20))
    held = held_out_texts(siblings)
    assert held and len(held) < len(siblings)  # a real 20%-ish split, not all or nothing
    for text in (sorted(held)[0], next(s for s in siblings if s not in held)):
        variants = (text.upper() + "?!", f"  {text}.")
        with_variants = held_out_texts((*siblings, *variants))
        assert {v in with_variants for v in (text, *variants)} == {text in held}
    assert held_out_texts(siblings[:3]) == set()  # too few to hold any out


def test_small_talk_flag_is_read_checked_and_set_on_the_bundled_greetings(tmp_path: Path) -> None:
    chatty = kb_text(intent("refund", extra="    small_talk: true\n"), intent("track_order"))
    kb = load_knowledge_base(write(tmp_path, chatty))
    assert kb.intents["refund"].small_talk and not kb.intents["track_order"].small_talk
    text = kb_text(intent("refund", extra="    small_talk: maybe\n"), intent("track_order"))
    assert any("small_talk should be true or false" in p for p in problems(write(tmp_path, text)))
    bundled = load_knowledge_base()
    assert {name for name, i in bundled.intents.items() if i.small_talk} == {"greeting", "thanks", "goodbye",
                                                                            "bot_capabilities"}
