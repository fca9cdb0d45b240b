"""The learning loop, simulated on Banking77: does the bot get better night after night?

    python benchmarks/simulate.py --nights 7                      # the full run (CPU heavy: ~20-30 min on 2 cores)
    python benchmarks/simulate.py --nights 1 --messages 50 --subset 10   # a smoke run in a few minutes

Day 0: a knowledge base with 5 training examples per intent (plus 5 held out per intent, used
only by the gate's fixed evaluation set), and a first model trained by the real retrain job.
Each day, ``--messages`` customer messages are drawn from the rest of the Banking77 training pool
and go through the real bot (normalise, classify, route, store). Customers rate an answer 👍 when
it is right and 👎 when it is wrong, with ``--noise`` (10%) of the ratings flipped; a clarify
question is answered by the customer picking the true intent when it is offered; agents correct
``--correct-share`` (20%) of the wrong answers with the true intent (and, only when
``--handoff-label-share`` is set, label that share of the handed-over messages). Each night the real job runs
exactly as the scheduler runs it: ``bot.learning.start_retrain`` -> a child process ->
gate -> promotion, then ``Context.refresh_model``. After each night the active model is scored on
the Banking77 test set. Results: a table, a PNG chart and, for full runs, a section appended to
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml
from common import DATA, OUT, header, intent_name, require

from bot import learning
from bot.config import load_settings
from bot.context import Context
from bot.knowledge import in_test_bucket
from bot.service import Incoming
from models.runtime import Classifier
from training.data import Columns, Example, load_examples
from training.dataset import text_key


def build_kb(train: list, intents: list[str], per_intent: int, rng: random.Random, path: Path) -> set[str]:
    """A knowledge base with ``per_intent`` training and ``per_intent`` held-out examples per intent."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for ex in train:
        key = text_key(ex.text)
        if ex.intent in intents and key not in seen and '"' not in ex.text:
            seen.add(key)
            by_intent[ex.intent].append(ex.text)
    used: set[str] = set()
    entries = []
    for intent in intents:
        texts = by_intent[intent][:]
        rng.shuffle(texts)
        # The knowledge base's own split rule (bot.knowledge.held_out_texts): each text's hash bucket.
        kept = [t for t in texts if not in_test_bucket(t)][:per_intent]
        held = [t for t in texts if in_test_bucket(t)][:per_intent]
        used.update(text_key(t) for t in kept + held)
        entries.append({"name": intent, "description": intent.replace("_", " "), "examples": kept + held,
                        "answer": f"Here is how {intent.replace('_', ' ')} works at our bank."})
    path.write_text(yaml.safe_dump({"company": {"name": "Simulated Bank"}, "intents": entries}, sort_keys=False,
                                   allow_unicode=True), encoding="utf-8")
    return used


def test_accuracy(model: Classifier, test: list) -> float:
    index = {name: i for i, name in enumerate(model.intents)}
    right = 0
    for start in range(0, len(test), 128):
        batch = test[start : start + 128]
        logits = model.logits([e.text for e in batch])[0]
        right += sum(int(p) == index.get(e.intent, -1) for p, e in zip(logits.argmax(-1), batch, strict=True))
    return right / max(1, len(test))


def simulate_day(ctx: Context, messages: list, rng: random.Random, noise: float, correct_share: float,
                 handoff_label_share: float = 0.0) -> Counter:
    counts: Counter[str] = Counter()
    for start in range(0, len(messages), 64):
        batch = messages[start : start + 64]
        incoming = [Incoming(text=e.text, user=f"C{start + i}") for i, e in enumerate(batch)]
        for ex, out in zip(batch, ctx.bot.handle_many(incoming), strict=True):
            kind = out.reply.kind
            if kind == "answer":
                right = out.reply.intent == ex.intent
                counts["answered_right" if right else "answered_wrong"] += 1
                happy = right if rng.random() >= noise else not right
                ctx.bot.rate(out.reply_id, out.normalized.text[:8] or "u", 1 if happy else -1, "button")
                if not right and rng.random() < correct_share:
                    ctx.bot.correct(out.message_id, "agent", ex.intent)
                    counts["corrected"] += 1
            elif kind == "clarify":
                offered = [name for name, _ in out.reply.choices]
                if ex.intent in offered:
                    ctx.bot.choose(out.message_id, ex.intent, "customer")
                    counts["clarified"] += 1
                else:
                    handed_over(ctx, out.message_id, ex.intent, rng, handoff_label_share, counts)
            else:
                handed_over(ctx, out.message_id, ex.intent, rng, handoff_label_share, counts)
    return counts


def handed_over(ctx: Context, message_id: int, intent: str, rng: random.Random, label_share: float,
                counts: Counter) -> None:
    """A person took the conversation; with ``label_share`` they also label it (the handoff post's Label button)."""
    counts["handed_over"] += 1
    if label_share and rng.random() < label_share:
        ctx.bot.correct(message_id, "agent", intent)
        counts["handoff_labelled"] += 1


def run_night(settings, ctx: Context, extra: list[str]) -> tuple[dict, float]:  # noqa: ANN001
    started = time.perf_counter()
    handle = learning.start_retrain(settings, "schedule", force=True, extra_args=extra)
    run = handle.wait() if handle.started else {"status": "skipped", "mode": "-"}
    ctx.refresh_model()
    return run, time.perf_counter() - started


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    nights = [r["night"] for r in rows]
    a.plot(nights, [r["test_accuracy"] * 100 for r in rows], marker="o")
    a.axhline(90, color="gray", linestyle="--", label="target 90%")
    a.set_xlabel("night")
    a.set_ylabel("Banking77 test accuracy (%)")
    a.set_title("Active model after each night")
    a.legend()
    days = [r for r in rows if r.get("messages")]
    if days:
        x = [r["night"] for r in days]
        for key, color, label in (("answered_right", "tab:green", "answered right"),
                                  ("clarified", "tab:blue", "clarified, customer picked the right intent"),
                                  ("handed_over", "tab:orange", "handed over"),
                                  ("answered_wrong", "tab:red", "answered wrong")):
            b.plot(x, [100 * r[key] / r["messages"] for r in days], marker="o", color=color, label=label)
        b.set_xlabel("day (handled by the model trained the night before)")
        b.set_ylabel("% of the day's messages")
        b.set_title("How messages were handled")
        b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _labels(row: dict) -> str:
    if "corrected" not in row:
        return "-"
    return f"{row['corrected']}" + (f" + {row['handoff_labelled']} handoffs" if row.get("handoff_labelled") else "")


def _run(row: dict) -> str:
    """The run's status, with the rejected candidate's test accuracy or a pass within chance."""
    gate = row.get("gate_eval") or {}
    if row.get("candidate_test_accuracy") is not None:
        return f"{row['status']} (candidate {100 * row['candidate_test_accuracy']:.2f}%)"
    if gate.get("within_chance"):
        return f"{row['status']} (within chance, p {gate['p_value']:.2f})"
    return str(row["status"])


def _pct(row: dict, key: str) -> str:
    return f"{100 * row[key] / row['messages']:.1f}%" if row.get("messages") else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--messages", type=int, default=500, help="customer messages per day")
    parser.add_argument("--per-intent", type=int, default=5, help="knowledge-base training examples per intent")
    parser.add_argument("--noise", type=float, default=0.1, help="share of ratings that are flipped")
    parser.add_argument("--correct-share", type=float, default=0.2, help="share of wrong answers agents correct")
    parser.add_argument("--handoff-label-share", type=float, default=0.0,
                        help="share of handed-over messages the agent labels (0 = the issue's protocol)")
    parser.add_argument("--subset", type=int, default=0, help="use only the first N intents (smoke runs)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--set", nargs="*", default=[], help="training options for every night, e.g. epochs=2")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()

    folder = require(DATA / "banking77")
    # Knowledge-base intent names are snake_case; Banking77 has 'Refund_not_showing_up' and
    # 'reverted_card_payment?'.
    columns = Columns(intent="category")
    train = [Example(e.text, intent_name(e.intent)) for e in load_examples(folder / "train.csv", columns) if e.intent]
    test = [Example(e.text, intent_name(e.intent)) for e in load_examples(folder / "test.csv", columns) if e.intent]
    intents = sorted({e.intent for e in train if e.intent})
    if args.subset:
        intents = intents[: args.subset]
    test = [e for e in test if e.intent in intents]
    rng = random.Random(args.seed)
    out = OUT / f"simulate-{time.strftime('%Y%m%d-%H%M%S')}"
    data_dir = out / "data"
    data_dir.mkdir(parents=True)
    used = build_kb(train, intents, args.per_intent, rng, out / "kb.yaml")
    pool = [e for e in train if e.intent in intents and text_key(e.text) not in used]
    rng.shuffle(pool)
    settings = load_settings(env_file=None, data_dir=data_dir, kb_path=out / "kb.yaml")
    extra = [arg for item in args.set for arg in ("--set", item)]

    print(f"simulation in {out}: {len(intents)} intents, {len(pool)} messages in the pool, {len(test)} test",
          flush=True)
    # Night 0: the first model, trained by the same job on the knowledge base alone.
    started = time.perf_counter()
    handle = learning.start_retrain(settings, "simulation", force=True, extra_args=extra)
    first = handle.wait()
    if first.get("status") != "promoted":
        sys.exit(f"the first model was not promoted: {first.get('status')}; see {handle.log_path}")
    ctx = Context.open(settings)
    rows = [{"night": 0, "test_accuracy": test_accuracy(ctx.live.current, test), "version": ctx.live.current.version,
             "status": first["status"], "mode": first.get("mode"), "wall_s": time.perf_counter() - started,
             "train_examples": (first.get("manifest") or {}).get("examples")}]
    print(json.dumps(rows[-1]), flush=True)
    for night in range(1, args.nights + 1):
        day = pool[(night - 1) * args.messages : night * args.messages]
        if len(day) < args.messages:
            print("the pool ran out of messages", flush=True)
            break
        counts = simulate_day(ctx, day, rng, args.noise, args.correct_share, args.handoff_label_share)
        run, wall = run_night(settings, ctx, extra)
        row = {"night": night, "messages": len(day), "answered_right": counts["answered_right"],
               "clarified_or_handed": counts["clarified"] + counts["handed_over"],
               "answered_wrong": counts["answered_wrong"], "corrected": counts["corrected"],
               "clarified": counts["clarified"], "handed_over": counts["handed_over"],
               "handoff_labelled": counts["handoff_labelled"],
               "status": run.get("status"), "mode": run.get("mode"),
               "version": ctx.live.current.version, "wall_s": wall,
               "train_examples": (run.get("manifest") or {}).get("examples"),
               "per_source": (run.get("manifest") or {}).get("per_source"),
               "test_accuracy": test_accuracy(ctx.live.current, test),
               "gate_eval": ((run.get("gate") or {}).get("checks") or {}).get("eval")}
        if run.get("status") == "rejected" and run.get("version"):
            # Was the gate right? Score the rejected candidate on the test set as the bot would serve it.
            candidate = Classifier.load(settings.models_dir / run["version"], provider=settings.onnx_provider,
                                        variant=settings.onnx_variant, threads=settings.threads)
            row["candidate_test_accuracy"] = test_accuracy(candidate, test)
        rows.append(row)
        print(json.dumps(row), flush=True)
    png = out / "simulate.png"
    chart(rows, png)
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    # "Clarified" counts the clarify questions the customer answered with the true intent (then answered right);
    # a question that did not offer it is a handover, as the customer would have needed a person.
    table = ["| night | test accuracy | active | run | mode | train examples | answered right (day) | "
             "clarified (right intent picked) | handed over | answered wrong | corrections | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['night']} | {100 * r['test_accuracy']:.2f}% | {r['version']} | {_run(r)} | "
                     f"{r['mode']} | {r.get('train_examples') or '-'} | {_pct(r, 'answered_right')} | "
                     f"{_pct(r, 'clarified')} | {_pct(r, 'handed_over')} | {_pct(r, 'answered_wrong')} | "
                     f"{_labels(r)} | {r['wall_s'] / 60:.1f} min |")
    report = "\n".join([f"\n## Learning-loop simulation ({len(intents)} intents, {args.nights} nights x "
                        f"{args.messages} messages)", header("python benchmarks/simulate.py " + " ".join(sys.argv[1:])),
                        "", *table, "", f"![simulation]({png.relative_to(OUT.parent)})", ""])
    (out / "results.md").write_text(report)
    print(report)
    if not args.subset and not args.no_record:
        # benchmarks/out/ is not in git: the chart RESULTS.md shows goes to benchmarks/charts/, which is.
        kept_chart = OUT.parent / "charts" / f"simulate-{out.name.removeprefix('simulate-')}-seed{args.seed}.png"
        kept_chart.parent.mkdir(exist_ok=True)
        shutil.copyfile(png, kept_chart)
        recorded = report.replace(f"]({png.relative_to(OUT.parent)})", f"]({kept_chart.relative_to(OUT.parent)})")
        with (OUT.parent / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write(recorded)


if __name__ == "__main__":
    main()
