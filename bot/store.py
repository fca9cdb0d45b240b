"""The conversation store: everything csbot observes and decides, in one SQLite file.

- One ``sqlite3`` connection per thread (``threading.local``) wrapped in a ``sqlite_utils.Database``:
  a connection must not be shared by threads mid-transaction, and Slack handlers run on a thread
  pool. After ``fork`` a fresh connection is opened so a child never reuses the parent's locks.
- WAL journal mode lets readers carry on while one writer commits, and lets several replica
  processes share the file; ``busy_timeout`` makes a blocked writer wait instead of failing.
- Connections are in autocommit mode and every write goes through ``transaction()``, which issues
  ``BEGIN IMMEDIATE``: the write lock is taken up front, so concurrent writers queue on the busy
  timeout. A deferred transaction that later upgrades to a writer can instead get SQLITE_BUSY
  at once, which the busy handler cannot retry.
- Writes are plain SQL rather than ``Table.insert``: older sqlite-utils wraps that in
  ``with conn:``, which would commit our transaction half way.
- The schema is a list of migrations (``bot.migrations``) applied on open.

``Store`` is assembled from one mixin per concern, each in its own module: connections,
transactions and migrations (``bot.store_core``), conversations, messages and replies
(``bot.store_messages``), votes, corrections, labels and the review queue (``bot.store_feedback``),
Slack event de-duplication and the key-value table (``bot.store_state``), and purge and backup
(``bot.store_retention``). Everything is re-exported here, so ``from bot.store import ...`` is the
one import the rest of the code needs.
"""

from __future__ import annotations

from bot.store_core import Params, Row, StoreBase, iso, utcnow
from bot.store_core import _check as _check
from bot.store_core import _insert as _insert
from bot.store_core import _scalar as _scalar
from bot.store_feedback import FEEDBACK_SOURCES, LABEL_SOURCES, NEW_TOPIC, FeedbackMixin, typed_intent
from bot.store_messages import _REPLY_SELECT as _REPLY_SELECT
from bot.store_messages import CONVERSATION_SOURCES, DECISIONS, REPLY_KINDS, MessagesMixin
from bot.store_retention import _AGE as _AGE
from bot.store_retention import _AGE_UNITS as _AGE_UNITS
from bot.store_retention import RetentionMixin, parse_age
from bot.store_state import StateMixin

__all__ = [
    "CONVERSATION_SOURCES", "DECISIONS", "FEEDBACK_SOURCES", "LABEL_SOURCES", "NEW_TOPIC", "REPLY_KINDS",
    "Params", "Row", "Store", "iso", "parse_age", "typed_intent", "utcnow",
]


class Store(MessagesMixin, FeedbackMixin, StateMixin, RetentionMixin, StoreBase):
    """The whole store: open it with ``Store(path)`` (or ``with Store(path) as store:``)."""
