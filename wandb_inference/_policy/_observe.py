"""A hook for code that runs many calls and reports on them: `RETRY_OBSERVER`.

Set it in a context, and every call made in that context (tasks created from it;
`contextvars.copy_context().run` in threads) tells it about each failed attempt: the
batch runner counts the 429s the retries absorbed. `RetryState.decide` reads it only
when an attempt failed (this module loads with the first failure): free on the success
path, and nothing for a client that never sees one.
"""

from __future__ import annotations

import contextvars
from typing import Protocol

__all__ = ["RETRY_OBSERVER", "RetryObserver"]


class RetryObserver(Protocol):
    """Told about every failed attempt of the calls made in its context (see `RETRY_OBSERVER`)."""

    def on_failed_attempt(self, error: BaseException, retried: bool) -> None:
        """`error` ended an attempt; `retried`: the call tries again."""


RETRY_OBSERVER: contextvars.ContextVar[RetryObserver | None] = contextvars.ContextVar(
    "wandb_inference_retry_observer", default=None
)
