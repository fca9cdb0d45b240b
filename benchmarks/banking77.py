"""Banking77: train the default model and report test accuracy, macro-F1 and time.

    python benchmarks/banking77.py                    # full training set
    python benchmarks/banking77.py --per-intent 10    # 10-shot
    python benchmarks/banking77.py --freeze           # fast mode: encoder frozen, heads only
    python benchmarks/banking77.py --per-intent 10 --label-names   # + each intent's name as one example
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import DATA, OUT, config_overrides, header, require

from training.config import TrainConfig
from training.data import Columns, Example, few_shot, load_examples
from training.pipeline import build_model


def label_words(category: str) -> str:
    """'card_payment_wrong_exchange_rate' -> 'card payment wrong exchange rate'."""
    return category.replace("_", " ").replace("?", "").lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-intent", type=int, default=0, help="few-shot: examples per intent (0 = all)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--freeze", action="store_true", help="fast mode: train the heads only")
    parser.add_argument("--label-names", action="store_true",
                        help="add each intent's name in words ('card arrival') as one more training example, "
                             "as a knowledge base's intent title would be")
    parser.add_argument("--set", nargs="*", default=[], help="extra TrainConfig fields, e.g. lr_body=5e-5")
    args = parser.parse_args()

    folder = require(DATA / "banking77")
    train = load_examples(folder / "train.csv", Columns(intent="category"))
    test = load_examples(folder / "test.csv", Columns(intent="category"))
    if args.per_intent:
        train = few_shot(train, args.per_intent, seed=13)
    if args.label_names:
        train += [Example(label_words(name), intent=name, source="label_name")
                  for name in sorted({e.intent for e in train if e.intent})]
    overrides: dict[str, object] = {"freeze_encoder": args.freeze}
    if args.epochs:
        overrides["epochs"] = args.epochs
    overrides.update(config_overrides(args.set))
    if args.per_intent:
        # Few examples: the validation split would take a large share, so use a smaller one.
        overrides.setdefault("val_fraction", 0.1)
    config = TrainConfig().replace(**overrides)
    name = f"banking77-{'fs' + str(args.per_intent) if args.per_intent else 'full'}{'-frozen' if args.freeze else ''}"
    dest = OUT / f"{name}-{int(time.time())}"
    started = time.perf_counter()
    card = build_model(train, config, dest, version=name, test_examples=test, log_dir=dest.with_suffix(".logs"))
    wall = time.perf_counter() - started
    test_metrics = card.metrics["test"]
    print("\n## Banking77", name)
    print(header("python benchmarks/banking77.py " + " ".join(sys.argv[1:])))
    print(f"- train examples: {len(train)} ({card.metrics['train_examples']} train / "
          f"{card.metrics['val_examples']} validation), test examples: {test_metrics['samples']}")
    print(f"- config: {json.dumps(config.to_dict())}")
    print(f"- epochs run: {len(card.metrics['history'])}, best epoch {card.metrics['best_epoch']}")
    for row in card.metrics["history"]:
        val = row.get("val_intent_accuracy")
        print(f"  - epoch {row['epoch']}: " + (f"val acc {val:.4f}, " if val is not None else "no validation, ")
              + f"{row['epoch_seconds'] / 60:.1f} min")
    print(f"- **test accuracy {test_metrics['accuracy']:.2%}** (fp32 graph), macro-F1 {test_metrics['macro_f1']:.4f}")
    int8 = card.metrics.get("test_int8")
    print(f"- int8 graph (served on CPU): test accuracy {int8['accuracy']:.2%}, macro-F1 {int8['macro_f1']:.4f}"
          if int8 else "- int8 graph: not kept by the export check, so CPU serves the fp32 graph")
    print(f"- wall time (train + export + checks): {wall / 60:.1f} min; training alone "
          f"{card.metrics['train_seconds'] / 60:.1f} min")
    print(f"- export parity: {json.dumps(card.metrics['parity'])}")
    print(f"- model: {dest}")


if __name__ == "__main__":
    main()
