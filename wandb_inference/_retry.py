"""The retry policy: what is retried, how long to wait, when to give up. Pure decisions.

Retried (the request never produced anything the caller saw):
- 429 concurrency limit (`RateLimitError`), 500, 502, 503, 504, 529;
- connection failures before any response: refused, reset, DNS, "server disconnected",
  connect and pool timeouts.

Never retried: quota 429 / 402, personal-account 429, other 4xx, read and write
timeouts (the service may already be generating, and billing, the reply), and a stream
once its first event has reached the caller.

Waits: the server's `retry-after-ms` / `Retry-After` when sent (a value above
`max_retry_after` gives up at once rather than sleeping for minutes), else exponential
backoff with full jitter. Bounded by `max_retries` and by `total_timeout` (wall time of
all attempts and waits).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from ._lazy import lazy_module

if TYPE_CHECKING:
    from . import _exceptions
else:
    _exceptions = lazy_module("wandb_inference._exceptions")  # loaded by the first error

__all__ = ["RetryDecision", "RetryPolicy", "RetryState", "is_retryable_error"]

_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504, 529})
_RETRYABLE_TRANSPORT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
)


def _check_non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        raise ValueError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How the client retries. The defaults suit W&B Inference's concurrency limits.

    Attributes:
        max_retries: retries after the first attempt (so at most max_retries + 1 attempts).
        initial_delay: backoff base in seconds (first retry waits up to this much).
        max_delay: backoff ceiling in seconds, before jitter.
        max_retry_after: the longest server-requested wait honoured; a longer
            `Retry-After` gives up at once with the error (its `.retry_after` tells when).
        total_timeout: wall-clock bound in seconds for all attempts and waits together
            (None: only `max_retries` bounds). A wait that would cross it is not taken.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    total_timeout: float | None = 180.0

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
            raise ValueError(f"max_retries must be an int between 0 and 100, got {retries!r}")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            _check_non_negative(name, getattr(self, name))
        total = self.total_timeout
        if total is not None and (isinstance(total, bool) or not isinstance(total, int | float) or not total > 0):
            raise ValueError(f"RetryPolicy.total_timeout must be None or > 0, got {total!r}")

    def backoff(self, retry_number: int, rng: Callable[[], float] = random.random) -> float:
        """The jittered wait before retry `retry_number` (1-based) when no hint was sent."""
        ceiling = min(self.max_delay, self.initial_delay * (2.0 ** max(0, retry_number - 1)))
        return ceiling * rng()


class RetryDecision:
    """What to do after a failed attempt: wait `delay` seconds and retry, or give up."""

    __slots__ = ("delay", "reason", "retry")

    def __init__(self, retry: bool, delay: float = 0.0, reason: str = "") -> None:
        self.retry = retry
        self.delay = delay
        self.reason = reason

    def __repr__(self) -> str:
        return f"RetryDecision(retry={self.retry!r}, delay={self.delay!r}, reason={self.reason!r})"


def is_retryable_error(error: BaseException) -> bool:
    """Whether a failed attempt may be retried (before any body reached the caller)."""
    if isinstance(error, _exceptions.APIStatusError):
        if isinstance(error, _exceptions.RateLimitError | _exceptions.ServiceUnavailableError):
            return True
        return error.status_code in _RETRYABLE_STATUSES
    return isinstance(error, _RETRYABLE_TRANSPORT)


class RetryState:
    """The retry bookkeeping of one logical request (one per call, never shared)."""

    __slots__ = ("clock", "policy", "retries", "rng", "started")

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        retries: int = 0,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.rng = rng
        self.retries = retries
        self.started = clock()

    def decide(self, error: BaseException) -> RetryDecision:
        """Decide whether to retry after `error` (an APIStatusError or httpx error)."""
        if not is_retryable_error(error):
            return RetryDecision(False, reason="not retryable")
        if self.retries >= self.policy.max_retries:
            return RetryDecision(False, reason=f"max_retries={self.policy.max_retries} reached")
        hint = error.retry_after if isinstance(error, _exceptions.APIStatusError) else None
        if hint is not None:
            if hint > self.policy.max_retry_after:
                return RetryDecision(
                    False,
                    reason=f"server asked to wait {hint:g}s > max_retry_after={self.policy.max_retry_after:g}s",
                )
            delay = hint
        else:
            delay = self.policy.backoff(self.retries + 1, self.rng)
        if self.policy.total_timeout is not None:
            elapsed = self.clock() - self.started
            if elapsed + delay > self.policy.total_timeout:
                return RetryDecision(
                    False,
                    reason=f"total_timeout={self.policy.total_timeout:g}s would be exceeded",
                )
        self.retries += 1
        return RetryDecision(True, delay=max(0.0, delay), reason="retryable")
