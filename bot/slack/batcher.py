"""Grouping concurrent messages into one inference call.

One onnxruntime call on 16 texts costs little more than on one, so under load the
bot waits a couple of milliseconds for company before classifying. At low load the
wait is the only cost, and it is bounded by ``max_wait``. Several batches may be in
flight at once (``max_inflight``), so posting one batch's replies overlaps the next
batch's inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, process: Callable[[list[T]], Awaitable[None]], *, max_size: int = 32,
                 max_wait: float = 0.002, max_inflight: int = 4) -> None:
        self.process = process
        self.max_size = max_size
        self.max_wait = max_wait
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._held = 0  # items the runner has taken off the queue but not yet handed to a task

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    def submit(self, item: T) -> None:
        """Queue an item; never blocks, so the ack is not held up."""
        self._queue.put_nowait(item)

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._held + len(self._tasks)

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            self._held = 1  # drain() must not stop the runner while it holds this item
            await self._slots.acquire()  # while every slot is busy, more items queue up: bigger batches
            batch = [first]
            if self._queue.qsize() < self.max_size - 1 and self.max_wait > 0:
                await asyncio.sleep(self.max_wait)
            while len(batch) < self.max_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            task = asyncio.get_running_loop().create_task(self._one(batch))
            self._held = 0
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one(self, batch: list[T]) -> None:
        try:
            await self.process(batch)
        except Exception:  # one bad batch must not stop the batcher
            log.exception("processing a batch of %d failed", len(batch))
        finally:
            self._slots.release()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for queued and in-flight batches (at shutdown), then stop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._queue.qsize() or self._held or self._tasks) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
