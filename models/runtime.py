"""The serving classifier: onnxruntime plus the fast ``tokenizers`` library, no torch.

Providers are tried in the order CUDA, then CPU. ``get_available_providers()`` lists
CUDA whenever the GPU wheel is installed, even without a GPU or CUDA libraries, so
the provider in use is read back from the session (``Classifier.provider``).

``Classifier`` objects are immutable after loading and ``InferenceSession.run`` is
thread-safe, so one classifier serves many threads. ``LiveClassifier`` holds the
current one behind a single reference: a swap replaces the reference, and each
prediction reads it once, so it is computed by one whole model, old or new.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models import messages, modeldir
from models.errors import ModelDirError, ModelError

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


@dataclass(frozen=True)
class IntentScore:
    intent: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    intents: tuple[IntentScore, ...]  # top-k, most likely first
    sentiment: str
    sentiment_probs: dict[str, float]
    embedding: np.ndarray
    model_version: str

    @property
    def top(self) -> IntentScore:
        return self.intents[0]


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """One loaded model version: a tokenizer, an onnxruntime session and the labels."""

    def __init__(self, card: modeldir.ModelCard, provider: str = "auto", variant: str = "auto",
                 threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.card = card
        self.version = card.version
        try:
            tokenizer = Tokenizer.from_file(str(card.path / modeldir.TOKENIZER_FILE))
        except Exception as exc:
            raise ModelDirError(messages.TOKENIZER_INVALID.format(path=card.path / modeldir.TOKENIZER_FILE, error=exc),
                                messages.TOKENIZER_INVALID_FIX) from exc
        tokenizer.enable_truncation(card.max_length)
        if tokenizer.padding is None:  # training saves its pad token; older files may lack it
            tokenizer.enable_padding()
        self._tokenizer = tokenizer
        providers = _provider_list(provider)
        self.variant = "fp32" if variant == "auto" else variant
        path = card.onnx_path(self.variant)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        self._session = _load_session(path, opts, providers, quiet=provider == "auto")
        self.provider = self._session.get_providers()[0]
        if variant == "auto" and self.provider == CPU and "int8" in card.variants:
            # int8 only helps on CPU, and only exists when it passed its accuracy check.
            self.variant = "int8"
            self._session = _load_session(card.onnx_path("int8"), opts, [CPU], quiet=False)
        if provider == "cuda" and self.provider != CUDA:
            log.warning("%s", messages.CUDA_NOT_USED.format(provider=self.provider))
        self._check_outputs()

    @classmethod
    def load(cls, path: str | Path, provider: str = "auto", variant: str = "auto", threads: int = 0
             ) -> Classifier:
        return cls(modeldir.read(path), provider=provider, variant=variant, threads=threads)

    @property
    def intents(self) -> tuple[str, ...]:
        return self.card.intents

    @property
    def device(self) -> str:
        return "CUDA" if self.provider == CUDA else "CPU"

    def _check_outputs(self) -> None:
        names = [o.name for o in self._session.get_outputs()]
        inputs = sorted(i.name for i in self._session.get_inputs())
        if names[:3] != ["intent_logits", "sentiment_logits", "embedding"] or inputs != ["attention_mask",
                                                                                          "input_ids"]:
            raise ModelDirError(messages.GRAPH_SIGNATURE.format(path=self.card.path, inputs=inputs, outputs=names),
                                messages.GRAPH_SIGNATURE_FIX)
        try:
            probe = self._run(["hello"])
        except Exception as exc:  # onnxruntime's own errors: a shape or type the graph does not take
            raise ModelDirError(messages.GRAPH_FAILS.format(path=self.card.path, error=exc),
                                messages.GRAPH_FAILS_FIX) from exc
        for output, labels, kind in ((probe[0], self.card.intents, "intent"),
                                     (probe[1], self.card.sentiments, "sentiment")):
            if output.shape[-1] != len(labels):
                raise ModelDirError(
                    messages.GRAPH_LABELS_MISMATCH.format(path=self.card.path, outputs=output.shape[-1], kind=kind,
                                                          count=len(labels)),
                    messages.GRAPH_LABELS_MISMATCH_FIX)

    def _run(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self._session.run(None, {"input_ids": ids, "attention_mask": mask})

    def logits(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not texts:
            return np.zeros((0, len(self.intents))), np.zeros((0, 3)), np.zeros((0, 0))
        out = self._run(texts)
        return out[0], out[1], out[2]

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        """Classify a batch. Texts should already be normalised (see ``bot.normalize``)."""
        intent_logits, sentiment_logits, embeddings = self.logits(texts)
        intent_p, sentiment_p = softmax(intent_logits), softmax(sentiment_logits)
        k = max(1, min(top_k, len(self.intents)))
        results = []
        for i in range(len(texts)):
            order = np.argsort(-intent_p[i])[:k]
            s = int(sentiment_p[i].argmax())
            results.append(Prediction(
                intents=tuple(IntentScore(self.intents[j], float(intent_p[i, j])) for j in order),
                sentiment=self.card.sentiments[s],
                sentiment_probs={name: float(sentiment_p[i, j]) for j, name in enumerate(self.card.sentiments)},
                embedding=embeddings[i],
                model_version=self.version,
            ))
        return results


class LiveClassifier:
    """The active classifier of a running process, replaceable without a restart."""

    def __init__(self, classifier: Classifier) -> None:
        self._current = classifier
        self._lock = threading.Lock()

    @property
    def current(self) -> Classifier:
        return self._current

    def swap(self, classifier: Classifier) -> Classifier:
        """Install a new classifier; in-flight predictions finish on the old one."""
        with self._lock:
            old, self._current = self._current, classifier
        log.info("model swapped: %s -> %s (%s)", old.version, classifier.version, classifier.provider)
        return old

    def predict(self, texts: Sequence[str], top_k: int = 3) -> list[Prediction]:
        return self._current.predict(texts, top_k)


def _load_session(path: Path, opts: object, providers: list[str], quiet: bool) -> Any:
    """A session for ``path``, or ModelError saying the file cannot be used (never onnxruntime's traceback)."""
    try:
        return _create_session(str(path), opts, providers, quiet=quiet)
    except Exception as exc:
        raise ModelError(
            messages.SESSION_FAILED.format(path=path, error=str(exc).splitlines()[0][:300]),
            messages.SESSION_FAILED_FIX,
        ) from exc


def _create_session(path: str, opts: object, providers: list[str], quiet: bool) -> object:
    """Create a session. In auto mode, ORT's own error about missing CUDA libraries is
    silenced: falling back to CPU is expected there, and we report the provider used."""
    import onnxruntime as ort

    if not quiet or providers == [CPU]:
        return ort.InferenceSession(path, opts, providers=providers)
    ort.set_default_logger_severity(4)
    try:
        return ort.InferenceSession(path, opts, providers=providers)
    finally:
        ort.set_default_logger_severity(2)


def _provider_list(provider: str) -> list[str]:
    if provider not in ("auto", "cuda", "cpu"):
        raise ModelError(messages.PROVIDER_UNKNOWN.format(provider=provider), messages.PROVIDER_UNKNOWN_FIX)
    if provider == "cpu":
        return [CPU]
    import onnxruntime as ort

    return [CUDA, CPU] if CUDA in ort.get_available_providers() else [CPU]
