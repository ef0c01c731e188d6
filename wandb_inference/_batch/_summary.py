"""A job's counts as it runs (`BatchStats`) and at the end (`BatchSummary`). Pure.

Latencies go into a log-bucketed histogram (2% wide buckets): p50/p95 to within 2%, in
a fixed few kilobytes however many requests run.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Final, final

import attrs

from wandb_inference._exceptions import RateLimitError

if TYPE_CHECKING:
    from wandb_inference._exceptions import WandbInferenceError

    from ._result import BatchResult

__all__ = ["BatchStats", "BatchSummary", "LatencyHistogram"]

_RATIO: Final = 1.02
_FLOOR: Final = 1e-4  # 0.1 ms: the first bucket holds everything faster


@final
class LatencyHistogram:
    """Counts of latencies in buckets 2% wide; quantiles read from them."""

    __slots__ = ("_counts", "count")

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self.count = 0

    def add(self, seconds: float) -> None:
        """Record one latency."""
        index = 0 if seconds <= _FLOOR else 1 + int(math.log(seconds / _FLOOR, _RATIO))
        self._counts[index] = self._counts.get(index, 0) + 1
        self.count += 1

    def quantile(self, q: float) -> float | None:
        """The latency below which a fraction `q` of them fall (None when empty)."""
        if not self.count:
            return None
        wanted = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= wanted:
                # The bucket's geometric middle.
                return _FLOOR if index == 0 else _FLOOR * _RATIO ** (index - 0.5)
        raise AssertionError("unreachable")  # pragma: no cover


@final
class BatchStats:
    """A running job's counts; the retry observer of its calls (429s absorbed).

    Attributes:
        total: requests the job has to send (None: not known, e.g. an iterator).
        done_before: requests skipped because a result for them was already written.
        invalid: input lines skipped as invalid or duplicate.
        succeeded / failed: results of this run.
        requeued: requests sent again because the first try was certainly not processed.
        rate_limited: concurrency 429s met by this job's calls (retried or not).
        retries: attempts the client retried.
        prompt_tokens / completion_tokens: usage summed over successes.
    """

    def __init__(self, total: int | None = None) -> None:
        self.total = total
        self.done_before = 0
        self.invalid = 0
        self.invalid_in_total = 0  # of `invalid`, those counted in `total` (found while running)
        self.succeeded = 0
        self.failed = 0
        self.requeued = 0
        self.rate_limited = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency = LatencyHistogram()
        self.started = time.monotonic()
        self.notes: list[str] = []

    @property
    def finished(self) -> int:
        """Results of this run so far (succeeded + failed)."""
        return self.succeeded + self.failed

    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.monotonic() - self.started

    def on_failed_attempt(self, error: BaseException, retried: bool) -> None:
        """The `RetryObserver` hook: every failed attempt of the job's calls."""
        if isinstance(error, RateLimitError):
            self.rate_limited += 1
        if retried:
            self.retries += 1

    def record(self, result: BatchResult) -> None:
        """Count one result."""
        self.latency.add(result.latency)
        if result.error is not None:
            self.failed += 1
            return
        self.succeeded += 1
        usage = getattr(result.response, "usage", None)
        if usage is not None:
            self.prompt_tokens += getattr(usage, "prompt_tokens", None) or 0
            self.completion_tokens += getattr(usage, "completion_tokens", None) or 0

    def summary(self, *, not_sent: int, stopped: str | None, error: WandbInferenceError | None = None) -> BatchSummary:
        """The summary of the job as it stands."""
        return BatchSummary(
            total=self.total,
            done_before=self.done_before,
            invalid=self.invalid,
            succeeded=self.succeeded,
            failed=self.failed,
            not_sent=not_sent,
            requeued=self.requeued,
            rate_limited=self.rate_limited,
            retries=self.retries,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            wall_time=self.elapsed(),
            p50_latency=self.latency.quantile(0.5),
            p95_latency=self.latency.quantile(0.95),
            stopped=stopped,
            error=error,
            notes=tuple(self.notes),
        )


@final
@attrs.frozen(kw_only=True)
class BatchSummary:
    """What a batch job did.

    Attributes:
        total: requests to send when the job started (lines not yet done; None when the
            input's length was not known).
        done_before: lines skipped because the output or errors file already had them.
        invalid: input lines skipped as invalid or duplicate (`skip_invalid`).
        succeeded: results written to the output (or yielded) by this run.
        failed: failures written to the errors file (or yielded) by this run.
        not_sent: requests this run did not finish (stopped early); a re-run sends them.
        requeued: requests sent again after a failure that proves they were not processed.
        rate_limited: concurrency 429s met (absorbed by retries unless a line failed).
        retries: attempts retried by the client.
        prompt_tokens / completion_tokens: usage of the successes.
        wall_time: seconds the job ran.
        p50_latency / p95_latency: seconds per request (None if none finished).
        stopped: why the job stopped early: `interrupted`, `cancelled`, `error` (a job
            error: see `error`), or None when it ran to the end.
        error: the error that stopped the job (quota, key, project, unreachable service).
        notes: what the job noticed about its files (a torn last line cut off, results
            for `custom_id`s the input does not have, an errors file moved aside).
    """

    total: int | None
    done_before: int
    invalid: int
    succeeded: int
    failed: int
    not_sent: int
    requeued: int
    rate_limited: int
    retries: int
    prompt_tokens: int
    completion_tokens: int
    wall_time: float
    p50_latency: float | None
    p95_latency: float | None
    stopped: str | None = None
    error: WandbInferenceError | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every request of the job succeeded and none is left to send."""
        return self.failed == 0 and self.not_sent == 0 and self.stopped is None

    @property
    def throughput(self) -> float:
        """Results per second of wall time."""
        finished = self.succeeded + self.failed
        return finished / self.wall_time if self.wall_time > 0 else 0.0
