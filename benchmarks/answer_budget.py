"""How many messages can a model answer correctly within a wrong-answer budget?

    python benchmarks/answer_budget.py MODEL_DIR [MODEL_DIR ...]
    python benchmarks/answer_budget.py benchmarks/out/simulate-*/data/models/v0008 --budget 0.03

For each model, on the Banking77 test set: the share answered right and wrong under the model's own
fitted thresholds (the router's answer rule: top probability >= ``answer_min`` and a lead of
``clarify_margin``), and the best share answered right that any threshold on each confidence score
could reach while at most ``--budget`` of all messages get a wrong answer. That best threshold is
chosen on the test set itself, so it is an upper bound, not something a bot can fit: it separates
what a better threshold could gain from what only a more accurate model can.

``--resample N`` also measures how reliable the fitting rule is: N times, it fits the thresholds
(``training.thresholds.fit_thresholds``, as the retrain job does) on a random calibration set of
``--calibration`` test messages (450: about what the retrain job fits on), and scores the rest.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import DATA, header, intent_name, require

from bot.router import DEFAULT_THRESHOLDS
from models.runtime import Classifier, softmax
from training.data import Columns, load_examples
from training.thresholds import fit_thresholds


def best_within_budget(score: np.ndarray, correct: np.ndarray, budget: float) -> tuple[float, float, float]:
    """(answered right, answered wrong, threshold) of the best cut on ``score`` with wrong <= budget."""
    order = np.argsort(-score, kind="stable")
    ranked, hits = score[order], correct[order]
    right, wrong = np.cumsum(hits) / len(hits), np.cumsum(~hits) / len(hits)
    cut = np.append(ranked[:-1] > ranked[1:], True)  # a threshold accepts all tied scores together
    ok = np.nonzero((wrong <= budget) & cut)[0]
    if len(ok) == 0:
        return 0.0, 0.0, float("inf")
    k = ok[-1]
    return float(right[k]), float(wrong[k]), float(ranked[k])


def scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    probs = np.sort(softmax(logits), axis=1)[:, ::-1]
    top = np.sort(logits, axis=1)[:, ::-1]
    return {"top-1 probability (router)": probs[:, 0], "top-1 minus top-2 probability": probs[:, 0] - probs[:, 1],
            "top-1 minus top-2 logit": top[:, 0] - top[:, 1], "max logit": top[:, 0]}


def routed_answer(probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """Which messages the router answers outright: top-1 at least answer_min, and clear of the second by the margin."""
    top2 = np.sort(probs, axis=1)[:, ::-1][:, :2]
    return (top2[:, 0] >= thresholds["answer_min"]) & (top2[:, 0] - top2[:, 1] >= thresholds["clarify_margin"])


def resampled(probs: np.ndarray, gold: np.ndarray, times: int, size: int, budget: float) -> None:
    """Fit on ``size`` random rows, score the others; print the spread of the realised shares."""
    rng = np.random.default_rng(0)
    wrong, right = [], []
    for _ in range(times):
        order = rng.permutation(len(gold))
        fit, rest = order[:size], order[size:]
        fitted = {**DEFAULT_THRESHOLDS, **fit_thresholds(probs[fit], gold[fit])}
        answered = routed_answer(probs[rest], fitted)  # as the router answers: the margin counts too
        correct = probs[rest].argmax(axis=1) == gold[rest]
        wrong.append((answered & ~correct).mean())
        right.append((answered & correct).mean())
    w, r = np.array(wrong), np.array(right)
    print(f"- thresholds refitted {times} times on {size} random test messages, scored on the other "
          f"{len(gold) - size}: answered right {r.mean():.2%} on average; answered wrong {w.mean():.2%} on average, "
          f"90th percentile {np.quantile(w, 0.9):.2%}, above {budget:.0%} in {(w > budget).mean():.0%} of the fits")


def report(path: Path, texts: list[str], gold_names: list[str], budget: float, times: int = 0,
           size: int = 450) -> None:
    model = Classifier.load(path, threads=1)
    index = {intent_name(name): i for i, name in enumerate(model.intents)}
    gold = np.array([index.get(intent_name(name), -1) for name in gold_names])
    logits = np.concatenate([model.logits(texts[i : i + 128])[0] for i in range(0, len(texts), 128)])
    probs = softmax(logits)
    correct = probs.argmax(axis=1) == gold
    # The thresholds the router uses for the variant this process serves (int8 on CPU), the router's own defaults
    # for any it lacks.
    thresholds = {**DEFAULT_THRESHOLDS, **model.card.thresholds_for(model.variant)}
    answered = routed_answer(probs, thresholds)
    print(f"\n### {path}\n- test accuracy {correct.mean():.2%} ({model.variant}); fitted `answer_min` "
          f"{thresholds['answer_min']:.3f}, `clarify_margin` {thresholds['clarify_margin']:.3f}")
    print(f"- fitted thresholds: answered right **{(answered & correct).mean():.2%}**, "
          f"answered wrong {(answered & ~correct).mean():.2%}\n")
    print(f"| score | best answered right with wrong <= {budget:.0%} | answered wrong | at threshold |")
    print("|---|---|---|---|")
    for name, score in scores(logits).items():
        right, wrong, threshold = best_within_budget(score, correct, budget)
        print(f"| {name} | {right:.2%} | {wrong:.2%} | {threshold:.4f} |")
    if times:
        print()
        resampled(probs, gold, times, size, budget)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model directories (e.g. a simulation's versions)")
    parser.add_argument("--budget", type=float, default=0.03, help="share of all messages that may be answered wrongly")
    parser.add_argument("--resample", type=int, default=0, help="refit the thresholds N times on random subsets")
    parser.add_argument("--calibration", type=int, default=450, help="messages per refit (with --resample)")
    args = parser.parse_args()
    test = load_examples(require(DATA / "banking77") / "test.csv", Columns(intent="category"))
    print("## Answers within a wrong-answer budget (Banking77 test set)")
    print(header("python benchmarks/answer_budget.py " + " ".join(sys.argv[1:])))
    for path in args.models:
        report(path, [e.text for e in test], [e.intent or "" for e in test], args.budget, args.resample,
               args.calibration)


if __name__ == "__main__":
    main()
