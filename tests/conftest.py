"""Shared fixtures: a tiny randomly initialised BERT (built here, never downloaded),
a small two-task dataset, and one trained tiny model directory per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

INTENT_DATA = {
    "track_order": ["where is my order", "track my parcel", "has my package shipped", "order status please",
                    "when will my order arrive", "tracking number for my order", "is my parcel on the way",
                    "where is my delivery"],
    "refund": ["i want a refund", "give me my money back", "refund my purchase", "how do i get a refund",
               "refund status", "when will i get my refund", "money back please", "return money to my card"],
    "reset_password": ["reset my password", "forgot my password", "cannot log in password", "change password",
                       "password reset link", "locked out of my account", "new password please",
                       "login password not working"],
}
SENTIMENT_DATA = {
    "negative": ["this is terrible", "awful service", "i am angry", "worst shop ever", "so disappointed"],
    "neutral": ["what time is it", "i have a question", "hello there", "ok", "tell me about shipping"],
    "positive": ["thanks a lot", "great service", "love it", "you are awesome", "very happy"],
}


def tiny_examples():
    from training.data import Example

    out = [Example(t, intent=i) for i, texts in INTENT_DATA.items() for t in texts]
    out += [Example(t, sentiment=s) for s, texts in SENTIMENT_DATA.items() for t in texts]
    return out


def build_tiny_bert(folder: Path) -> Path:
    """A 2-layer, 32-wide BERT with a vocabulary made from the test data."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for texts in [*INTENT_DATA.values(), *SENTIMENT_DATA.values()] for t in texts
                    for w in t.replace(",", " ").split()})
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *"abcdefghijklmnopqrstuvwxyz0123456789.,!?"]
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    # The constructor ignores vocab_file under transformers 5; loading the folder reads it.
    tokenizer = BertTokenizerFast.from_pretrained(str(folder), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_config(tiny_base: Path):
    from training.config import TrainConfig

    return TrainConfig(base_model=str(tiny_base), epochs=30, batch_size=8, lr_body=3e-3, lr_head=3e-2,
                       max_length=16, patience=0, threads=1, export_int8=False,
                       min_steps=0)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_config) -> Path:
    """A trained, exported and checked tiny model directory (built once per session)."""
    from training.pipeline import build_model

    dest = tmp_path_factory.mktemp("models") / "tiny-v1"
    build_model(tiny_examples(), tiny_config, dest, version="tiny-v1", progress=False)
    return dest


# --- a small knowledge base with the tiny model's intents, and a data directory using both

EXTRA_INTENT_EXAMPLES = {
    "track_order": ["where's my stuff", "parcel still not here", "shipment update please"],
    "refund": ["refund me now", "i was charged and want it back", "please reverse the payment"],
    "reset_password": ["password help", "i can't sign in", "reset link never arrived"],
}
TINY_KB_ANSWERS = {
    "track_order": ("Where an order is", "You can follow your parcel under *My orders*."),
    "refund": ("Refunds", "Refunds reach your card within 5 business days of the return arriving."),
    "reset_password": ("Resetting a password", "Use *Forgot password* on the sign-in page."),
}


def tiny_kb_yaml() -> str:
    """A valid knowledge base with the tiny model's three intents, 11 examples each."""
    lines = ["company:", "  name: Tiny Shop", "  greeting: Hi! Ask me anything.", "intents:"]
    for name, (description, answer) in TINY_KB_ANSWERS.items():
        lines += [f"  - name: {name}", f"    description: {description}", "    examples:"]
        lines += [f"      - \"{text}\"" for text in INTENT_DATA[name] + EXTRA_INTENT_EXAMPLES[name]]
        lines += [f"    answer: \"{answer}\""]
    lines += ["sentiment_examples:"]
    for sentiment, texts in SENTIMENT_DATA.items():
        lines += [f"  {sentiment}:"] + [f"    - \"{text}\"" for text in texts]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def tiny_kb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "tiny.yaml"
    path.write_text(tiny_kb_yaml(), encoding="utf-8")
    return path


def make_data_dir(root: Path, model: Path, thresholds: dict[str, float] | None = None) -> Path:
    """A csbot data directory holding a copy of ``model`` as v0001, activated in the store."""
    from bot.store import Store
    from models import modeldir
    from models.registry import Registry

    data = root / "data"
    dest = data / "models" / "v0001"
    modeldir.copy_model_dir(model, dest)
    modeldir.update_manifest(dest, version="v0001", **({"thresholds": thresholds} if thresholds else {}))
    with Store(data / "csbot.db") as store:
        Registry(data / "models", store).activate("v0001")
    return data
