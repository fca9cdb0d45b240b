"""Latency on this machine: PyTorch eager vs onnxruntime fp32 vs the optimised variants.

    python benchmarks/latency.py                            # the active version (after `make run`)
    python benchmarks/latency.py --model var/models/v0001   # any model directory or version
    python benchmarks/latency.py --model benchmarks/out/banking77-full-...

The int8 file the model directory ships (if its export kept one) is timed as it is; the
other int8 rows re-quantise the fp32 graph with other options, for comparison.
Every variant is timed end to end as served (tokenize + run + softmax) on real
Banking77 test messages: batch-1 p50/p99 over the first N messages, throughput at
batch 32, and top-1 agreement with the fp32 ONNX graph over the whole test set (all
3,080 messages: for one int8 graph the first 1,000 read 99.60% and all of them 99.38%,
either side of the 99.5% limit). PyTorch eager uses the same architecture and base
weights (its head weights are not stored in the model directory, so its agreement is
not reported; only its speed matters here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import DATA, header, require

from bot.config import load_settings
from models import modeldir
from models.errors import CsbotError
from models.runtime import Classifier
from training.data import Columns, load_examples
from training.jobs import model_path


def timed(fn: Callable[[list[str]], object], texts: list[str], batch: int) -> list[float]:
    out = []
    for i in range(0, len(texts) - batch + 1, batch):
        chunk = texts[i : i + batch]
        start = time.perf_counter()
        fn(chunk)
        out.append((time.perf_counter() - start) * 1000)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def torch_runner(card: modeldir.ModelCard, threads: int) -> Callable[[list[str]], object]:
    import torch

    from models.network import IntentSentimentModel
    from training.encoder import load_encoder

    torch.set_num_threads(threads)
    encoder, tokenizer, hidden = load_encoder(card.base_model)
    trained_with = json.loads((card.path / modeldir.CONFIG_FILE).read_text())
    model = IntentSentimentModel(encoder, hidden, len(card.intents),
                                 cosine_scale=float(trained_with.get("cosine_scale", 0.0))).eval()

    def run(texts: list[str]) -> object:
        with torch.inference_mode():
            enc = tokenizer(texts, padding=True, truncation=True, max_length=card.max_length, return_tensors="pt")
            return model(enc["input_ids"], enc["attention_mask"])
    return run


def int8_variant(card: modeldir.ModelCard, folder: Path, name: str, **options: object) -> Path:
    """Quantise the served fp32 graph; contrib (fused) operators need a default tensor type."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / name
    shutil_copy_dir(card.path, target)
    (target / modeldir.INT8_FILE).unlink(missing_ok=True)
    quantize_dynamic(str(card.path / modeldir.ONNX_FILE), str(target / modeldir.INT8_FILE),
                     weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **options)  # type: ignore[arg-type]
    manifest = modeldir._load_json(target, modeldir.MANIFEST_FILE)
    manifest["files"].pop(modeldir.INT8_FILE, None)
    modeldir.update_manifest(target, variants=["fp32", "int8"], files=manifest["files"])
    return target


def shutil_copy_dir(src: Path, dest: Path) -> None:
    import shutil

    shutil.copytree(src, dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="a model directory or version (default: the active version in CSBOT_DATA_DIR)")
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    try:
        args.model = model_path(load_settings(), args.model)
    except CsbotError as error:  # no active version yet, or an unknown one: say so, not a traceback
        raise SystemExit(f"Error: {error}") from None

    every = [e.text for e in load_examples(require(DATA / "banking77" / "test.csv"), Columns(intent="category"))]
    texts = every[: args.messages]
    card = modeldir.read(args.model)
    lengths = sorted(len(t.split()) for t in texts)
    rows = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        variants: list[tuple[str, Callable[[list[str]], object], Classifier | None]] = []
        variants.append(("PyTorch eager fp32", torch_runner(card, args.threads), None))
        for threads in sorted({1, args.threads}):
            c = Classifier.load(args.model, provider="cpu", variant="fp32", threads=threads)
            variants.append((f"ORT fp32 fused, {threads} thread(s)", c.predict, c))
        if "int8" in card.variants:  # the file the bot serves on CPU (CSBOT_ONNX_VARIANT=auto), as exported
            for threads in sorted({1, args.threads}):
                c = Classifier.load(args.model, provider="cpu", variant="int8", threads=threads)
                variants.append((f"ORT int8 as shipped ({modeldir.INT8_FILE}), {threads} thread(s)", c.predict, c))
        # Alternatives, re-quantised here from the fp32 graph, to compare what the export could ship.
        for name, opts in [("int8 dynamic per-channel", {"per_channel": True}),
                           ("int8 dynamic per-tensor", {"per_channel": False}),
                           ("int8 MatMul only (fused attention fp32)",
                            {"per_channel": True, "op_types_to_quantize": ["MatMul"]}),
                           # 7-bit weights: exact where the CPU's kernel saturates at 8 (training.int8kernel)
                           ("int8 dynamic per-channel, 7-bit weights", {"per_channel": True, "reduce_range": True}),
                           ("int8 MatMul only, 7-bit weights",
                            {"per_channel": True, "op_types_to_quantize": ["MatMul"], "reduce_range": True})]:
            try:
                folder = int8_variant(card, Path(tmp), name.replace(" ", "_").replace(",", ""), **opts)
                for threads in sorted({1, args.threads}):
                    c = Classifier.load(folder, provider="cpu", variant="int8", threads=threads)
                    variants.append((f"ORT {name}, {threads} thread(s)", c.predict, c))
            except Exception as exc:  # a variant that cannot be built is reported, not hidden
                rows.append((f"ORT {name}", f"failed: {exc}".replace("\n", " ")[:120], "", "", "", ""))
        for name, fn, classifier in variants:
            for t in texts[:20]:
                fn([t])  # warm-up
            single = timed(fn, texts, 1)
            batch = timed(fn, texts, 32)
            throughput = 32 * len(batch) / (sum(batch) / 1000)
            agreement = ""
            if classifier is not None:
                top1 = np.concatenate([classifier.logits(every[i : i + 64])[0].argmax(-1)
                                       for i in range(0, len(every), 64)])
                if reference is None:
                    reference = top1
                agreement = f"{(top1 == reference).mean():.2%}"
            rows.append((name, f"{percentile(single, 50):.2f}", f"{percentile(single, 99):.2f}",
                         f"{statistics.mean(single):.2f}", f"{throughput:.0f}", agreement))
            print(rows[-1], flush=True)
    eager_p50 = float(rows[0][1]) if rows and rows[0][0].startswith("PyTorch") else None
    print("\n## Latency")
    print(header("python benchmarks/latency.py " + " ".join(sys.argv[1:])  # every flag, as given
                 + ("" if "--model" in sys.argv else f"  (model: {args.model})")))
    print(f"- messages: first {len(texts)} Banking77 test messages (median {lengths[len(lengths) // 2]} words); "
          f"timing includes tokenisation; agreement over all {len(every):,} test messages")
    from training.int8kernel import int8_matmul_saturates

    print("- this CPU's int8 MatMul " + ("saturates at 8-bit weights (exact at 7)" if int8_matmul_saturates()
                                         else "is exact at 8-bit weights"))
    print("\n| variant | batch-1 p50 ms | p99 ms | mean ms | batch-32 msg/s | top-1 agreement vs ORT fp32 | "
          "speed-up vs eager (p50) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        speed = f"{eager_p50 / float(row[1]):.1f}x" if eager_p50 and row[1].replace(".", "").isdigit() else ""
        print("| " + " | ".join(row) + f" | {speed} |")


if __name__ == "__main__":
    main()
