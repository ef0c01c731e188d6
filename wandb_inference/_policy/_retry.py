"""The retry policy: what is retried, how long to wait, when to give up. Pure decisions.

Retried (the request never produced anything the caller saw):
- 429 concurrency limit (`RateLimitError`), 500, 502, 503, 504, 529;
- transport failures that prove the request was not processed: refused, DNS, connect
  and pool timeouts, a write that failed before the request was fully sent;
- for idempotent requests only (`GET /models`): a connection reset or "server
  disconnected" after the request was sent.

Never retried: quota 429 / 402, personal-account 429, other 4xx, read and write
timeouts, a chat or embeddings POST whose connection broke after it was sent (the
service may already be generating, and billing, the reply: the error says it may have
been processed), and a stream once its first event has reached the caller.

Waits: the server's `retry-after-ms` / `Retry-After` when sent (a value above
`max_retry_after` gives up at once rather than sleeping for minutes), else exponential
backoff with full jitter. Bounded by `max_retries` and by `total_timeout`: the wall time
of all attempts and waits together, until the reply is read (or, for a stream, until its
response arrived). Each attempt gets the time that remains (`RetryState.attempt_timeouts`).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from wandb_inference._lazy import lazy_module

if TYPE_CHECKING:
    from wandb_inference import _exceptions

    from . import _observe
else:
    _exceptions = lazy_module("wandb_inference._exceptions")  # loaded by the first error
    _observe = lazy_module("wandb_inference._policy._observe")  # and the observer hook

__all__ = [
    "RetryDecision",
    "RetryPolicy",
    "RetryState",
    "is_retryable_error",
    "may_have_been_processed",
]

_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504, 529})
# Retries of concurrency 429s the adaptive gate absorbs (`RetryState.decide(free=...)`)
# are not counted against `max_retries` for this long after the call's first one (the
# call is waiting for the service's capacity, as it would for one of the gate's slots),
# and at most this many times a call (the gate paces them: at most one per request of
# ours that ends, or per pause when others hold the whole limit).
FREE_RETRY_WINDOW = 60.0
MAX_FREE_RETRIES = 1000
# Transport failures that prove the server did not receive the whole request (so cannot
# have processed it): safe to retry for any method.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
    httpx.LocalProtocolError,
    httpx.UnsupportedProtocol,
)
_RETRYABLE_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError)
# Failures after the request went out: the server may have processed it. Retried only
# for idempotent requests.
_RETRYABLE_IF_IDEMPOTENT = (httpx.RemoteProtocolError, httpx.ReadError)


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
        total_timeout: wall-clock bound in seconds for the whole call: every attempt,
            every wait for a concurrency slot and between retries, and the reading of a
            non-streamed reply (a stream: until its response arrived; its chunks are then
            bounded by the read timeout). Each attempt's timeouts are cut to what remains;
            a wait that would cross it is not taken; when it passes the call raises
            `APITimeoutError`. None: only `max_retries` and the per-attempt timeouts bound.
            The default (900 s) leaves room for one attempt's full default read timeout
            (600 s: reasoning models are slow) plus retries.
    """

    max_retries: int = 3
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    total_timeout: float | None = 900.0

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


def is_retryable_error(error: BaseException, *, idempotent: bool = False) -> bool:
    """Whether a failed attempt may be retried (before any body reached the caller).

    Args:
        error: an `APIStatusError` or an httpx error from sending the request.
        idempotent: the request may safely be processed twice (`GET /models`). A chat or
            embeddings POST is not: it is re-sent only when the failure proves it was not
            processed (see `may_have_been_processed`).
    """
    if isinstance(error, _exceptions.APIStatusError):
        if isinstance(error, _exceptions.RateLimitError | _exceptions.ServiceUnavailableError):
            return True
        return error.status_code in _RETRYABLE_STATUSES
    if isinstance(error, _RETRYABLE_NOT_SENT):
        return True
    return idempotent and isinstance(error, _RETRYABLE_IF_IDEMPOTENT)


def may_have_been_processed(error: BaseException) -> bool:
    """Whether the server may have received (and acted on) a request that failed this way.

    False only for failures that prove the request never fully left the client: connect
    errors and timeouts, pool timeouts, a write that failed or timed out, a request httpx
    refused to send.
    """
    return not isinstance(error, _NOT_SENT)


class RetryState:
    """The retry bookkeeping of one logical request (one per call, never shared)."""

    __slots__ = ("clock", "deadline", "free_retries", "free_until", "policy", "retries", "rng", "started")

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
        self.free_retries = 0
        self.free_until: float | None = None
        self.started = clock()
        total = policy.total_timeout
        self.deadline = None if total is None else self.started + total

    def remaining(self) -> float | None:
        """Seconds left before `total_timeout` (None: no total bound; may be <= 0)."""
        deadline = self.deadline
        return None if deadline is None else deadline - self.clock()

    def expired(self, slack: float = 0.0) -> bool:
        """Whether `total_timeout` has passed (within `slack` seconds)."""
        deadline = self.deadline
        return deadline is not None and self.clock() >= deadline - slack

    def attempt_timeouts(self, timeouts: dict[str, float | None] | None) -> dict[str, float | None] | None:
        """An attempt's httpx timeouts cut to the time remaining (None: leave them as they are).

        Raises:
            APITimeoutError: no time remains.
        """
        remaining = self.remaining()
        if remaining is None:
            return None
        if remaining <= 0:
            raise self.deadline_error("before the request could be sent")
        if not timeouts:
            return {"connect": remaining, "read": remaining, "write": remaining, "pool": remaining}
        return {name: remaining if value is None or value > remaining else value for name, value in timeouts.items()}

    def deadline_error(
        self, when: str, request: object = None, *, processed: bool = False
    ) -> _exceptions.APITimeoutError:
        """The error for a call that ran out of `total_timeout`.

        Args:
            when: what the call was doing, for the message.
            request: the request, kept (redacted) on the error.
            processed: the request had been sent (its reply was being awaited or read):
                the error's `may_have_been_processed`.
        """
        total = self.policy.total_timeout
        tries = f" after {self.retries} retr{'y' if self.retries == 1 else 'ies'}" if self.retries else ""
        error = _exceptions.APITimeoutError(
            f"The call's total_timeout={total:g}s passed {when}{tries}. Raise "
            "RetryPolicy(total_timeout=...) for slow replies, or use stream=True (a stream's "
            "chunks are bounded by the read timeout only).",
            request=request,  # type: ignore[arg-type]
        )
        error.may_have_been_processed = processed
        return error

    def decide(
        self,
        error: BaseException,
        *,
        idempotent: bool = False,
        free: bool = False,
        free_window: float | None = None,
    ) -> RetryDecision:
        """Decide whether to retry after `error` (an APIStatusError or httpx error).

        Args:
            error: what the attempt ended with.
            idempotent: the request may safely be processed twice.
            free: a concurrency 429 the adaptive gate absorbs: its own probe of the
                service's limit was refused, or the gate holds the retry (until one of
                the client's own requests finishes, or until a pause ends when others
                hold the whole limit). Retried without counting against `max_retries`
                for `free_window` seconds after the call's first absorbed 429 (at most
                `MAX_FREE_RETRIES` times), then counted as any other retry.
            free_window: that window (None: `FREE_RETRY_WINDOW`); the clients pass the
                request's pool timeout, the bound of a wait for a slot.

        The context's `_observe.RETRY_OBSERVER`, if any, is told about the attempt and the
        decision.
        """
        if free:
            free = self._free(free_window)
        decision = self._decide(error, idempotent, free)
        observer = _observe.RETRY_OBSERVER.get()
        if observer is not None:
            observer.on_failed_attempt(error, decision.retry)
        return decision

    def _free(self, window: float | None) -> bool:
        """Whether an absorbed 429 is still free (within the window, under the cap)."""
        now = self.clock()
        if self.free_until is None:
            self.free_until = now + (FREE_RETRY_WINDOW if window is None else window)
        return now < self.free_until and self.free_retries < MAX_FREE_RETRIES

    def _decide(self, error: BaseException, idempotent: bool, free: bool) -> RetryDecision:
        if not is_retryable_error(error, idempotent=idempotent):
            if not isinstance(error, _exceptions.APIStatusError) and may_have_been_processed(error):
                return RetryDecision(False, reason="the request may have been processed")
            return RetryDecision(False, reason="not retryable")
        counted = not free
        if counted and self.retries >= self.policy.max_retries:
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
        if self.deadline is not None and self.clock() + delay >= self.deadline:
            return RetryDecision(False, reason=f"total_timeout={self.policy.total_timeout:g}s would be exceeded")
        if not counted:
            self.free_retries += 1
            return RetryDecision(True, delay=max(0.0, delay), reason="absorbed by the concurrency gate")
        self.retries += 1
        return RetryDecision(True, delay=max(0.0, delay), reason="retryable")
