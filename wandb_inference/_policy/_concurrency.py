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

Liveness rules (each guarded by a test that misuses the SDK):

- A wait for a slot is bounded: by the request's pool timeout and by what remains of its
  `total_timeout`; it then fails with `APITimeoutError` naming the limit.
- A caller is never blocked by its own slots: the slots a thread (sync) or task (async)
  already holds, e.g. an open stream, do not count against it. Otherwise "summarise while
  streaming" code waits for ever on the slot its own stream holds once a 429 lowers the
  limit to 1. (It may then exceed the limit; the service answers 429, which is retried
  and, if it persists, raised: an error, never a hang.)
- After `fork`, the child starts with fresh gates: the parent's in-flight counts and a
  lock another thread may have held at fork time are not inherited.
- The per-model table is bounded: idle entries are dropped past `_MAX_MODELS` models.

A stream holds its slot until it is closed (or garbage-collected). `AIMDLimit`
(`_aimd.py`) is the pure policy; the gates here are thin async and thread-safe shells
around it, and import it when the first request asks for a slot (a client is built
without it).
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Protocol, Self

from wandb_inference._lazy import lazy_module

if TYPE_CHECKING:
    import anyio

    from wandb_inference._options import ClientOptions

    from . import _aimd
    from ._aimd import AIMDLimit
else:
    _aimd = lazy_module("wandb_inference._policy._aimd")

__all__ = ["AsyncLimiter", "Slot", "SyncLimiter", "reset_after_fork"]

# Past this many models in one client's table, idle entries are dropped.
_MAX_MODELS = 1024


class _ForkReset(Protocol):
    def _after_fork_in_child(self) -> None: ...


_FORK_RESET: weakref.WeakSet[_ForkReset] = weakref.WeakSet()


def reset_after_fork(obj: _ForkReset) -> None:
    """Call `obj._after_fork_in_child()` in the child of every later `fork` (weakly held)."""
    _FORK_RESET.add(obj)


def _after_fork_in_child() -> None:  # pragma: no cover - runs in forked children only
    for obj in list(_FORK_RESET):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Slot:
    """The right to have one request in flight; released exactly once."""

    __slots__ = ("limits", "on_release", "owner", "released")

    def __init__(
        self,
        limits: tuple[AIMDLimit, ...],
        on_release: Callable[[Slot, bool, bool], None],
        owner: Hashable,
    ) -> None:
        self.limits = limits
        self.on_release = on_release
        self.owner = owner
        self.released = False

    def finish(self, *, ok: bool = True, rate_limited: bool = False) -> None:
        """Give the slot back, telling the limits how the request went (idempotent)."""
        if not self.released:
            self.released = True
            self.on_release(self, ok, rate_limited)


class _Limits:
    """The per-model (and client-wide) limits both gates keep, and who holds their slots."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        self._ceiling = ceiling
        self._adaptive = adaptive
        self._client_wide = client_wide
        self._fresh()
        reset_after_fork(self)

    def _fresh(self) -> None:
        self._global = _aimd.AIMDLimit(ceiling=self._ceiling, adaptive=False) if self._client_wide else None
        self._models: dict[str, AIMDLimit] = {}
        # owner -> {id(limit): slots of that limit the owner holds}
        self._held: dict[Hashable, dict[int, int]] = {}

    def _after_fork_in_child(self) -> None:
        # The parent's in-flight requests are not the child's; its slots (kept by objects
        # inherited through fork) now point at limits no longer in the table: harmless.
        self._fresh()

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
            if len(self._models) >= _MAX_MODELS:
                self._prune()
            per_model = self._models[key] = _aimd.AIMDLimit(ceiling=self._ceiling, adaptive=self._adaptive)
        return (per_model,) if self._global is None else (self._global, per_model)

    def _prune(self) -> None:
        """Drop idle models' entries (those still at their default limit first)."""
        idle = [key for key, limit in self._models.items() if limit.in_flight <= 0]
        idle.sort(key=lambda key: self._models[key].limit != self._ceiling)
        for key in idle[: max(1, len(self._models) - _MAX_MODELS * 3 // 4)]:
            del self._models[key]

    def limit_for(self, model: str | None) -> float:
        """The current in-flight limit for `model` (inf: unlimited)."""
        return self._limits(model)[-1].limit

    def room(self, model: str | None) -> float:
        """How many more requests for `model` may start now, by every limit (inf: no limit).

        A snapshot for schedulers (the batch runner sizes what it sends by it); the gate
        itself still decides at `acquire`.
        """
        return min(limit.limit - limit.in_flight for limit in self._limits(model))

    def describe(self, model: str | None) -> str:
        """`limit N, M in flight` for an error message."""
        limit = self._limits(model)[-1]
        shown = "unlimited" if math.isinf(limit.limit) else f"{limit.limit:g}"
        return f"limit {shown}, {limit.in_flight} in flight"

    def _has_room(self, limits: tuple[AIMDLimit, ...], owner: Hashable) -> bool:
        mine = self._held.get(owner)
        for limit in limits:
            in_flight = limit.in_flight
            if mine:
                in_flight -= mine.get(id(limit), 0)
            if in_flight >= limit.limit:
                return False
        return True

    def _take(self, limits: tuple[AIMDLimit, ...], owner: Hashable) -> None:
        mine = self._held.get(owner)
        if mine is None:
            mine = self._held[owner] = {}
        for limit in limits:
            limit.in_flight += 1
            key = id(limit)
            mine[key] = mine.get(key, 0) + 1

    def _account(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        mine = self._held.get(slot.owner)
        for limit in slot.limits:
            if rate_limited:
                limit.on_rate_limited()  # before the decrement: this request was in flight too
            elif ok:
                limit.on_success()
            limit.in_flight -= 1
            if mine is not None:
                key = id(limit)
                left = mine.get(key, 0) - 1
                if left > 0:
                    mine[key] = left
                else:
                    mine.pop(key, None)
        if mine is not None and not mine:
            del self._held[slot.owner]


def _current_task() -> Hashable:
    """The running task, weakly (asyncio's; anyio's task id under trio).

    Weakly: a task's result may be the stream holding the slot, and a strong reference
    from the limiter would keep that stream (and its slot) alive for ever. A weak
    reference stays equal to itself after the task ends, and never equal to one to a new
    task created at the same address.
    """
    import asyncio

    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is not None:
        return weakref.ref(task)
    import anyio

    return anyio.get_current_task().id


class AsyncLimiter(_Limits):
    """The async gate: waiters park on events woken when a slot frees up."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        super().__init__(ceiling, adaptive, client_wide)
        self._waiters: deque[anyio.Event] = deque()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._waiters = deque()

    async def acquire(self, model: str | None, timeout: float | None) -> Slot | None:  # noqa: ASYNC109
        """Wait for a slot, at most `timeout` seconds (None: no bound).

        A bound given as a number, not a cancel scope: the caller needs to tell a slot
        timeout (a typed error naming the limit) from its own cancellation.

        Returns:
            The slot, or None when `timeout` passed first.
        """
        limits = self._limits(model)
        owner = _current_task()
        if not self._has_room(limits, owner):
            import anyio

            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._has_room(limits, owner):
                left = math.inf if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                event = anyio.Event()
                self._waiters.append(event)
                try:
                    with anyio.move_on_after(left):
                        await event.wait()
                finally:
                    if event in self._waiters:
                        self._waiters.remove(event)
        self._take(limits, owner)
        return Slot(limits, self._release, owner)

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        self._account(slot, ok, rate_limited)
        # Wake everyone: each re-checks its own model's room (cheap; waiters are few).
        while self._waiters:
            self._waiters.popleft().set()


class SyncLimiter(_Limits):
    """The thread-safe gate for `Client`."""

    def __init__(self, ceiling: float, adaptive: bool, client_wide: bool) -> None:
        super().__init__(ceiling, adaptive, client_wide)
        self._cond = threading.Condition()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._cond = threading.Condition()  # another thread may have held the old one

    def acquire(self, model: str | None, timeout: float | None) -> Slot | None:
        """Block until a slot is free, at most `timeout` seconds (None: no bound).

        Returns:
            The slot, or None when `timeout` passed first.
        """
        # The Thread object, not its ident: idents are reused as soon as a thread ends, and a
        # new thread must not inherit the exemption of a dead one's stream.
        owner = threading.current_thread()
        with self._cond:
            limits = self._limits(model)
            if not self._cond.wait_for(lambda: self._has_room(limits, owner), timeout):
                return None
            self._take(limits, owner)
        return Slot(limits, self._release, owner)

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        with self._cond:
            self._account(slot, ok, rate_limited)
            self._cond.notify_all()
