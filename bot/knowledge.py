"""The knowledge base: a YAML file a support lead edits (company, intents, answers,
sentiment examples), loaded with validation that points at file and line.

The YAML is read as a node tree (``yaml.compose``) rather than plain data so every
problem can name the line it is on. All problems are collected and reported at
once, because fixing a file one error per run is tedious.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import yaml

from bot import messages
from bot.normalize import text_key
from models.errors import KnowledgeBaseError

SENTIMENTS = ("negative", "neutral", "positive")
MIN_EXAMPLES = 10
TEST_SHARE = 5  # one example in five (by hash) is held out for evaluation
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# What agents type for "none of these / a new topic" (bot.store.NEW_TOPIC_NAMES): an intent so named could never
# be given as a correction, it would be stored as a new topic.
RESERVED_NAMES = frozenset({"new_topic"})
NAME_MAX = 100
_TOP_KEYS = {"version": False, "company": True, "intents": True, "sentiment_examples": False}
_COMPANY_KEYS = {"name": True, "bot_name": False, "greeting": False, "handoff_text": False,
                 "escalation_text": False, "support_hours": False}
_INTENT_KEYS = {"name": True, "title": False, "description": False, "examples": True, "answer": True,
                "links": False, "follow_ups": False, "handoff": False, "small_talk": False}
_LINK_KEYS = {"title": True, "url": True}


def default_path() -> Path:
    return Path(str(resources.files("bot") / "kb" / "default.yaml"))


class LabelledText(NamedTuple):
    text: str
    intent: str | None
    sentiment: str | None


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Intent:
    name: str
    description: str
    examples: tuple[str, ...]
    answer: str
    links: tuple[Link, ...] = ()
    follow_ups: tuple[str, ...] = ()
    handoff: bool = False
    title: str = ""  # what customers see on buttons and in suggestions, e.g. "Track my order"
    # Hello, thanks, goodbye: answered when the model is sure, never offered as one of a clarify question's two
    # choices ("1. Track my order  2. Say hello" helps nobody).
    small_talk: bool = False

    @property
    def label(self) -> str:
        return self.title or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Company:
    name: str
    bot_name: str = "csbot"
    greeting: str = ""
    handoff_text: str = messages.DEFAULT_HANDOFF_TEXT  # customers see these when the knowledge base has none
    escalation_text: str = messages.DEFAULT_ESCALATION_TEXT
    support_hours: str = ""


@dataclass(frozen=True)
class KnowledgeBase:
    path: Path
    company: Company
    intents: dict[str, Intent]
    sentiment_examples: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def intent(self, name: str) -> Intent:
        try:
            return self.intents[name]
        except KeyError:
            raise KnowledgeBaseError(str(self.path), [messages.KB_UNKNOWN_INTENT.format(
                name=name, known=", ".join(sorted(self.intents)))]) from None

    def examples(self, split: str = "all") -> list[LabelledText]:
        """Labelled examples; ``train``/``test`` split each intent's examples by a stable hash."""
        if split not in ("all", "train", "test"):
            raise ValueError("split must be all, train or test")
        out = []
        for intent in self.intents.values():
            held = held_out_texts(intent.examples)
            for text in intent.examples:
                if split == "all" or (split == "test") == (text in held):
                    out.append(LabelledText(text, intent.name, None))
        for sentiment, texts in self.sentiment_examples.items():
            held = held_out_texts(texts)
            for text in texts:
                if split == "all" or (split == "test") == (text in held):
                    out.append(LabelledText(text, None, sentiment))
        return out


def held_out_texts(siblings: tuple[str, ...]) -> set[str]:
    """The texts of one group (an intent's examples) held out for testing: a stable 20% by hash, but none
    when fewer than 4, so that at least 2 remain to train on.

    Variants of one phrasing ("Hi!" and "hi") follow the first of them listed, so they never sit on both
    sides of the split, where the test would score a message the model trained on."""
    if len(siblings) < 4:
        return set()
    first: dict[str, str] = {}
    for text in siblings:
        first.setdefault(text_key(text), text)
    return {text for text in siblings if in_test_bucket(first[text_key(text)])}


def in_test_bucket(text: str) -> bool:
    """The stable hash that puts one text in five in the test split."""
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % TEST_SHARE == 0


def load_knowledge_base(path: str | Path | None = None) -> KnowledgeBase:
    """Load and validate; raise KnowledgeBaseError listing every problem with its line."""
    path = Path(path) if path else default_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KnowledgeBaseError(str(path), [messages.KB_CANNOT_READ.format(error=exc.strerror)],
                                 messages.KB_CANNOT_READ_FIX) from exc  # "edit it" is no fix for a file not there
    except UnicodeDecodeError as exc:
        raise KnowledgeBaseError(str(path), [messages.KB_NOT_UTF8.format(file=path.name, reason=exc.reason,
                                                                         start=exc.start)]) from exc
    if "\x00" in text:  # UTF-16 without a BOM decodes as UTF-8, a NUL after every letter
        raise KnowledgeBaseError(str(path), [messages.KB_UTF16.format(file=path.name, path=path)])
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = path.name + (messages.KB_PROBLEM_LINE.format(line=mark.line + 1) if mark else "")
        problem = getattr(exc, "problem", None) or str(exc)
        raise KnowledgeBaseError(str(path), [messages.KB_BAD_YAML.format(where=where, problem=problem)]) from exc
    except RecursionError as exc:  # PyYAML's composer recurses once per level of nesting
        raise KnowledgeBaseError(str(path), [messages.KB_TOO_DEEP.format(file=path.name)]) from exc
    return _Validator(path).build(root)


_NULL_TAG = "tag:yaml.org,2002:null"


def _intent_what(item: yaml.Node) -> str:
    """"intent 'refund'" when the item names itself, else "an intent": the intent's own problems
    (an unknown or missing key) then say which of thirty intents they are in."""
    if isinstance(item, yaml.MappingNode):
        for key_node, value_node in item.value:
            if (isinstance(key_node, yaml.ScalarNode) and key_node.value == "name"
                    and isinstance(value_node, yaml.ScalarNode) and _NAME.match(str(value_node.value).strip())):
                return messages.KB_WHAT_INTENT_LABEL.format(name=str(value_node.value).strip())
    return messages.KB_WHAT_INTENT


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._found: list[tuple[int, str]] = []  # (line, problem): reported in file order, not discovery order

    @property
    def problems(self) -> list[str]:
        return [problem for _, problem in sorted(self._found, key=lambda found: found[0])]

    def err(self, node: yaml.Node | None, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        where = messages.KB_PROBLEM_LINE.format(line=line) if node is not None else ""
        self._found.append((line, messages.KB_PROBLEM.format(file=self.path.name, line=where, problem=message)))

    def mapping(self, node: yaml.Node | None, allowed: dict[str, bool], what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.err(node, messages.KB_NOT_MAPPING.format(what=what))
            return {}
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: x` would print as a node's repr
                self.err(key_node, messages.KB_KEY_NOT_NAME.format(what=what, allowed=", ".join(allowed)))
                continue
            key = str(key_node.value)
            if key not in allowed:
                self.err(key_node, messages.KB_UNKNOWN_KEY.format(key=key, what=what, allowed=", ".join(allowed)))
            elif key in out:
                self.err(key_node, messages.KB_KEY_TWICE.format(key=key, what=what))
            else:
                out[key] = value_node
        for key, required in allowed.items():
            if required and key not in out:
                self.err(node, messages.KB_KEY_MISSING.format(what=what, key=key))
        return out

    def string(self, node: yaml.Node | None, what: str, required: bool = True) -> str:
        if node is None:
            return ""
        # A plain null, ~ or empty value is YAML for "nothing" (its value would read as the text "null").
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG or not str(node.value).strip():
            if required:
                self.err(node, messages.KB_NOT_TEXT.format(what=what))
            return ""
        return str(node.value).strip()

    def strings(self, node: yaml.Node | None, what: str) -> list[tuple[str, yaml.Node]]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, messages.KB_NOT_LIST.format(what=what))
            return []
        out = []
        for item in node.value:
            text = self.string(item, messages.KB_WHAT_ENTRY.format(what=what))
            if text:
                out.append((text, item))
        return out

    def build(self, root: yaml.Node | None) -> KnowledgeBase:
        top = self.mapping(root, _TOP_KEYS, messages.KB_WHAT_TOP_LEVEL)
        company = self.company(top.get("company"))
        intents = self.intents(top.get("intents"))
        sentiment = self.sentiments(top.get("sentiment_examples"))
        if self.problems:
            raise KnowledgeBaseError(str(self.path), self.problems)
        return KnowledgeBase(self.path, company, intents, sentiment)

    def company(self, node: yaml.Node | None) -> Company:
        fields = self.mapping(node, _COMPANY_KEYS, "company") if node is not None else {}
        values = {k: self.string(v, f"company.{k}") for k, v in fields.items()}
        return Company(**{k: v for k, v in values.items() if v}) if values.get("name") else Company(name="")

    def intents(self, node: yaml.Node | None) -> dict[str, Intent]:
        if node is None:  # a missing 'intents' key is already reported, with its line
            return {}
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            self.err(node, messages.KB_NO_INTENTS)
            return {}
        intents: dict[str, Intent] = {}
        seen_examples: dict[str, str] = {}  # text_key -> the intent label it was first listed under
        seen_texts: set[tuple[str, str]] = set()
        follow_up_refs: list[tuple[str, yaml.Node, str]] = []
        for item in node.value:
            fields = self.mapping(item, _INTENT_KEYS, _intent_what(item))
            name = self.string(fields.get("name"), "intent name") if "name" in fields else ""
            if name and not _NAME.match(name):
                self.err(fields["name"], messages.KB_INTENT_NAME.format(name=name))
            elif len(name) > NAME_MAX:  # Slack carries it as a menu option's value, at most 150 characters
                self.err(fields["name"], messages.KB_INTENT_NAME_LONG.format(name=name[:40], length=len(name),
                                                                             most=NAME_MAX))
            elif name in RESERVED_NAMES:
                self.err(fields["name"], messages.KB_INTENT_RESERVED.format(name=name))
            if name in intents:
                self.err(fields["name"], messages.KB_INTENT_TWICE.format(name=name))
            label = messages.KB_WHAT_INTENT_LABEL.format(name=name or "?")
            examples = self.strings(fields.get("examples"), f"{label} examples")
            if "examples" in fields and not examples:
                self.err(fields["examples"], messages.KB_NO_EXAMPLES.format(label=label, minimum=MIN_EXAMPLES))
            elif examples and len(examples) < MIN_EXAMPLES:
                self.err(fields["examples"], messages.KB_FEW_EXAMPLES.format(label=label, count=len(examples),
                                                                             minimum=MIN_EXAMPLES))
            for text, ex_node in examples:
                # Two intents conflict on words training treats as the same (text_key: punctuation and Unicode
                # forms too); a repeat within one intent is only an error when it is the same text.
                key, repeat = text_key(text), (label, " ".join(text.lower().split()))
                if key in seen_examples and seen_examples[key] != label:
                    self.err(ex_node, messages.KB_EXAMPLE_SHARED.format(text=text, first=seen_examples[key],
                                                                        label=label))
                elif repeat in seen_texts:
                    self.err(ex_node, messages.KB_EXAMPLE_TWICE.format(text=text, label=label))
                seen_examples.setdefault(key, label)
                seen_texts.add(repeat)
            answer = self.string(fields.get("answer"), f"{label} answer") if "answer" in fields else ""
            handoff = self.boolean(fields.get("handoff"), f"{label} handoff")
            small_talk = self.boolean(fields.get("small_talk"), f"{label} small_talk")
            for ref, ref_node in self.strings(fields.get("follow_ups"), f"{label} follow_ups"):
                follow_up_refs.append((ref, ref_node, label))
            if name and name not in intents:
                intents[name] = Intent(
                    name=name, description=self.string(fields.get("description"), f"{label} description", False),
                    title=self.string(fields.get("title"), f"{label} title", False),
                    examples=tuple(t for t, _ in examples), answer=answer, handoff=handoff, small_talk=small_talk,
                    links=self.links(fields.get("links"), label),
                    follow_ups=tuple(r for r, _, owner in follow_up_refs if owner == label))
        for ref, ref_node, label in follow_up_refs:
            if ref not in intents:
                self.err(ref_node, messages.KB_UNKNOWN_FOLLOW_UP.format(label=label, ref=ref))
        return intents

    def boolean(self, node: yaml.Node | None, what: str) -> bool:
        if node is None:
            return False
        value = str(node.value).lower() if isinstance(node, yaml.ScalarNode) else ""
        if value not in ("true", "false", "yes", "no"):
            self.err(node, messages.KB_NOT_BOOLEAN.format(what=what))
            return False
        return value in ("true", "yes")

    def links(self, node: yaml.Node | None, label: str) -> tuple[Link, ...]:
        if node is None:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.err(node, messages.KB_LINKS_NOT_LIST.format(label=label))
            return ()
        out = []
        for item in node.value:
            fields = self.mapping(item, _LINK_KEYS, messages.KB_WHAT_LINK.format(label=label))
            title, url = self.string(fields.get("title"), "link title"), self.string(fields.get("url"), "link url")
            if url and not url.startswith(("https://", "http://", "mailto:")):
                self.err(fields.get("url"), messages.KB_LINK_URL.format(url=url))
            if title and url:
                out.append(Link(title, url))
        return tuple(out)

    def sentiments(self, node: yaml.Node | None) -> dict[str, tuple[str, ...]]:
        if node is None:
            return {}
        fields = self.mapping(node, {s: False for s in SENTIMENTS}, "sentiment_examples")
        found = {name: self.strings(value, f"sentiment_examples.{name}") for name, value in fields.items()}
        first: dict[str, str] = {}
        for name, texts in found.items():  # one phrase under two sentiments would train both ways
            for text, text_node in texts:
                other = first.setdefault(text_key(text), name)
                if other != name:
                    self.err(text_node, messages.KB_SENTIMENT_SHARED.format(text=text, first=other, sentiment=name))
        return {name: tuple(t for t, _ in texts) for name, texts in found.items()}
