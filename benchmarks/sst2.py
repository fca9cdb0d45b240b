"""SST-2: sentiment accuracy of the two-head model, scored negative vs positive on dev.

    python benchmarks/sst2.py --train-size 20000 --epochs 2

The product always trains both heads together, so this trains on the default
knowledge base's intents plus SST-2 phrases (a seeded sample of ``--train-size``),
then scores the sentiment head on SST-2 dev (no neutral class there, so only the
negative and positive logits are compared).
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np
from common import DATA, OUT, header, require

from bot.knowledge import load_knowledge_base
from models.runtime import Classifier
from training.config import TrainConfig
from training.data import Columns, knowledge_base_examples, load_examples
from training.evaluate import binary_sentiment_accuracy
from training.pipeline import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sentiment-weight", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    args = parser.parse_args()

    folder = require(DATA / "sst2")
    sst = load_examples(folder / "train.tsv", Columns(sentiment="label"))
    random.Random(13).shuffle(sst)
    sst = sst[: args.train_size]
    dev = load_examples(folder / "dev.tsv", Columns(sentiment="label"))
    kb = knowledge_base_examples(load_knowledge_base(), "all")
    config = TrainConfig(epochs=args.epochs, sentiment_loss_weight=args.sentiment_weight, val_fraction=0.05,
                         export_int8=False, threads=args.threads)
    dest = OUT / f"sst2-{int(time.time())}"
    started = time.perf_counter()
    card = build_model(kb + sst, config, dest, version="sst2")
    classifier = Classifier.load(dest, provider="cpu", variant="fp32")  # the served path
    texts = [e.text for e in dev]
    sentiment_logits = np.concatenate([classifier.logits(texts[i : i + 64])[1] for i in range(0, len(texts), 64)])
    accuracy = binary_sentiment_accuracy(sentiment_logits, [e.sentiment for e in dev])
    wall = time.perf_counter() - started
    print("\n## SST-2")
    print(header("python benchmarks/sst2.py " + " ".join(sys.argv[1:])))
    ran = len(card.metrics["history"])  # min_steps raises the epochs of a small --train-size
    print(f"- train: {len(sst)} SST-2 phrases + {len(kb)} knowledge-base examples, {ran} epochs "
          f"({args.epochs} asked); "
          f"dev: {len(dev)} sentences")
    for row in card.metrics["history"]:
        print(f"  - epoch {row['epoch']}: val sentiment acc {row.get('val_sentiment_accuracy', 0):.4f}, "
              f"{row['epoch_seconds'] / 60:.1f} min")
    print(f"- **SST-2 dev accuracy (negative vs positive) {accuracy:.2%}**")
    print(f"- wall time: {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
