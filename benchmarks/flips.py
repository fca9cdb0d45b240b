"""How consistent are consecutive model versions? Flips between them on the Banking77 test set.

    python benchmarks/flips.py V1 V2 [V3 ...]
    python benchmarks/flips.py benchmarks/out/simulate-*/data/models/v000{4,5,6,7,8}

For each pair of consecutive versions: the test accuracy of each, the **negative flips** (messages
the older version got right and the newer one gets wrong: the regressions a customer notices) and
the positive flips (wrong before, right now). Accuracy can rise while many answers change under
the customers' feet; the negative-flip rate measures that churn (Yan et al., 2021).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import DATA, header, intent_name, require

from models.runtime import Classifier
from training.data import Columns, load_examples


def right_answers(path: Path, texts: list[str], gold_names: list[str]) -> np.ndarray:
    model = Classifier.load(path, threads=1)
    index = {intent_name(name): i for i, name in enumerate(model.intents)}
    gold = np.array([index.get(intent_name(name), -1) for name in gold_names])
    logits = np.concatenate([model.logits(texts[i : i + 128])[0] for i in range(0, len(texts), 128)])
    return logits.argmax(axis=1) == gold


def flips(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    """(negative flips: right -> wrong, positive flips: wrong -> right)."""
    return int((before & ~after).sum()), int((~before & after).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model directories, oldest first")
    args = parser.parse_args()
    if len(args.models) < 2:
        sys.exit("flips.py needs at least two model directories, oldest first.")
    test = load_examples(require(DATA / "banking77") / "test.csv", Columns(intent="category"))
    texts, gold = [e.text for e in test], [e.intent or "" for e in test]
    print("## Flips between consecutive versions (Banking77 test set)")
    print(header("python benchmarks/flips.py " + " ".join(sys.argv[1:])))
    print("\n| versions | accuracy before | accuracy after | negative flips | positive flips |")
    print("|---|---|---|---|---|")
    previous = right_answers(args.models[0], texts, gold)
    total_negative = 0
    for older, newer in zip(args.models, args.models[1:], strict=False):
        current = right_answers(newer, texts, gold)
        negative, positive = flips(previous, current)
        total_negative += negative
        print(f"| {older.name} → {newer.name} | {previous.mean():.2%} | {current.mean():.2%} | "
              f"{negative} ({negative / len(texts):.2%}) | {positive} ({positive / len(texts):.2%}) |")
        previous = current
    pairs = len(args.models) - 1
    print(f"\nMean negative flips per update: {total_negative / pairs:.1f} of {len(texts)} messages "
          f"({total_negative / pairs / len(texts):.2%}).")


if __name__ == "__main__":
    main()
