"""Out-of-scope detection on Banking77 with 25% of the intents held out at training time.

    python benchmarks/oos.py

The held-out intents are close cousins of the known ones (e.g. card_arrival vs
card_delivery_estimate), which is the hard case. For a range of thresholds on the
router's confidence score it reports in-scope accuracy (a wrong rejection counts as
an error) against out-of-scope recall, and marks the operating point the threshold
fitted at training time picks. Six scores are compared: the top-1 probability (what
the router uses), the cosine similarity to the nearest training message and to the
nearest intent centroid, the max logit, the energy score, and the Mahalanobis distance.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np
from common import DATA, OUT, config_overrides, header, require

from models.runtime import Classifier, softmax
from training.config import TrainConfig
from training.data import Columns, load_examples
from training.pipeline import build_model


def sweep(score_in: np.ndarray, correct_in: np.ndarray, score_out: np.ndarray, thresholds: list[float]
          ) -> list[tuple[float, float, float]]:
    rows = []
    for t in thresholds:
        in_acc = float((correct_in & (score_in >= t)).mean())
        recall = float((score_out < t).mean())
        rows.append((t, in_acc, recall))
    return rows


def embed(classifier: Classifier, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    logits, embeddings = [], []
    for i in range(0, len(texts), 64):
        il, _, emb = classifier.logits(texts[i : i + 64])
        logits.append(il)
        embeddings.append(emb)
    return np.concatenate(logits), np.concatenate(embeddings)


def energy(logits: np.ndarray) -> np.ndarray:
    top = logits.max(-1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(-1, keepdims=True)))[:, 0]


def mahalanobis(train: np.ndarray, labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Minus the smallest Mahalanobis distance to a class mean, with one covariance shared by all classes."""
    means = np.stack([train[labels == k].mean(0) for k in range(labels.max() + 1)])
    centred = train - means[labels]
    cov = centred.T @ centred / len(train) + 1e-6 * np.eye(train.shape[1])
    whiten = np.linalg.cholesky(np.linalg.inv(cov))  # |z W|^2 = z^T cov^-1 z
    xw, mw = x @ whiten, means @ whiten
    d2 = (xw**2).sum(1, keepdims=True) - 2 * xw @ mw.T + (mw**2).sum(1)
    return -d2.min(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    parser.add_argument("--model", default=None, help="reuse a model trained by an earlier run of this script")
    parser.add_argument("--set", nargs="*", default=[], help="extra TrainConfig fields, e.g. outlier_weight=0.2")
    args = parser.parse_args()
    folder = require(DATA / "banking77")
    train = load_examples(folder / "train.csv", Columns(intent="category"))
    test = load_examples(folder / "test.csv", Columns(intent="category"))
    intents = sorted({e.intent for e in train})
    held_out = set(random.Random(13).sample(intents, round(len(intents) * 0.25)))
    known_train = [e for e in train if e.intent not in held_out]
    started = time.perf_counter()
    if args.model:
        dest = args.model
    else:
        dest = OUT / f"oos-{int(time.time())}"
        config = TrainConfig(epochs=args.epochs, export_int8=False, threads=args.threads).replace(
            **config_overrides(args.set))
        build_model(known_train, config, dest, version="oos")
    classifier = Classifier.load(dest, provider="cpu", variant="fp32")
    index = {n: i for i, n in enumerate(classifier.intents)}
    in_scope = [e for e in test if e.intent not in held_out]
    out_scope = [e for e in test if e.intent in held_out]
    logits_in, emb_in = embed(classifier, [e.text for e in in_scope])
    logits_out, emb_out = embed(classifier, [e.text for e in out_scope])
    _, emb_train = embed(classifier, [e.text for e in known_train])
    p_in, p_out = softmax(logits_in).max(-1), softmax(logits_out).max(-1)
    correct = logits_in.argmax(-1) == np.array([index[e.intent] for e in in_scope])
    knn_in, knn_out = (emb_in @ emb_train.T).max(-1), (emb_out @ emb_train.T).max(-1)
    train_labels = np.array([index[e.intent] for e in known_train])
    centroids = np.stack([emb_train[train_labels == i].mean(0) for i in range(len(index))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    cen_in, cen_out = (emb_in @ centroids.T).max(-1), (emb_out @ centroids.T).max(-1)
    ml_in, ml_out = logits_in.max(-1), logits_out.max(-1)
    en_in, en_out = energy(logits_in), energy(logits_out)
    ma_in, ma_out = mahalanobis(emb_train, train_labels, emb_in), mahalanobis(emb_train, train_labels, emb_out)
    fitted = classifier.card.thresholds_for(classifier.variant)["answer_min"]
    base = float(correct.mean())
    print("\n## Out-of-scope detection (Banking77, 25% of intents held out)")
    print(header("python benchmarks/oos.py " + " ".join(sys.argv[1:])))
    print(f"- known intents: {len(index)}, held-out intents: {len(held_out)} ({', '.join(sorted(held_out)[:6])}, ...)")
    print(f"- test: {len(in_scope)} in-scope, {len(out_scope)} out-of-scope messages; wall "
          f"{(time.perf_counter() - started) / 60:.1f} min")
    print(f"- in-scope accuracy with no rejection: {base:.2%}; fitted answer_min = {fitted:.3f}")
    for name, s_in, s_out, grid, mark in [
        ("top-1 probability (router score)", p_in, p_out, sorted({*np.round(np.linspace(0.1, 0.9, 17), 3), fitted}),
         fitted),
        ("nearest-neighbour cosine", knn_in, knn_out, list(np.round(np.linspace(0.5, 0.95, 10), 3)), None),
        ("cosine to the nearest intent centroid", cen_in, cen_out, list(np.round(np.linspace(0.5, 0.95, 10), 3)),
         None),
        ("max logit", ml_in, ml_out, list(np.round(np.quantile(ml_in, np.linspace(0.0, 0.3, 7)), 3)), None),
        ("energy (logsumexp of the logits)", en_in, en_out,
         list(np.round(np.quantile(en_in, np.linspace(0.0, 0.3, 7)), 3)), None),
        ("Mahalanobis distance to the nearest intent (shared covariance), negated", ma_in, ma_out,
         list(np.round(np.quantile(ma_in, np.linspace(0.0, 0.3, 7)), 3)), None),
    ]:
        print(f"\n### score: {name}\n\n| threshold | in-scope accuracy | loss vs no rejection | OOS recall |")
        print("|---|---|---|---|")
        for t, acc, recall in sweep(s_in, correct, s_out, grid):
            flag = " ← fitted" if mark is not None and abs(t - mark) < 1e-9 else ""
            print(f"| {t:.3f}{flag} | {acc:.2%} | {100 * (base - acc):.2f} pt | {recall:.2%} |")
        fine = list(np.quantile(s_in, np.linspace(0.0, 0.2, 401)))
        best = max((r for r in sweep(s_in, correct, s_out, fine)
                    if base - r[1] <= 0.01), key=lambda r: r[2])
        print(f"\nBest OOS recall within 1 point of in-scope accuracy: {best[2]:.2%} at threshold {best[0]:.3f} "
              f"(in-scope {best[1]:.2%}; the threshold is picked on this test set, so an upper bound).")


if __name__ == "__main__":
    main()
