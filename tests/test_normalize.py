"""Slack mrkdwn normalisation: what a reader sees, nothing the model cannot use, and long input cut cleanly."""

from __future__ import annotations

import time

import pytest

from bot.normalize import normalize, quiet_mentions


@pytest.mark.parametrize(("raw", "expected"), [
    ("hey <@U123ABC> where is my order", "hey @user where is my order"),
    ("ask <@W42|bob> about it", "ask @user about it"),
    ("posted in <#C999|general> and <#C1>", "posted in #general and #channel"),
    ("see <https://shop.example/orders/1|my order page> please", "see my order page please"),
    ("see <https://shop.example/orders/1> please", "see link please"),
    ("mail <mailto:help@shop.example|support>", "mail support"),
    ("error:\n```Traceback (most recent call last)\n  boom```\nhelp", "error: [code] help"),
    ("run `reset --all` now", "run reset --all now"),
    ("thanks :+1: :smile::skin-tone-2: great", "thanks great"),
    ("love it 👍🏽❤️ 🇳🇴 🎉 bye", "love it bye"),
    ("A &amp; B &lt;tag&gt; &amp;lt;", "A & B <tag> &lt;"),
    ("<!here> hi <!subteam^S1|@agents>", "hi @agents"),
    ("due <!date^1392734382^{date}|Feb 18th>", "due Feb 18th"),
    ("meet at 10:30:45 tomorrow", "meet at 10:30:45 tomorrow"),
    ("  lots   of\n\n spaces\t", "lots of spaces"),
    ("ℹ️ where is my order 1️⃣ ⌚", "where is my order"),  # keycaps and ℹ️ are emoji, not a digit and a letter
    ("my snake_case id is 42", "my snake_case id is 42"),
])
def test_markup_becomes_what_a_reader_sees(raw: str, expected: str) -> None:
    result = normalize(raw)
    assert result.text == expected
    assert not result.empty
    assert not result.truncated
    assert result.original_length == len(raw)


def test_bot_mention_is_dropped() -> None:
    assert normalize("<@UBOT> where is my parcel", bot_user_id="UBOT").text == "where is my parcel"


@pytest.mark.parametrize("raw", ["", None, "   \n\t ", "👍", ":tada: 🎉 ❤️", "<@UBOT>", "...", "<!channel>",
                                 # keycaps left a digit, ℹ️ a letter, and '_' counted as a word: all were classified
                                 "1️⃣", "1️⃣2️⃣3️⃣", "0️⃣", "#️⃣", "*️⃣", "1\u20e3", "ℹ️", "_", "😀_😀", "__ 👍 __",
                                 "↔️ ⌚ ⏰"])
def test_nothing_to_classify_is_empty(raw: str | None) -> None:
    result = normalize(raw, bot_user_id="UBOT")
    assert result.empty
    assert result.original_length == len(raw or "")


@pytest.mark.parametrize("raw", ["x" * 40_000, "xxxxxxxxxxxxxxxxxxxx", "aaa aaa", "1", "1234 5678", "???!!", "24/7?"])
def test_no_readable_word_is_empty(raw: str) -> None:
    # No letter at all, or one letter repeated: a model reads these as whatever they resemble (a line of "x" was
    # answered as a greeting, 93% sure), and a customer gets an answer to nothing.
    assert normalize(raw).empty


@pytest.mark.parametrize("raw", ["ok", "k", "no", "hmm", "嗨", "你好", "xx", "order 1234", "ok 👍"])
def test_short_real_words_are_classified(raw: str) -> None:
    assert not normalize(raw).empty


def test_40k_characters_cut_at_a_word_boundary_fast() -> None:
    raw = "my order has not arrived and " + "really " * 6000
    assert len(raw) > 40_000
    started = time.perf_counter()
    result = normalize(raw, max_chars=2000)
    assert time.perf_counter() - started < 0.2
    assert result.truncated and result.original_length == len(raw)
    # Cut at the last word boundary: at most one word short of the limit, never in the middle of one.
    assert result.text.endswith(" really") and 2000 - len(" really") < len(result.text) <= 2000
    assert result.text.startswith("my order has not arrived")
    assert raw.startswith(result.text + " ")  # whole words only: the cut is at a space
    assert result.text.endswith("really")


def test_long_text_without_spaces_is_cut_at_the_limit() -> None:
    result = normalize("x" * 40_000, max_chars=500)
    assert result.truncated and result.text == "x" * 500


@pytest.mark.parametrize("unit", ["<http:a|", "<@U1|", "<#C1|", "<!date^1|", "```a ", "`", "😀", ":a"])
def test_hostile_markup_is_fast(unit: str) -> None:
    raw = unit * (100_000 // len(unit))  # unclosed markup: regexes that scan to the end on every match
    started = time.perf_counter()
    result = normalize(raw, max_chars=2000)
    assert time.perf_counter() - started < 1.5
    assert len(result.text) <= 2000
    assert result.original_length == len(raw)


@pytest.mark.parametrize("unit", ["<http:x", "<@U1|", "<#C1|", "<!date^1|", "<!here|", "<!subteam^S1|"])
def test_unclosed_markup_is_linear_at_the_largest_window(unit: str) -> None:
    # At max_chars=100000 the whole 40,000 characters are parsed; a class that also matches '<' made
    # every unclosed '<' scan to the end and back (seconds, with the GIL held: the whole bot stalls).
    raw = unit * (40_000 // len(unit))
    started = time.perf_counter()
    result = normalize(raw, max_chars=100_000)
    assert time.perf_counter() - started < 0.5
    assert result.original_length == len(raw)
    started = time.perf_counter()
    quiet_mentions(raw)
    assert time.perf_counter() - started < 0.5


def test_short_text_is_not_truncated() -> None:
    result = normalize("where is my order", max_chars=100)
    assert (result.text, result.truncated) == ("where is my order", False)


def test_quiet_mentions_keeps_the_words_and_drops_the_pings() -> None:
    raw = "<!here|here> hi <@W0X|sam> and <@U0Y> see <#C0Z|general> <!subteam^S0Q> &lt;3 <https://a.b|link>"
    assert quiet_mentions(raw) == "@here hi @sam and @U0Y see <#C0Z|general> @S0Q &lt;3 <https://a.b|link>"
