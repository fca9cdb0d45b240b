"""Assembling the running bot from settings: store, knowledge base, active model.

Also the first-run path: when no model is active yet, the default model is trained
on the knowledge base in a child process (``python -m training train``), with its
progress bar on the terminal, and registered as the first version.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from bot import messages
from bot.config import Settings
from bot.knowledge import KnowledgeBase, default_path, load_knowledge_base
from bot.service import Bot
from bot.store import Store
from models.errors import CsbotError, ModelError
from models.registry import Registry
from models.runtime import Classifier, LiveClassifier

log = logging.getLogger(__name__)


def training_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "training", *args]


def ensure_model(settings: Settings, store: Store) -> str:
    """Return the active version, training the first one if there is none."""
    registry = Registry(settings.models_dir, store)
    if registry.active():
        return registry.active()  # type: ignore[return-value]
    print(messages.FIRST_MODEL_TRAINING, flush=True)
    code = subprocess.call(training_command("train", "--activate"))
    if code != 0 or not registry.active():
        raise ModelError(messages.FIRST_MODEL_FAILED, messages.FIRST_MODEL_FAILED_FIX)
    return registry.active()  # type: ignore[return-value]


@dataclass
class Context:
    settings: Settings
    store: Store
    kb: KnowledgeBase
    registry: Registry
    live: LiveClassifier
    bot: Bot
    _kb_stamp: tuple[int, int] | None = field(default=None, init=False, repr=False)  # the file as last read

    @classmethod
    def open(cls, settings: Settings, *, train_if_missing: bool = False) -> Context:
        store = Store(settings.db_path)
        kb_stamp = _file_stamp(settings.kb_path)  # before reading: an edit made during the read is seen next time
        kb = load_knowledge_base(settings.kb_path)
        registry = Registry(settings.models_dir, store)
        if train_if_missing:
            ensure_model(settings, store)
        version = registry.active()
        if version is None:
            raise ModelError(messages.NO_ACTIVE_MODEL, messages.NO_ACTIVE_MODEL_FIX)
        live = LiveClassifier(load_classifier(settings, registry.path(version)))
        log.info("model %s loaded on %s (%s)", version, live.current.device, live.current.provider)
        context = cls(settings, store, kb, registry, live, Bot(kb, store, live, settings.max_message_chars))
        context._kb_stamp = kb_stamp
        return context

    def refresh_model(self) -> bool:
        """Swap in the active version if another process changed it; True if swapped."""
        version = self.registry.active()
        if version is None or version == self.live.current.version:
            return False
        classifier = load_classifier(self.settings, self.registry.path(version))
        self._reload_knowledge_base()  # first: the new version may know an intent the old file lacks
        self.live.swap(classifier)
        return True

    def refresh_knowledge_base(self) -> bool:
        """Re-read the knowledge-base file if it changed on disk; True if the new one is in use.

        A support lead who fixes an answer expects the bot to give it at once, not after the next retrain. The
        answers, links, titles, handoff flags and company texts apply at once; a new intent is answered once a
        model trained on it is active (a predicted intent the file dropped is handed over by the router). An
        invalid file is logged and the one loaded before keeps serving.
        """
        if _file_stamp(self.settings.kb_path) == self._kb_stamp:
            return False
        return self._reload_knowledge_base()  # records the new stamp: an invalid edit is reported once

    def refresh_model_or_keep(self) -> None:
        """``refresh_model`` after a retrain: a new version that does not load is logged, never raised,
        and the current one goes on serving."""
        try:
            self.refresh_model()
        except Exception:
            log.exception(messages.NEW_MODEL_UNLOADABLE.format(version=self.registry.active(),
                                                               current=self.live.current.version))

    def _reload_knowledge_base(self) -> bool:
        """A new version is usually trained on an edited knowledge base (new intents, new answers)."""
        self._kb_stamp = _file_stamp(self.settings.kb_path)
        try:
            kb = load_knowledge_base(self.settings.kb_path)
        except CsbotError as error:  # a half-edited file must not stop the swap or serving
            log.warning("%s", messages.KB_RELOAD_KEPT.format(error=error))
            return False
        self.kb = kb
        self.bot.kb = kb
        log.info("%s", messages.KB_RELOADED.format(path=kb.path, intents=len(kb.intents)))
        return True

    def watch_model(self, interval: float = 5.0) -> threading.Event:
        """Poll the registry pointer in a daemon thread; set the returned event to stop."""
        stop = threading.Event()

        failed: set[str] = set()  # active versions that would not load: tried once, not every few seconds

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    version = self.registry.active()
                except Exception as exc:  # the database busy or moved for a moment: look again next time
                    log.warning("could not read the active model version (%s); serving %s", exc,
                                self.live.current.version)
                    continue
                try:
                    self.refresh_knowledge_base()
                except Exception:  # whatever the file holds, the watcher must outlive it
                    log.exception("re-reading the knowledge base failed; the one loaded before keeps serving")
                if version in failed:
                    continue
                try:
                    self.refresh_model()
                except Exception:  # a bad new version must not stop serving the current one
                    failed.add(str(version))
                    log.exception(messages.NEW_MODEL_UNLOADABLE.format(version=version,
                                                                       current=self.live.current.version))

        threading.Thread(target=loop, name="model-watch", daemon=True).start()
        return stop


def load_classifier(settings: Settings, path: Path) -> Classifier:
    return Classifier.load(path, provider=settings.onnx_provider, variant=settings.onnx_variant,
                           threads=settings.threads)


def _file_stamp(path: Path | None) -> tuple[int, int] | None:
    """(mtime in ns, size) of the knowledge-base file, or None when it cannot be read (then nothing is reloaded)."""
    try:
        found = (Path(path) if path else default_path()).stat()
    except OSError:
        return None
    return found.st_mtime_ns, found.st_size
