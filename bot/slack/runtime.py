"""What every Slack handler needs: the bot context, the Web API client, metrics and a thread pool.

The store and the classifier are synchronous (SQLite, onnxruntime), so the event
loop hands them to a small thread pool; the loop itself only parses, acks and does
network I/O. A bounded pool also bounds the number of SQLite connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.context import Context
from bot.slack.metrics import Metrics

log = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass
class Runtime:
    ctx: Context
    client: AsyncWebClient
    metrics: Metrics
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="csbot"))
    bot_user_id: str | None = None
    team_url: str = ""

    async def in_thread(self, func: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Call a Web API method; on failure log it, count it and return None.

        A failed post must not take the batch or the process down with it; the
        rate-limit retry handler has already retried what can be retried.
        """
        try:
            # The named methods know each API's encoding (JSON for writes, query for reads).
            response = await getattr(self.client, method.replace(".", "_"))(**kwargs)
            return dict(response.data) if isinstance(response.data, dict) else {}
        except SlackApiError as exc:
            log.warning("Slack %s failed: %s", method, exc.response.get("error"))
        except Exception as exc:  # network errors: aiohttp, timeouts
            log.warning("Slack %s failed: %r", method, exc)
        self.metrics.inc("csbot_slack_api_errors_total", method=method)
        return None
