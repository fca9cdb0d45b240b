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
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
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
                       max_length=16, patience=0, threads=1, export_int8=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_config) -> Path:
    """A trained, exported and checked tiny model directory (built once per session)."""
    from training.pipeline import build_model

    dest = tmp_path_factory.mktemp("models") / "tiny-v1"
    build_model(tiny_examples(), tiny_config, dest, version="tiny-v1", progress=False)
    return dest
