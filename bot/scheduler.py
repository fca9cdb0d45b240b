"""The nightly retrain schedule, inside ``csbot serve``.

apscheduler's ``BackgroundScheduler`` fires ``RetrainScheduler.run_job`` on the cron expression
``CSBOT_RETRAIN_CRON`` (default ``0 2 * * *``) in ``CSBOT_TIMEZONE`` (default: the machine's local
zone). ``coalesce`` folds missed firings into one, ``misfire_grace_time`` lets a firing that was
late (the process was busy or asleep) still run within an hour, and ``max_instances=1`` plus an
in-process guard mean a trigger that arrives while a run is still going is skipped. Across
replicas, ``bot.learning.start_retrain`` takes a lock row in SQLite before launching anything,
so two replicas never train at once; it also skips (and records why) when nothing new came in.

The job itself runs in a child process (``python -m training retrain --trigger schedule``): a
crash or OOM there cannot take the bot down. When the child ends, the bot swaps in the new
active model (``Context.refresh_model``) and posts the report to the admins' channel.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot import learning, messages
from bot.config import Settings, parse_cron, resolve_timezone
from bot.store import Store
from models.errors import CsbotError

log = logging.getLogger("csbot.scheduler")

MISFIRE_GRACE_SECONDS = 3600


def make_trigger(settings: Settings) -> Any:
    # The parsing lives in bot.config, which checks both variables whenever settings load.
    zone = resolve_timezone(settings.timezone)  # first: its errors are the zone's, not the cron expression's
    return parse_cron(settings.retrain_cron, zone)


def next_retrain_time(settings: Settings, now: datetime | None = None) -> datetime | None:
    """When the schedule fires next after ``now`` (an aware datetime; default: now); None when it is off."""
    if not settings.retrain_scheduled:
        return None
    trigger = make_trigger(settings)
    now = (now or learning.system_clock()).astimezone(trigger.timezone)
    return trigger.get_next_fire_time(None, now)


def schedule_for_this_process(settings: Settings, **kwargs: Any) -> RetrainScheduler | None:
    """The started schedule, or None (and a log line saying why) where this process must not train:
    ``CSBOT_RETRAIN_CRON=off``, or a serving-only install without the training packages. Such a replica
    must not take the nightly lock from the one that can train and then fail."""
    if not settings.retrain_scheduled:
        log.info(messages.SCHEDULE_OFF)
        return None
    make_trigger(settings)  # a bad cron or time zone is an error even where it would not run
    if not learning.training_installed():
        log.warning(messages.SCHEDULE_NO_TRAINING)
        return None
    return RetrainScheduler(settings, **kwargs).start()


class RetrainScheduler:
    """The schedule of one bot process. ``context`` (a ``bot.context.Context``) gets the new
    model swapped in after a run; ``notify(run_row)`` reports it (default: post to the admins'
    channel when Slack is configured). ``clock`` is injectable for tests."""

    def __init__(self, settings: Settings, *, context: Any = None,
                 notify: Callable[[dict[str, Any]], Any] | None = None,
                 clock: learning.Clock = learning.system_clock,
                 misfire_grace_time: int = MISFIRE_GRACE_SECONDS, extra_args: tuple[str, ...] = ()) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.settings = settings
        self.context = context
        self.notify = notify
        self.clock = clock
        self.extra_args = extra_args
        self.trigger = make_trigger(settings)
        self.scheduler = BackgroundScheduler(
            timezone=self.trigger.timezone,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_time})
        self.job: Any = None
        self.last_result: dict[str, Any] | None = None
        self._busy = threading.Lock()
        self._stopping = threading.Event()  # set by shutdown: a job waiting on its child stops waiting
        self._last_fired: tuple[datetime, datetime] | None = None  # (local minute, when): the last firing

    def start(self) -> RetrainScheduler:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        self.job = self.scheduler.add_job(self.run_job, self.trigger, id="retrain", name="retrain",
                                          replace_existing=True)
        self.scheduler.add_listener(self._on_max_instances, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        log.info("retrain scheduled: %s (%s); next run %s", self.settings.retrain_cron,
                 self.trigger.timezone, self.next_run_time())
        return self

    def shutdown(self, wait: bool = False) -> None:
        self._stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)

    def next_run_time(self) -> datetime | None:
        if self.job is not None and self.scheduler.running:
            return self.job.next_run_time
        return self.trigger.get_next_fire_time(None, self.clock().astimezone(self.trigger.timezone))

    def fire_now(self) -> None:
        """Ask apscheduler to run the job at once (it still obeys max_instances)."""
        self.job.modify(next_run_time=datetime.now(self.trigger.timezone))

    def _repeated_wall_clock_minute(self) -> bool:
        """True for the second firing of one local time: when the clocks go back (autumn, 03:00 -> 02:00 in
        Europe), apscheduler fires "0 2 * * *" at 02:00 twice, an hour apart. One retrain a night is enough."""
        now = self.clock()
        local = now.astimezone(self.trigger.timezone).replace(tzinfo=None, second=0, microsecond=0)
        last = self._last_fired
        # Same local minute, but real time has moved on (by the hour the clocks went back).
        repeated = last is not None and last[0] == local and now - last[1] >= timedelta(minutes=30)
        self._last_fired = (local, now)
        return repeated

    def _wait(self, handle: learning.RetrainHandle) -> dict[str, Any] | None:
        """The finished run's row; None once shutdown asks. Waiting to the end would hold the stopping bot for as
        long as training takes (Python joins this thread at exit); the child records its own result, promotes if
        its gate passes, and the next start serves that model (only this process's report to Slack is lost)."""
        while not self._stopping.is_set():
            try:
                return handle.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
        log.warning("%s", messages.RETRAIN_LEFT_RUNNING_LOG.format(
            run_id=handle.run_id, pid=handle.process.pid if handle.process else "?"))
        return None

    def _skip(self, trigger: str, reason: str) -> dict[str, Any]:
        """A trigger skipped before a retrain could start: logged, and a training_runs row like every other skip, so
        `status` shows it. A database that refuses the row does not stop the schedule (the log keeps it)."""
        log.info("retrain trigger skipped: %s", reason)
        result: dict[str, Any] = {"status": "skipped", "reason": reason}
        try:
            with Store(self.settings.db_path) as store:
                result["id"] = learning.skip_run(store, trigger, reason, self.clock)
        except (CsbotError, sqlite3.Error) as exc:
            log.warning("the skipped trigger could not be recorded: %s", exc)
        return result

    def _on_max_instances(self, event: Any) -> None:
        """apscheduler refused a firing because the last one is still waiting on its child (max_instances=1)."""
        self._skip("schedule", messages.SKIP_PREVIOUS_RUNNING)

    def run_job(self, trigger: str = "schedule") -> dict[str, Any]:
        """One firing: start the retrain (or skip), wait for it, swap the model, report."""
        if trigger == "schedule" and self._repeated_wall_clock_minute():
            return self._skip(trigger, messages.SKIP_CLOCK_WENT_BACK)
        if not self._busy.acquire(blocking=False):
            return self._skip(trigger, messages.SKIP_PREVIOUS_RUNNING)
        try:
            handle = learning.start_retrain(self.settings, trigger, clock=self.clock, extra_args=self.extra_args)
            if not handle.started:
                result: dict[str, Any] = {"status": "skipped", "reason": handle.reason, "id": handle.run_id}
            else:
                result = self._wait(handle)
                if result is None:  # the bot is stopping: the run goes on in its own process
                    return {"status": "running", "reason": messages.RETRAIN_LEFT_RUNNING, "id": handle.run_id}
                if self.context is not None:
                    self.context.refresh_model_or_keep()
                if self.notify is not None:
                    self.notify(result)
                else:
                    learning.post_report(self.settings, result)
            self.last_result = result
            return result
        except Exception:
            log.exception("the retrain job could not run")
            raise
        finally:
            self._busy.release()
