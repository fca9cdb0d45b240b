"""The serving classifier (onnxruntime + tokenizers): predictions, threads, hot swaps, and broken model dirs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models import modeldir
from models.errors import CsbotError, ModelDirError, ModelError
from models.runtime import Classifier, LiveClassifier, Prediction

TEXTS = ["where is my order", "i want a refund", "forgot my password", "this is terrible", "love it",
         "has my package shipped", "refund status", "hello there", "password reset link", "awful service"]


@pytest.fixture(scope="module")
def classifier(tiny_model: Path) -> Classifier:
    return Classifier.load(tiny_model, provider="auto")


@pytest.fixture
def model_copy(tiny_model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "model"
    modeldir.copy_model_dir(tiny_model, dest)
    return dest


def fix_hash(path: Path, name: str) -> None:
    """Record the current checksum of ``name`` in the manifest (as a hand edit would need to)."""
    manifest = json.loads((path / modeldir.MANIFEST_FILE).read_text())
    modeldir.update_manifest(path, files={**manifest["files"], name: modeldir.sha256_file(path / name)})


def as_tuples(predictions: list[Prediction]) -> list[tuple[object, ...]]:
    return [(p.intents, p.sentiment, tuple(sorted(p.sentiment_probs.items())), p.embedding.tobytes(),
             p.model_version) for p in predictions]


def test_loads_and_reports_the_provider_a_session_really_gets(classifier: Classifier, tiny_model: Path) -> None:
    import onnxruntime as ort

    # get_available_providers() lists CUDA wherever onnxruntime-gpu is installed; only a session knows.
    # CPU on a machine without CUDA 13 and cuDNN 9 (auto falls back and says so), CUDA on a GPU machine.
    raw = ort.InferenceSession(str(tiny_model / modeldir.ONNX_FILE),
                               providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert classifier.provider == raw.get_providers()[0]
    assert classifier.device == ("CUDA" if classifier.provider == "CUDAExecutionProvider" else "CPU")
    assert classifier.variant == "fp32"
    assert classifier.version == "tiny-v1"
    assert classifier.intents == ("refund", "reset_password", "track_order")


def test_predict_top_k_sentiment_and_embedding(classifier: Classifier) -> None:
    predictions = classifier.predict(TEXTS, top_k=3)
    assert len(predictions) == len(TEXTS)
    for p in predictions:
        probs = [s.probability for s in p.intents]
        assert probs == sorted(probs, reverse=True)
        assert {s.intent for s in p.intents} == set(classifier.intents)
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert p.top == p.intents[0]
        assert set(p.sentiment_probs) == {"negative", "neutral", "positive"}
        assert sum(p.sentiment_probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.sentiment == max(p.sentiment_probs, key=p.sentiment_probs.__getitem__)
        assert p.embedding.shape == (32,)
        assert float(np.linalg.norm(p.embedding)) == pytest.approx(1.0, abs=1e-4)
        assert p.model_version == "tiny-v1"
    top1 = classifier.predict(TEXTS[:2], top_k=1)
    assert [len(p.intents) for p in top1] == [1, 1]
    capped = classifier.predict(TEXTS[:1], top_k=99)[0].intents
    assert [s.intent for s in capped] == [s.intent for s in predictions[0].intents]
    assert classifier.predict([]) == []


def test_batch_equals_one_by_one(classifier: Classifier) -> None:
    batch = classifier.predict(TEXTS)
    single = [classifier.predict([t])[0] for t in TEXTS]
    for b, s in zip(batch, single, strict=True):
        assert [x.intent for x in b.intents] == [x.intent for x in s.intents]
        assert b.intents[0].probability == pytest.approx(s.intents[0].probability, abs=1e-5)


def test_long_input_is_truncated_by_the_tokenizer(classifier: Classifier) -> None:
    # The model reads the first max_length tokens: 3,000 repeats score exactly as 60 do (both are cut),
    # and differently from a text short enough to be read whole.
    texts = ["where is my order " * 3000, "where is my order " * 60, "where is my order"]
    huge, cut, short = classifier.logits(texts)[0]
    assert len(classifier._tokenizer.encode("where is my order " * 60).ids) == classifier.card.max_length
    np.testing.assert_allclose(huge, cut, atol=1e-5)
    assert not np.allclose(huge, short, atol=1e-3)


def test_concurrent_threads_give_the_sequential_results(classifier: Classifier) -> None:
    batches = [TEXTS[i:] + TEXTS[:i] for i in range(8)]
    expected = [as_tuples(classifier.predict(b)) for b in batches] * 4
    barrier = threading.Barrier(8)

    def work(batch: list[str]) -> list[tuple[object, ...]]:
        barrier.wait(timeout=30)
        return as_tuples(classifier.predict(batch))

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(work, batches * 4))
    for g, e in zip(got, expected, strict=True):
        assert [x[:2] for x in g] == [x[:2] for x in e]
        for a, b in zip(g, e, strict=True):
            np.testing.assert_allclose(np.frombuffer(a[3], np.float32), np.frombuffer(b[3], np.float32), atol=1e-5)


def test_swap_while_threads_predict(tiny_model: Path, model_copy: Path) -> None:
    modeldir.update_manifest(model_copy, version="tiny-v2")
    old, new = Classifier.load(tiny_model, provider="cpu"), Classifier.load(model_copy, provider="cpu")
    live = LiveClassifier(old)
    stop = threading.Event()
    seen: list[tuple[str, ...]] = []
    errors: list[BaseException] = []

    def predict_forever() -> None:
        try:
            while not stop.is_set():
                seen.append(tuple(p.model_version for p in live.predict(TEXTS[:3])))
        except BaseException as exc:  # noqa: BLE001 - any error fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=predict_forever) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(20):
        previous = live.swap(new if i % 2 == 0 else old)
        assert previous is (old if i % 2 == 0 else new)  # swap hands back exactly the model it replaced
        time.sleep(0.005)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    # Every batch came from one whole model, and both models served.
    assert set(seen) == {("tiny-v1",) * 3, ("tiny-v2",) * 3}
    assert live.current is old  # 20 swaps: back to the first
    assert live.predict(["where is my order"])[0].model_version == "tiny-v1"


# --- broken model directories: a ModelError subclass that says what and how to fix, never a traceback

def test_corrupt_onnx_fails_its_checksum(model_copy: Path) -> None:
    (model_copy / "model.onnx").write_bytes(b"this is not a protobuf" * 10)
    with pytest.raises(ModelDirError) as info:
        Classifier.load(model_copy)
    assert "model.onnx does not match its checksum in manifest.json" in info.value.what
    assert "`csbot promote VERSION`" in info.value.fix and "`csbot train --activate`" in info.value.fix


@pytest.mark.parametrize("field, value", [("thresholds", {"answer_min": "high"}), ("max_length", "long"),
                                          ("max_length", -1), ("max_length", 10**12),
                                          ("files", ["model.onnx"]), ("variants", 3)])
def test_hand_edited_manifest_value_is_a_model_error(model_copy: Path, field: str, value: object) -> None:
    manifest = json.loads((model_copy / "manifest.json").read_text())
    (model_copy / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    with pytest.raises(ModelDirError) as info:
        Classifier.load(model_copy)
    assert "manifest.json" in info.value.what
    assert "csbot rollback" in info.value.fix


def test_a_manifest_file_the_file_system_refuses_is_a_model_error(model_copy: Path) -> None:
    manifest = json.loads((model_copy / modeldir.MANIFEST_FILE).read_text())
    manifest["files"]["x" * 300] = "0" * 64  # a hand edit
    (model_copy / modeldir.MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="cannot be read") as caught:
        Classifier.load(model_copy)
    assert "File name too long" in str(caught.value)


def test_corrupt_onnx_with_matching_hash_is_a_model_error(model_copy: Path) -> None:
    (model_copy / "model.onnx").write_bytes(b"this is not a protobuf" * 10)
    card = modeldir.read(model_copy, verify_hashes=False)
    with pytest.raises(ModelError) as unverified:
        Classifier(card, provider="cpu")
    fix_hash(model_copy, "model.onnx")
    with pytest.raises(ModelError) as hashed:
        Classifier.load(model_copy)
    for info in (unverified, hashed):
        assert type(info.value) is ModelError
        assert "model.onnx could not be loaded by onnxruntime" in info.value.what
        assert "retrain" in info.value.fix and "rollback" in info.value.fix


def test_corrupt_int8_variant_is_a_model_error(model_copy: Path) -> None:
    (model_copy / modeldir.INT8_FILE).write_bytes(b"garbage")
    fix_hash(model_copy, modeldir.INT8_FILE)
    modeldir.update_manifest(model_copy, variants=["fp32", "int8"])
    with pytest.raises(ModelError, match="model.int8.onnx could not be loaded by onnxruntime"):
        Classifier.load(model_copy, provider="cpu")
    assert Classifier.load(model_copy, provider="cpu", variant="fp32").variant == "fp32"


def test_missing_tokenizer(model_copy: Path) -> None:
    (model_copy / modeldir.TOKENIZER_FILE).unlink()
    with pytest.raises(ModelDirError) as info:
        Classifier.load(model_copy)
    assert "is missing tokenizer.json" in info.value.what
    assert "copy tokenizer.json from the base model" in info.value.what
    assert info.value.fix


def test_invalid_tokenizer_file(model_copy: Path) -> None:
    (model_copy / modeldir.TOKENIZER_FILE).write_text("{}")
    fix_hash(model_copy, modeldir.TOKENIZER_FILE)
    with pytest.raises(ModelDirError, match="tokenizer.json is not a valid tokenizer"):
        Classifier.load(model_copy)


def test_labels_that_do_not_match_the_graph(model_copy: Path) -> None:
    labels = {"intents": ["a", "b", "c", "d"], "sentiments": ["negative", "neutral", "positive"]}
    modeldir.write_json(model_copy / modeldir.LABELS_FILE, labels)
    fix_hash(model_copy, modeldir.LABELS_FILE)
    with pytest.raises(ModelDirError, match="the graph has 3 intent outputs but labels.json lists 4 intents"):
        Classifier.load(model_copy)


def test_sentiment_labels_that_do_not_match_the_graph(model_copy: Path) -> None:
    labels = json.loads((model_copy / modeldir.LABELS_FILE).read_text())
    modeldir.write_json(model_copy / modeldir.LABELS_FILE, {**labels, "sentiments": ["negative", "positive"]})
    fix_hash(model_copy, modeldir.LABELS_FILE)
    with pytest.raises(ModelDirError, match="the graph has 3 sentiment outputs but labels.json lists 2 sentiments"):
        Classifier.load(model_copy)


def test_a_graph_that_wants_other_inputs_is_a_model_error(model_copy: Path) -> None:
    # A stock Hugging Face export also takes token_type_ids; the runtime feeds only two inputs.
    import onnx

    graph = onnx.load(str(model_copy / "model.onnx"))
    graph.graph.input.append(onnx.helper.make_tensor_value_info("token_type_ids", onnx.TensorProto.INT64,
                                                                ["batch", "sequence"]))
    onnx.save(graph, str(model_copy / "model.onnx"))
    fix_hash(model_copy, "model.onnx")
    with pytest.raises(ModelDirError) as info:
        Classifier.load(model_copy, variant="fp32")
    assert "inputs ['attention_mask', 'input_ids', 'token_type_ids']" in info.value.what
    assert "export it with `csbot train`" in info.value.fix


@pytest.mark.parametrize("broken", ["no-dir", "no-manifest", "bad-json", "no-labels"])
def test_incomplete_model_dirs(model_copy: Path, tmp_path: Path, broken: str) -> None:
    if broken == "no-dir":
        shutil.rmtree(model_copy)
        expected = "does not exist"
    elif broken == "no-manifest":
        (model_copy / modeldir.MANIFEST_FILE).unlink()
        expected = "is missing manifest.json"
    elif broken == "bad-json":
        (model_copy / modeldir.MANIFEST_FILE).write_text("{not json")
        expected = "manifest.json is not valid JSON"
    else:
        (model_copy / modeldir.LABELS_FILE).unlink()
        expected = "is missing labels.json"
    with pytest.raises(ModelDirError, match=expected) as info:
        Classifier.load(model_copy)
    assert isinstance(info.value, CsbotError) and info.value.fix


def test_unknown_provider_and_variant(tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="Unknown onnxruntime provider 'tpu'"):
        Classifier.load(tiny_model, provider="tpu")
    with pytest.raises(ModelDirError, match="has no 'int8' variant"):
        Classifier.load(tiny_model, provider="cpu", variant="int8")


def test_runtime_does_not_import_torch(tiny_model: Path) -> None:
    code = ("import sys; from models.runtime import Classifier; "
            f"c = Classifier.load({str(tiny_model)!r}, provider='cpu'); c.predict(['hi']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"
