"""Helpers for the learning-loop tests: settings for a temporary data directory, tiny training
options, and feedback written through the real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TINY_OVERRIDES: dict[str, Any] = {"epochs": 30, "batch_size": 8, "lr_body": 3e-3, "lr_head": 3e-2, "max_length": 16,
                                  "patience": 0, "threads": 1, "export_int8": False}
BAD_OVERRIDES: dict[str, Any] = {**TINY_OVERRIDES, "epochs": 1, "lr_body": 1e-6, "lr_head": 1e-6}


def set_args(overrides: dict[str, Any]) -> list[str]:
    import json

    return [arg for key, value in overrides.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


def make_settings(data: Path, kb_path: Path, base: Path, **extra: Any) -> Any:
    from bot.config import load_settings

    return load_settings(env_file=None, data_dir=data, kb_path=kb_path, base_model=str(base), onnx_provider="cpu",
                         onnx_variant="fp32", threads=1, **extra)


def add_message(store: Any, text: str, *, intent: str | None = None, confidence: float = 0.9,
                decision: str = "answer", conversation: str = "C1") -> tuple[int, int]:
    """A customer message the bot answered (or not); returns (message_id, reply_id)."""
    conv = store.get_or_create_conversation(conversation, None, "U1", "terminal")
    message_id = store.log_message(conv, user="U1", text=text, normalized_text=text, decision=decision,
                                   reason="test", intent=intent, confidence=confidence, model_version="v0001")
    reply_id = store.log_reply(message_id, text="...", kind=decision, intent=intent)
    return message_id, reply_id


def correct(store: Any, text: str, intent: str | None, *, predicted: str = "refund", sentiment: str | None = None
            ) -> int:
    message_id, reply_id = add_message(store, text, intent=predicted)
    store.record_feedback(reply_id, "U1", -1, "button")
    store.record_correction(message_id, agent="A1", correct_intent=intent, correct_sentiment=sentiment)
    return message_id


# A knowledge base the tiny random BERT can generalise on: each intent is marked by one keyword,
# so a model that trained properly gets held-out phrasings right and a broken one does not.
KEYWORDS = {"track_order": "parcel", "refund": "refund", "reset_password": "password"}
FILLERS = ["where", "is", "my", "the", "please", "when", "will", "i", "want", "how", "do", "get", "new", "status",
           "a", "to", "for", "me", "what", "about"]
ANSWERS = {"track_order": "Follow your parcel under My orders.", "refund": "Refunds take 5 days.",
           "reset_password": "Use Forgot password."}


def keyword_texts(intent: str, count: int, offset: int = 0) -> list[str]:
    word = KEYWORDS[intent]
    out = []
    for i in range(offset, offset + count):
        a, b, c = FILLERS[i % len(FILLERS)], FILLERS[(i * 7 + 3) % len(FILLERS)], FILLERS[(i * 3 + 11) % len(FILLERS)]
        out.append(f"{a} {word} {b} {c}" if i % 2 else f"{a} {b} {word} {c}")
    return list(dict.fromkeys(out))


def keyword_kb(path: Path, per_intent: int = 14) -> Path:
    lines = ["company:", "  name: Keyword Shop", "intents:"]
    for intent in KEYWORDS:
        lines += [f"  - name: {intent}", f"    description: {intent.replace('_', ' ')}", "    examples:"]
        lines += [f'      - "{t}"' for t in keyword_texts(intent, per_intent)]
        lines += [f'    answer: "{ANSWERS[intent]}"']
    lines += ["sentiment_examples:", "  negative:", '    - "this is terrible"', '    - "awful service"',
              '    - "i am angry"', '    - "worst shop ever"', '    - "so disappointed"', "  neutral:",
              '    - "what time is it"', '    - "i have a question"', '    - "hello there"', '    - "ok"',
              "  positive:", '    - "thanks a lot"', '    - "great service"', '    - "love it"',
              '    - "you are awesome"', '    - "very happy"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_word_bert(folder: Path, know_words: bool = True) -> Path:
    """Like conftest.build_tiny_bert (2 layers, 32 wide, random), with a tokenizer that knows the
    words: under transformers 5, ``BertTokenizerFast(vocab_file=...)`` ignores the file and maps
    every word to [UNK]; passing the vocabulary as a dict works. ``know_words=False`` builds that
    broken kind on purpose: a base model that cannot tell messages apart."""
    import torch
    from conftest import INTENT_DATA, SENTIMENT_DATA
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for texts in [*INTENT_DATA.values(), *SENTIMENT_DATA.values()] for t in texts
                    for w in t.replace(",", " ").split()} | set(FILLERS) | set(KEYWORDS.values())) if know_words else []
    tokens = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words,
                                 *"abcdefghijklmnopqrstuvwxyz0123456789.,!?"]))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(tokens)}, do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder
