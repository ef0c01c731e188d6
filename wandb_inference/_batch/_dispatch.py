"""Which request goes next, and what a result means for the job. Pure: no I/O, no clock
of its own (the drivers pass `time.monotonic`).

The drivers (`_async`, `_sync`) feed requests in (`add`, up to a small lookahead),
start what `take` gives them, and report each outcome (`finished`). The dispatcher:

- never has more than `max_in_flight` requests out, and for each model starts one only
  while the client's concurrency gate has room for it (`room(model)`: the gate's limit
  minus what is in flight, as it adapts to 429s), so requests do not queue inside the
  gate where their slot wait could time out; one request per model always may go (the
  gate then bounds its wait), so a gate held by someone else cannot stall the job;
- looks past a request whose model has no room to one whose model has (lookahead);
- sends again, after a wait, a request whose failure proves it was not processed
  (`_result.classify`: "requeue"), at most `max_requeues` times;
- stops on a job error (quota, key, project), or after `unreachable_limit` failures in
  a row that say the service cannot be reached; in-flight requests still finish.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, final

from ._result import BatchResult, classify, is_unreachable

if TYPE_CHECKING:
    from wandb_inference._exceptions import WandbInferenceError

    from ._request import BatchRequest
    from ._summary import BatchStats

__all__ = ["Dispatcher", "Outcome"]

Outcome = Literal["write", "requeue", "drop"]

_REQUEUE_BASE: Final = 1.0
_REQUEUE_CAP: Final = 30.0


@final
class Dispatcher:
    """The scheduling state of one job (see the module docstring).

    Args:
        max_in_flight: requests out at once, at most.
        room: how many more requests for a model the client's gate lets start now.
        stats: the job's counts (requeues are counted here).
        max_requeues: times one request may be sent again after a not-processed failure.
        unreachable_limit: failures in a row saying the service cannot be reached that
            stop the job.
        lookahead: requests buffered ahead of the ones in flight (default 2x the limit).
        rng: jitter for requeue waits.
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        room: Callable[[str | None], float],
        stats: BatchStats,
        max_requeues: int = 10,
        unreachable_limit: int | None = None,
        lookahead: int | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_in_flight}")
        self._max = max_in_flight
        self._room = room
        self._stats = stats
        self._max_requeues = max_requeues
        self._unreachable_limit = unreachable_limit or max(16, 2 * max_in_flight)
        self._lookahead = lookahead or 2 * max_in_flight
        self._rng = rng
        self._pending: deque[BatchRequest | BatchResult] = deque()
        self._results = 0  # of the pending items, how many are results to emit
        self._waiting: list[tuple[float, int, BatchRequest]] = []  # requeued, by ready time
        self._seq = 0
        self._tries: dict[str, int] = {}
        self._by_model: dict[str | None, int] = {}
        self.in_flight = 0
        self.exhausted = False
        self.stopped: str | None = None
        self.error: WandbInferenceError | None = None
        self._unreachable_in_a_row = 0

    # ------------------------------------------------------------------ input
    def wants_more(self) -> bool:
        """Whether the driver should read another request from the source."""
        return not self.exhausted and self.stopped is None and len(self._pending) < self._lookahead

    def add(self, item: BatchRequest | BatchResult) -> None:
        """Queue a request (or an already-failed result, e.g. an invalid item, to emit)."""
        self._pending.append(item)
        if isinstance(item, BatchResult):
            self._results += 1

    def source_done(self) -> None:
        """The source has no more requests."""
        self.exhausted = True

    # ------------------------------------------------------------------ scheduling
    def take(self, now: float) -> BatchRequest | BatchResult | None:
        """The next request to start now (the driver must start it), a result to emit, or None."""
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            self._pending.appendleft(heapq.heappop(waiting)[2])
        can_start = self.stopped is None and self.in_flight < self._max
        if not self._pending or (not can_start and not self._results):
            return None
        blocked: set[str | None] = set()
        for index, item in enumerate(self._pending):
            if isinstance(item, BatchResult):
                del self._pending[index]
                self._results -= 1
                return item
            if not can_start:
                continue  # only results may still pass
            model = item.model
            if model in blocked:
                continue
            if self._by_model.get(model, 0) and self._room(model) <= 0:
                blocked.add(model)
                continue
            del self._pending[index]
            self.in_flight += 1
            self._by_model[model] = self._by_model.get(model, 0) + 1
            return item
        return None

    def next_wakeup(self, now: float) -> float | None:
        """Seconds until a requeued request is due (None: none is waiting)."""
        if not self._waiting or self.stopped is not None:
            return None
        return max(0.0, self._waiting[0][0] - now)

    # ------------------------------------------------------------------ outcomes
    def release(self, request: BatchRequest) -> None:
        """The request no longer counts as in flight (after `finished`, and after its
        result was written or handed over: a slow reader of results holds the job back)."""
        self.in_flight -= 1
        model = request.model
        left = self._by_model.get(model, 1) - 1
        if left:
            self._by_model[model] = left
        else:
            self._by_model.pop(model, None)

    def finished(self, request: BatchRequest, error: BaseException | None, now: float) -> Outcome:
        """Say what to do with a request that came back (then `release` it).

        Returns:
            `write` (emit / write the result), `requeue` (it will be taken again later),
            or `drop` (not written: a job error, or a not-processed failure after the job
            stopped; a re-run sends it).
        """
        if error is None:
            self._unreachable_in_a_row = 0
            self._tries.pop(request.custom_id, None)
            return "write"
        treatment = classify(error)
        if treatment == "job":
            self.stop("error", error)
            return "drop"
        if treatment == "requeue":
            if is_unreachable(error):
                self._unreachable_in_a_row += 1
                if self._unreachable_in_a_row >= self._unreachable_limit:
                    self.stop("error", error)
            else:
                self._unreachable_in_a_row = 0
            if self.stopped is not None:
                return "drop"
            tries = self._tries.get(request.custom_id, 0) + 1
            if tries <= self._max_requeues:
                self._tries[request.custom_id] = tries
                self._stats.requeued += 1
                self._seq += 1
                heapq.heappush(self._waiting, (now + self._delay(error, tries), self._seq, request))
                return "requeue"
        else:
            self._unreachable_in_a_row = 0
        self._tries.pop(request.custom_id, None)
        return "write"

    def _delay(self, error: BaseException, tries: int) -> float:
        hint = getattr(error, "retry_after", None)
        if isinstance(hint, int | float) and hint >= 0:
            return min(float(hint), 300.0)
        return min(_REQUEUE_CAP, _REQUEUE_BASE * 2.0 ** (tries - 1)) * (0.5 + 0.5 * self._rng())

    def stop(self, reason: str, error: WandbInferenceError | BaseException | None = None) -> None:
        """Start nothing more (the first reason and error are kept)."""
        if self.stopped is None:
            self.stopped = reason
            from wandb_inference._exceptions import WandbInferenceError

            self.error = error if isinstance(error, WandbInferenceError) else None

    def done(self) -> bool:
        """Nothing in flight and nothing more will start."""
        if self.in_flight:
            return False
        if self.stopped is not None:
            return not self._results
        return self.exhausted and not self._pending and not self._waiting

    def unsent(self) -> int:
        """Requests taken from the source that have no result (buffered or waiting)."""
        return len(self._pending) - self._results + len(self._waiting)
