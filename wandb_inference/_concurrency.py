"""Client-side concurrency control: a limit on requests in flight, adapted on 429s.

W&B Inference limits requests *in flight* per project and model (sometimes to about
one). Retrying at the same parallelism livelocks: every retry meets the same full slot.
The remedy is to send less at once. Each client keeps a gate per model (and one for the
whole client when `max_concurrency` is set):

- `max_concurrency=N`: at most N requests in flight per model and N in the client.
- adaptive (on by default): a concurrency 429 halves the model's limit (down to 1; from
  the number in flight when no limit was set); every `limit` successes in a row raise it
  by one (8x slower near the level that was refused), up to `max_concurrency` (or back
  to unlimited past 256). Requests wait for a slot instead of burning their retries.

A stream holds its slot until it is closed. `AIMDLimit` (`_aimd.py`) is the pure
policy; the gates here are thin async and thread-safe shells around it, and import it
when the first request asks for a slot (a client is built without it).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from ._lazy import lazy_module

if TYPE_CHECKING:
    import anyio

    from . import _aimd
    from ._aimd import AIMDLimit
    from ._options import ClientOptions
else:
    _aimd = lazy_module("wandb_inference._aimd")

__all__ = ["AsyncLimiter", "Slot", "SyncLimiter"]


class Slot:
    """The right to have one request in flight; released exactly once."""

    __slots__ = ("limits", "on_release", "released")

    def __init__(self, limits: tuple[AIMDLimit, ...], on_release: Callable[[Slot, bool, bool], None]) -> None:
        self.limits = limits
        self.on_release = on_release
        self.released = False

    def finish(self, *, ok: bool = True, rate_limited: bool = False) -> None:
        """Give the slot back, telling the limits how the request went (idempotent)."""
        if not self.released:
            self.released = True
            self.on_release(self, ok, rate_limited)


def _account(slot: Slot, ok: bool, rate_limited: bool) -> None:
    for limit in slot.limits:
        if rate_limited:
            limit.on_rate_limited()  # before the decrement: this request was in flight too
        elif ok:
            limit.on_success()
        limit.in_flight -= 1


class _Limits:
    """The per-model (and client-wide) limits both gates keep."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        self._ceiling = ceiling
        self._adaptive = adaptive
        self._global = _aimd.AIMDLimit(ceiling=ceiling, adaptive=False) if client_wide else None
        self._models: dict[str, AIMDLimit] = {}

    @classmethod
    def for_options(cls, options: ClientOptions) -> Self | None:
        """The limiter a client needs, or None when neither a limit nor adaptation is on."""
        ceiling = math.inf if options.max_concurrency is None else float(options.max_concurrency)
        if math.isinf(ceiling) and not options.adaptive_concurrency:
            return None
        return cls(ceiling, options.adaptive_concurrency, options.max_concurrency is not None)

    def _limits(self, model: str | None) -> tuple[AIMDLimit, ...]:
        key = model or ""
        per_model = self._models.get(key)
        if per_model is None:
            per_model = self._models[key] = _aimd.AIMDLimit(ceiling=self._ceiling, adaptive=self._adaptive)
        return (per_model,) if self._global is None else (self._global, per_model)

    def limit_for(self, model: str | None) -> float:
        """The current in-flight limit for `model` (inf: unlimited)."""
        return self._limits(model)[-1].limit


class AsyncLimiter(_Limits):
    """The async gate: waiters park on events woken when a slot frees up."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        super().__init__(ceiling, adaptive, client_wide)
        self._waiters: deque[anyio.Event] = deque()

    @staticmethod
    async def acquire(limiter: AsyncLimiter | None, model: str | None) -> Slot | None:
        """Wait for a slot (no-op without a limiter)."""
        if limiter is None:
            return None
        limits = limiter._limits(model)
        while not all(limit.has_room() for limit in limits):
            import anyio

            event = anyio.Event()
            limiter._waiters.append(event)
            try:
                await event.wait()
            finally:
                if event in limiter._waiters:
                    limiter._waiters.remove(event)
        for limit in limits:
            limit.in_flight += 1
        return Slot(limits, limiter._release)

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        _account(slot, ok, rate_limited)
        # Wake everyone: each re-checks its own model's room (cheap; waiters are few).
        while self._waiters:
            self._waiters.popleft().set()


class SyncLimiter(_Limits):
    """The thread-safe gate for `Client`."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        super().__init__(ceiling, adaptive, client_wide)
        self._cond = threading.Condition()

    @staticmethod
    def acquire(limiter: SyncLimiter | None, model: str | None) -> Slot | None:
        """Block until a slot is free (no-op without a limiter)."""
        if limiter is None:
            return None
        with limiter._cond:
            limits = limiter._limits(model)
            limiter._cond.wait_for(lambda: all(limit.has_room() for limit in limits))
            for limit in limits:
                limit.in_flight += 1
        return Slot(limits, limiter._release)

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        with self._cond:
            _account(slot, ok, rate_limited)
            self._cond.notify_all()
