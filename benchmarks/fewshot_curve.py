"""Banking77 few-shot: a recipe's accuracy after every epoch, read on a large development set.

    python benchmarks/fewshot_curve.py --set min_steps=150 epochs=6
    python benchmarks/fewshot_curve.py --per-intent 10 --dev-per-intent 20 --set lr_body=5e-5

The 10-shot benchmark (banking77.py --per-intent 10) validates on 77 messages, one per intent, where one
message is 1.3 points: its epoch choice and its validation curve are mostly noise. This script compares
recipes instead. It trains on the seeded 10-per-intent sample (the same one banking77.py draws) plus
each intent's name in words, and reads accuracy after every epoch on ``--dev-per-intent`` messages per
intent taken from the training messages the sample left out, never from the test set. Early stopping is
off, so the whole curve is printed. Use it to pick a recipe; report test accuracy with banking77.py.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from banking77 import label_words
from common import DATA, config_overrides, header, require

from training.config import TrainConfig
from training.data import Columns, Example, few_shot, load_examples
from training.finetune import train


def development_set(pool: list[Example], sample: list[Example], per_intent: int, seed: int) -> list[Example]:
    """``per_intent`` messages of each intent from ``pool`` that are not in ``sample`` (by text)."""
    taken = {e.text for e in sample}
    by_intent: dict[str, list[Example]] = {}
    for e in pool:
        if e.intent and e.text not in taken:
            by_intent.setdefault(e.intent, []).append(e)
    rng = random.Random(seed)
    dev: list[Example] = []
    for name in sorted(by_intent):
        rng.shuffle(by_intent[name])
        dev += by_intent[name][:per_intent]
    return dev


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--dev-per-intent", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], help="TrainConfig fields, e.g. min_steps=150 epochs=6")
    args = parser.parse_args()

    pool = load_examples(require(DATA / "banking77") / "train.csv", Columns(intent="category"))
    sample = few_shot(pool, args.per_intent, seed=13)
    dev = development_set(pool, sample, args.dev_per_intent, seed=99)
    names = sorted({e.intent for e in sample if e.intent})
    train_set = sample + [Example(label_words(n), intent=n, source="label_name") for n in names]
    config = TrainConfig().replace(**{"patience": 100, **config_overrides(args.set)})
    started = time.perf_counter()
    result = train(train_set, config, progress=False, val_examples=dev)
    curve = [row["val_intent_accuracy"] for row in result.history]
    print("\n## Banking77 few-shot curve")
    print(header("python benchmarks/fewshot_curve.py " + " ".join(sys.argv[1:])))
    print(f"- train: {len(train_set)} ({args.per_intent} per intent + {len(names)} intent names); "
          f"development: {len(dev)} held-aside training messages")
    print(f"- config: {json.dumps(config.to_dict())}")
    print("- development accuracy by epoch: " + ", ".join(f"{a:.2%}" for a in curve))
    print(f"- last {curve[-1]:.2%}, highest {max(curve):.2%} (epoch {curve.index(max(curve)) + 1}); "
          f"wall {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
