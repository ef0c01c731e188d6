"""Client-side concurrency control: a limit on requests in flight, adapted on 429s.

W&B Inference limits requests *in flight* per project and model (sometimes to about
one). Retrying at the same parallelism livelocks: every retry meets the same full slot.
The remedy is to send less at once. Each client keeps a gate per model (and one for the
whole client when `max_concurrency` is set):

- `max_concurrency=N`: at most N requests in flight per model and N in the client.
- adaptive (on by default): each model's limit follows the service's (`AIMDLimit`,
  `_aimd.py`, explains how): a burst of 429s sets it to what the service accepted, it
  probes one request higher now and then, and shares with other clients of the project
  (AIMD). Requests wait for a slot instead of burning their retries: a request refused
  while the gate holds it (full, or paused) is retried without a backoff and without
  using `max_retries` (it waits here for a slot, first in line when the refusal was the
  gate's own probe), and a refusal with nothing of the client's in flight pauses the
  model's gate for about one round.

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
- The per-model table is bounded: idle entries are dropped past `_MAX_MODELS` models
  (with their slots on the machine's boards).
- An adaptive model's limit tells the other clients of the project on this machine its
  level, and hears theirs (`_board.py`); a board that fails is dropped, never raised.

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

    from . import _aimd, _board
    from ._aimd import AIMDLimit, Ticket
    from ._board import Board
else:
    _aimd = lazy_module("wandb_inference._policy._aimd")
    _board = lazy_module("wandb_inference._policy._board")

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

    __slots__ = ("limits", "on_release", "owner", "probe_refused", "released", "tickets")

    def __init__(
        self,
        limits: tuple[AIMDLimit, ...],
        tickets: tuple[Ticket | None, ...],
        on_release: Callable[[Slot, bool, bool], None],
        owner: Hashable,
    ) -> None:
        self.limits = limits
        self.tickets = tickets
        self.on_release = on_release
        self.owner = owner
        self.released = False
        # Set when the request was a probe above the level the service accepted, and
        # was refused: its retry is not counted against `max_retries`.
        self.probe_refused = False

    def finish(self, *, ok: bool = True, rate_limited: bool = False) -> None:
        """Give the slot back, telling the limits how the request went (idempotent)."""
        if not self.released:
            self.released = True
            self.on_release(self, ok, rate_limited)


class _Limits:
    """The per-model (and client-wide) limits both gates keep, and who holds their slots."""

    def __init__(
        self, ceiling: float, adaptive: bool, client_wide: bool, scope: tuple[str, str | None] | None = None
    ) -> None:
        self._ceiling = ceiling
        self._adaptive = adaptive
        self._client_wide = client_wide
        # (base URL, project): the clients on this machine with the same scope and model
        # share the service's limit, and tell each other their levels (`_board.py`).
        self._scope = scope
        self._fresh()
        reset_after_fork(self)

    def _fresh(self) -> None:
        self._global = _aimd.AIMDLimit(ceiling=self._ceiling, adaptive=False) if self._client_wide else None
        self._models: dict[str, AIMDLimit] = {}
        self._boards: dict[int, Board] = {}  # id(limit) -> its slot on the machine's board
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
        scope = (options.base_url, options.project)
        return cls(ceiling, options.adaptive_concurrency, options.max_concurrency is not None, scope)

    def _limits(self, model: str | None) -> tuple[AIMDLimit, ...]:
        key = model or ""
        per_model = self._models.get(key)
        if per_model is None:
            if len(self._models) >= _MAX_MODELS:
                self._prune()
            per_model = self._models[key] = _aimd.AIMDLimit(ceiling=self._ceiling, adaptive=self._adaptive)
            if self._adaptive and self._scope is not None:
                board = _board.open_board(*self._scope, key)
                if board is not None:
                    self._boards[id(per_model)] = board
        return (per_model,) if self._global is None else (self._global, per_model)

    def _prune(self) -> None:
        """Drop idle models' entries (those still at their default limit first)."""
        idle = [key for key, limit in self._models.items() if limit.in_flight <= 0]
        idle.sort(key=lambda key: self._models[key].limit != self._ceiling)
        for key in idle[: max(1, len(self._models) - _MAX_MODELS * 3 // 4)]:
            board = self._boards.pop(id(self._models.pop(key)), None)
            if board is not None:
                board.close()

    def limit_for(self, model: str | None) -> float:
        """The current in-flight limit for `model` (inf: unlimited)."""
        return self._limits(model)[-1].limit

    def room(self, model: str | None) -> float:
        """How many more requests for `model` may start now, by every limit (inf: no limit).

        A snapshot for schedulers (the batch runner sizes what it sends by it); the gate
        itself still decides at `acquire`.
        """
        now = time.monotonic()
        limits = self._limits(model)
        if 0 < limits[-1].lone_at <= now:
            self._lone_start(limits[-1], now)
        return min(limit.room(now) for limit in limits)

    def _lone_start(self, limit: AIMDLimit, now: float) -> None:
        """The lone start is due (`AIMDLimit.lone_at`): read the board first, for the
        other clients of the project on this machine."""
        board = self._boards.get(id(limit))
        if board is not None:
            board.sync(limit, now, read=True)

    def describe(self, model: str | None) -> str:
        """`limit N, M in flight` for an error message."""
        limit = self._limits(model)[-1]
        shown = "unlimited" if math.isinf(limit.limit) else f"{limit.limit:g}"
        return f"limit {shown}, {limit.in_flight} in flight"

    def _wait_time(self, limits: tuple[AIMDLimit, ...], owner: Hashable) -> float:
        """0 when a request may start now; else how long until a pause ends (inf: until a
        slot is released)."""
        mine = self._held.get(owner)
        pause = 0.0
        now = time.monotonic()
        for limit in limits:
            in_flight = limit.in_flight
            if mine:
                in_flight -= mine.get(id(limit), 0)
            if 0 < limit.lone_at <= now:
                self._lone_start(limit, now)
            wait = limit.wait_time(in_flight, now)
            if wait > pause:
                if math.isinf(wait):
                    return wait
                pause = wait
        return pause

    def _has_room(self, limits: tuple[AIMDLimit, ...], owner: Hashable) -> bool:
        return self._wait_time(limits, owner) <= 0

    def _owner(self) -> Hashable:
        raise NotImplementedError

    def holds(self, model: str | None) -> bool:
        """Whether a request for `model` from the caller would wait in the gate: for a
        slot to be released, or for a pause to end (the gate was shut out after the
        service had taken some of its requests: others hold the limit for now; a service
        that never took one is not waited for this way)."""
        limits = self._limits(model)
        wait = self._wait_time(limits, self._owner())
        if math.isinf(wait):
            return True
        return wait > 0 and all(limit.round_time > 0 for limit in limits if limit.adaptive)

    def _take(self, limits: tuple[AIMDLimit, ...], owner: Hashable) -> tuple[Ticket | None, ...]:
        mine = self._held.get(owner)
        if mine is None:
            mine = self._held[owner] = {}
        now = time.monotonic()
        for limit in limits:
            key = id(limit)
            mine[key] = mine.get(key, 0) + 1
        tickets = (limits[0].take(now),) if len(limits) == 1 else tuple([limit.take(now) for limit in limits])
        if self._boards:
            board = self._boards.get(id(limits[-1]))
            if board is not None:
                board.sync(limits[-1], now)
        return tickets

    def _account(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        mine = self._held.get(slot.owner)
        now = time.monotonic()
        if self._boards:
            board = self._boards.get(id(slot.limits[-1]))
            if board is not None:
                board.sync(slot.limits[-1], now)  # (the policy decides with the others' share)
        for limit, ticket in zip(slot.limits, slot.tickets, strict=False):  # same length
            if limit.release(ticket, now, ok=ok, rate_limited=rate_limited):
                slot.probe_refused = True
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
    """The async gate: waiters park in line on events, set for as many as there is room
    for when a slot frees up; a pause ends by their own timers."""

    def __init__(
        self, ceiling: float, adaptive: bool, client_wide: bool, scope: tuple[str, str | None] | None = None
    ) -> None:
        super().__init__(ceiling, adaptive, client_wide, scope)
        self._waiters: dict[int, deque[anyio.Event]] = {}
        self._waiting_on: dict[int, AIMDLimit] = {}

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._waiters = {}
        self._waiting_on = {}

    def _owner(self) -> Hashable:
        return _current_task()

    async def acquire(self, model: str | None, timeout: float | None, *, first: bool = False) -> Slot | None:  # noqa: ASYNC109
        """Wait for a slot, at most `timeout` seconds (None: no bound).

        A bound given as a number, not a cancel scope: the caller needs to tell a slot
        timeout (a typed error naming the limit) from its own cancellation.

        Args:
            model: the model the request is for.
            timeout: the longest wait (seconds).
            first: wait at the head of the line (a retry after a concurrency 429: it
                had its turn already).

        Returns:
            The slot, or None when `timeout` passed first.
        """
        limits = self._limits(model)
        owner = _current_task()
        wait = self._wait_time(limits, owner)
        if wait > 0:
            import anyio

            deadline = None if timeout is None else time.monotonic() + timeout
            key = id(limits[-1])
            woken = first
            while wait > 0:
                left = math.inf if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                event = anyio.Event()
                queue = self._waiters.setdefault(key, deque())
                self._waiting_on[key] = limits[-1]
                if woken:
                    queue.appendleft(event)  # had its turn (woken, or refused): first in line
                else:
                    queue.append(event)
                waited = False
                try:
                    with anyio.move_on_after(min(left, wait)):
                        await event.wait()
                    waited = True
                finally:
                    if not event.is_set():
                        queue.remove(event)
                    elif not waited:
                        self._wake(limits)  # cancelled once woken: pass the wake-up on
                woken = event.is_set()
                wait = self._wait_time(limits, owner)
        return Slot(limits, self._take(limits, owner), self._release, owner)

    def _wake(self, limits: tuple[AIMDLimit, ...]) -> None:
        """Wake as many waiters as there is room for, first come first served."""
        if not self._waiters:
            return
        if self._global is None:
            self._wake_queue(limits[-1], math.inf)
            return
        # A client-wide slot serves any model: each model's line gets what its own limit
        # and the client-wide one leave room for.
        room = self._global.reach - self._global.in_flight
        for key in list(self._waiters):
            if room <= 0:
                break
            room -= self._wake_queue(self._waiting_on[key], room)

    def _wake_queue(self, limit: AIMDLimit, most: float) -> int:
        key = id(limit)
        queue = self._waiters.get(key)
        woken = 0
        if queue:
            room = min(most, limit.reach - limit.in_flight)
            while queue and woken < room:
                queue.popleft().set()
                woken += 1
        if not queue:
            self._waiters.pop(key, None)
            self._waiting_on.pop(key, None)
        return woken

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        self._account(slot, ok, rate_limited)
        self._wake(slot.limits)


class SyncLimiter(_Limits):
    """The thread-safe gate for `Client`."""

    def __init__(
        self, ceiling: float, adaptive: bool, client_wide: bool, scope: tuple[str, str | None] | None = None
    ) -> None:
        super().__init__(ceiling, adaptive, client_wide, scope)
        self._cond = threading.Condition()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._cond = threading.Condition()  # another thread may have held the old one

    def _owner(self) -> Hashable:
        return threading.current_thread()

    def holds(self, model: str | None) -> bool:
        with self._cond:
            return super().holds(model)

    def room(self, model: str | None) -> float:
        with self._cond:  # (it opens paced growth: a change of state)
            return super().room(model)

    def acquire(self, model: str | None, timeout: float | None, *, first: bool = False) -> Slot | None:
        """Block until a slot is free, at most `timeout` seconds (None: no bound).

        Args:
            model: the model the request is for.
            timeout: the longest wait (seconds).
            first: ignored (threads wake in no set order); for parity with the async gate.

        Returns:
            The slot, or None when `timeout` passed first.
        """
        # The Thread object, not its ident: idents are reused as soon as a thread ends, and a
        # new thread must not inherit the exemption of a dead one's stream.
        owner = threading.current_thread()
        with self._cond:
            limits = self._limits(model)
            wait = self._wait_time(limits, owner)
            if wait > 0:
                deadline = None if timeout is None else time.monotonic() + timeout
                while wait > 0:
                    left = math.inf if deadline is None else deadline - time.monotonic()
                    if left <= 0:
                        return None
                    bound = min(left, wait)
                    self._cond.wait(None if math.isinf(bound) else bound)
                    wait = self._wait_time(limits, owner)
            tickets = self._take(limits, owner)
        return Slot(limits, tickets, self._release, owner)

    def _release(self, slot: Slot, ok: bool, rate_limited: bool) -> None:
        with self._cond:
            self._account(slot, ok, rate_limited)
            self._cond.notify_all()
