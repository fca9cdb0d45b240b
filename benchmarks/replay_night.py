"""Replay one night of a learning-loop simulation with other dataset options.

A simulation night costs a day of simulated traffic plus a retrain; comparing two dataset options
(e.g. the weight of agents' corrections) over seven nights costs 70 minutes per option on 2 cores.
This retrains once on a copy of a finished simulation's database cut after day N (the messages,
replies, votes, clicks and corrections of later days removed), with the options given, and prints the
gate's corrections check and the candidate's Banking77 test accuracy as the bot would serve it.
The cut data is the same the simulation's night N trained on, so with the same --set options its table row is
the baseline (the candidate is scored, as there, on the test messages of the simulated intents).

Example:
    python benchmarks/replay_night.py benchmarks/out/simulate-20261201-184113 --day 3 --gold-weight 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path

from common import DATA, OUT, config_overrides, header, intent_name, require
from simulate import test_accuracy

from bot.config import load_settings
from bot.knowledge import load_knowledge_base
from models.runtime import Classifier
from training.data import Columns, Example, load_examples
from training.dataset import DatasetOptions
from training.retrain import RetrainOptions, run_retrain

MESSAGES_PER_DAY = 500  # simulate.py's default; the message ids of day d are 500(d-1)+1 .. 500d

CUT_AFTER = """
DELETE FROM correction_history WHERE correction_id IN (SELECT id FROM corrections WHERE message_id > :last);
DELETE FROM corrections WHERE message_id > :last;
DELETE FROM labels WHERE message_id > :last;
DELETE FROM feedback WHERE reply_id IN (SELECT id FROM replies WHERE message_id > :last);
DELETE FROM replies WHERE message_id > :last;
DELETE FROM messages WHERE id > :last;
DELETE FROM locks;
"""


def copy_cut(simulation: Path, dest: Path, day: int, per_day: int) -> None:
    """The simulation's knowledge base, model versions and database, without what came after ``day``."""
    (dest / "data").mkdir(parents=True)
    shutil.copy(simulation / "kb.yaml", dest / "kb.yaml")
    shutil.copytree(simulation / "data" / "models", dest / "data" / "models")
    with sqlite3.connect(simulation / "data" / "csbot.db") as src, sqlite3.connect(dest / "data" / "csbot.db") as db:
        src.backup(db)
        for statement in filter(str.strip, CUT_AFTER.split(";")):
            db.execute(statement, {"last": day * per_day})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("simulation", type=Path, help="a finished simulate.py output folder")
    parser.add_argument("--day", type=int, required=True, help="keep days 1..DAY (night DAY's training data)")
    parser.add_argument("--messages", type=int, default=MESSAGES_PER_DAY, help="messages per simulated day")
    parser.add_argument("--gold-weight", type=float, default=DatasetOptions.gold_weight)
    parser.add_argument("--silver-weight", type=float, default=DatasetOptions.silver_weight)
    parser.add_argument("--set", nargs="*", default=[],
                        help="training options, as the simulation was given them (e.g. epochs=2): else its row is "
                             "not this replay's baseline")
    args = parser.parse_args()

    test_file = require(DATA / "banking77") / "test.csv"
    out = OUT / f"replay-day{args.day}-{time.strftime('%Y%m%d-%H%M%S')}"
    copy_cut(args.simulation, out, args.day, args.messages)
    settings = load_settings(env_file=None, data_dir=out / "data", kb_path=out / "kb.yaml")
    options = DatasetOptions(gold_weight=args.gold_weight, silver_weight=args.silver_weight)
    started = time.perf_counter()
    report = run_retrain(settings, RetrainOptions(trigger="replay", force=True, mode="full", dataset=options,
                                                  overrides=config_overrides(args.set)))
    wall = time.perf_counter() - started
    model = Classifier.load(settings.models_dir / report["version"], provider=settings.onnx_provider,
                            variant=settings.onnx_variant, threads=settings.threads)
    # Scored as simulate.py scores a night: on the test messages of the simulated intents (all 77 unless --subset).
    known = set(load_knowledge_base(out / "kb.yaml").intents)
    test = [Example(e.text, intent_name(e.intent)) for e in load_examples(test_file, Columns(intent="category"))
            if e.intent and intent_name(e.intent) in known]
    corrections = report["gate"]["checks"]["corrections"]
    print(header("python benchmarks/replay_night.py " + " ".join(sys.argv[1:])))
    print(json.dumps({"simulation": str(args.simulation), "day": args.day, "dataset": options.to_dict(),
                      "examples": report["manifest"]["examples"], "per_source": report["manifest"]["per_source"],
                      "corrections_right": corrections["right"], "corrections_total": corrections["total"],
                      "test_accuracy": round(test_accuracy(model, test), 4), "variant": model.variant,
                      "wall_min": round(wall / 60, 1)}, indent=2))


if __name__ == "__main__":
    main()
