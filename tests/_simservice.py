"""A simulated service with an in-flight limit, and simulated clients, in simulated time.

The clients run the SDK's own policy (`AIMDLimit`) and retry decisions (`RetryState`,
with the real `RateLimitError`) around a model of the gate and of `_send`: requests wait
in line for room (a refused probe of the gate goes first in line), a concurrency 429 is
retried without the backoff when the gate is full (the gate paces it), otherwise after
the policy's jittered backoff. The service answers 429 at once when `limit` requests are
in flight, else replies after `service` seconds (times jittered by +-`jitter`); each way
of the network takes `delay` seconds (jittered). With `board=True` the clients are on
one machine: before each answer reaches its policy, a client reads the others' levels as
the gate reads the machine's board (`_board.py`), at once here (the gate: every 10 ms).
Deterministic for a given seed, and fast: thousands of calls a second of CPU.
"""

from __future__ import annotations

import functools
import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from wandb_inference import RetryPolicy
from wandb_inference._policy._aimd import AIMDLimit, Ticket
from wandb_inference._policy._errors_map import make_status_error
from wandb_inference._policy._retry import RetryState

Limit = int | Callable[[float], int]


@functools.cache
def _concurrency_429() -> Any:
    request = httpx.Request("POST", "https://inference.test/v1/chat/completions")
    body = {"error": {"message": "Concurrency limit reached for requests", "code": "rate_limit_exceeded"}}
    return make_status_error(httpx.Response(429, json=body, request=request))


class Loop:
    """Events in simulated time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, fn, args))

    def after(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def run(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            self.now, _, fn, args = heapq.heappop(self._queue)
            fn(*args)


class Service:
    """Refuses at once above `limit` in flight (a number, or a function of time)."""

    def __init__(
        self, loop: Loop, limit: Limit, service: float, jitter: float, rng: random.Random, long_every: int = 0
    ) -> None:
        self.loop = loop
        self.limit = limit
        self.service = service
        self.jitter = jitter
        self.rng = rng
        self.long_every = long_every  # every n-th admitted request takes 10x (a stream)
        self.in_flight = 0
        self.admitted = 0

    def limit_now(self) -> int:
        return self.limit(self.loop.now) if callable(self.limit) else self.limit

    def arrive(self, reply: Callable[[bool], None]) -> None:
        if self.in_flight >= self.limit_now():
            reply(False)
            return
        self.in_flight += 1
        self.admitted += 1
        took = self.service * (1 + self.jitter * (2 * self.rng.random() - 1))
        if self.long_every and self.admitted % self.long_every == 0:
            took *= 10
        self.loop.after(took, self._done, reply)

    def _done(self, reply: Callable[[bool], None]) -> None:
        self.in_flight -= 1
        reply(True)


@dataclass
class _Call:
    index: int
    state: RetryState
    first: bool = False  # first in line (its last attempt was a refused probe)


@dataclass
class Client:
    """`workers` tasks doing `calls` calls through one gate."""

    loop: Loop
    service: Service
    workers: int
    calls: int
    rng: random.Random
    start: float = 0.0
    delay: float = 0.0005
    send_cost: float = 0.0  # client CPU per request sent: a burst leaves one at a time
    oracle_limit: int | None = None  # a fixed limit, no adaptation: the oracle
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    limit: AIMDLimit = field(init=False)
    done: int = 0
    failed: int = 0
    attempts: int = 0
    refused: int = 0
    finished_at: float | None = None
    times: list[tuple[float, bool]] = field(default_factory=list)  # (when answered, ok)
    _next: int = 0
    _line: deque[_Call] = field(default_factory=deque)
    _timer_at: float = -1.0
    _cpu_free: float = 0.0
    board: list[Client] | None = None  # the clients on this machine (they share levels)

    def __post_init__(self) -> None:
        if self.oracle_limit is None:
            self.limit = AIMDLimit(rng=self.rng.random)
        else:
            self.limit = AIMDLimit(ceiling=float(self.oracle_limit), adaptive=False)
        for _ in range(self.workers):
            self.loop.at(self.start, self._new_call)

    # ------------------------------------------------------------------ gate
    def _new_call(self) -> None:
        if self._next >= self.calls:
            return
        self._next += 1
        rng = self.rng
        state = RetryState(self.policy, clock=lambda: self.loop.now, rng=rng.random)
        self._acquire(_Call(self._next, state))

    def _acquire(self, call: _Call) -> None:
        if call.first:
            self._line.appendleft(call)
        else:
            self._line.append(call)
        self._wake()

    def _wake(self) -> None:
        if self.board is not None and 0 < self.limit.lone_at <= self.loop.now:
            self._read_board()  # (the gate reads its board when the lone start is due)
        while self._line and self.limit.has_room(self.loop.now):
            self._send(self._line.popleft())
        if self._line:
            wait = self.limit.wait_time(self.limit.in_flight, self.loop.now)
            at = self.loop.now + wait
            if 0 < wait < math.inf and self._timer_at != at:
                self._timer_at = at
                self.loop.at(at, self._wake)

    # ------------------------------------------------------------------ _send
    def _send(self, call: _Call) -> None:
        ticket = self.limit.take(self.loop.now)
        self.attempts += 1
        there = self.delay * (0.5 + self.rng.random())
        if self.send_cost:
            self._cpu_free = max(self._cpu_free, self.loop.now) + self.send_cost
            there += self._cpu_free - self.loop.now
        self.loop.after(there, self.service.arrive, lambda ok: self._answer(call, ticket, ok))

    def _answer(self, call: _Call, ticket: Ticket | None, ok: bool) -> None:
        back = self.delay * (0.5 + self.rng.random())
        self.loop.after(back, self._reply, call, ticket, ok)

    def _reply(self, call: _Call, ticket: Ticket | None, ok: bool) -> None:
        now = self.loop.now
        if self.board is not None:
            self._read_board()
        probe_refused = self.limit.release(ticket, now, ok=ok, rate_limited=not ok)
        self.times.append((now, ok))
        if ok:
            self.done += 1
            self._finish_one()
            self._wake()
            self._new_call()
            return
        self.refused += 1
        self._wake()
        # The gate paces the retry when it holds it: full, or paused (shut out after
        # the service had taken some of ours).
        limit = self.limit
        full = limit.in_flight >= limit.limit or (limit.resume_at > now and limit.round_time > 0)
        decision = call.state.decide(_concurrency_429(), free=probe_refused or full, free_window=60.0)
        if not decision.retry:
            self.failed += 1
            self._finish_one()
            self._new_call()
            return
        call.first = probe_refused
        if full:
            self._acquire(call)  # the gate paces the retry
        else:
            self.loop.after(decision.delay, self._acquire, call)

    def _full(self) -> bool:
        return bool(self._line) or self.limit.in_flight >= self.limit.limit

    def _read_board(self) -> None:
        """What the machine's board (`_board.py`) tells the policy: the mean level of
        the clients that are full and how many they are, when another one is (read at
        once, here)."""
        others = [c for c in self.board or () if c is not self and c.finished_at is None and c._full()]
        mine = [self] if self._full() else []
        levels = [c.limit.limit for c in others + mine]
        self.limit.share = sum(levels) / len(levels) if others else math.inf
        self.limit.peers = len(levels) if others else 1
        now = self.loop.now
        self.limit.others = sum(c is not self and c.start <= now and c.finished_at is None for c in self.board or ())

    def _finish_one(self) -> None:
        if self.done + self.failed == self.calls:
            self.finished_at = self.loop.now

    @property
    def elapsed(self) -> float:
        assert self.finished_at is not None, "the client did not finish"
        return self.finished_at - self.start


@dataclass
class Result:
    clients: list[Client]
    service: Service
    samples: list[tuple[float, int, list[float]]]  # (time, service in flight, clients' limits)

    @property
    def elapsed(self) -> float:
        return max(c.finished_at or math.inf for c in self.clients) - min(c.start for c in self.clients)

    @property
    def failed(self) -> int:
        return sum(c.failed for c in self.clients)

    def rate429(self, after: float = 0.0) -> float:
        """Refused share of all attempts answered after `after` seconds."""
        answers = [ok for c in self.clients for when, ok in c.times if when >= after]
        return answers.count(False) / max(1, len(answers))

    @property
    def fairness(self) -> float:
        """Slowest client's throughput (calls / its elapsed time) over the fastest's."""
        rates = [c.calls / c.elapsed for c in self.clients]
        return min(rates) / max(rates)


def simulate(
    limit: Limit,
    workers: int,
    calls: int,
    *,
    clients: int = 1,
    oracle: bool = False,
    stagger: float = 0.0,
    service: float = 0.05,
    jitter: float = 0.2,
    delay: float = 0.0005,
    send_cost: float = 0.0,
    start_jitter: float = 0.0,
    seed: int = 1,
    long_every: int = 0,
    sample_every: float = 0.0,
    until: float = 600.0,
    board: bool = False,
) -> Result:
    """`clients` clients of `workers` workers share `calls` calls against one limit.

    The oracle is one client with all the workers, told the limit (a number). With
    `long_every`, every n-th admitted request holds its slot 10 times as long (a stream).
    """
    loop = Loop()
    svc = Service(loop, limit, service, jitter, random.Random(seed), long_every)
    if oracle:
        assert isinstance(limit, int)
        group = [Client(loop, svc, workers * clients, calls, random.Random(seed + 1), delay=delay, oracle_limit=limit)]
    else:
        group = [
            Client(
                loop,
                svc,
                workers,
                calls // clients,
                random.Random(seed * 100 + i),
                start=i * stagger + start_jitter * random.Random(seed * 1000 + i).random(),
                delay=delay,
                send_cost=send_cost,
            )
            for i in range(clients)
        ]
    if board and not oracle:
        for c in group:
            c.board = group
    samples: list[tuple[float, int, list[float]]] = []
    if sample_every:

        def sample() -> None:
            samples.append((loop.now, svc.in_flight, [c.limit.limit for c in group]))
            if any(c.finished_at is None for c in group):
                loop.after(sample_every, sample)

        loop.at(0.0, sample)
    loop.run(until)
    return Result(group, svc, samples)
