"""The pools the SDK builds hand each idle connection to one queued request
(`_transports/_pool_fix.py`), where httpcore 1.0 hands the same one to all of them and
lets the losers fight over it again, pass after pass.

The pass itself is tested on fake connections (deterministic); then against the local
server: many requests entering a pool full of idle connections at once (what the
concurrency gate does when a limit rises) cost a few passes each, not one per loser.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpcore
import httpx
import pytest
from _helpers import API_KEY, MESSAGES, MODEL

import wandb_inference as wi
from wandb_inference._transports import _pool_fix
from wandb_inference._transports._pool_fix import _AsyncPool, _SyncPool, assign, install
from wandb_inference.server import LocalServer

ORIGIN = httpcore.URL("http://127.0.0.1:1/").origin
OTHER = httpcore.URL("http://127.0.0.1:2/").origin


class FakeConnection:
    def __init__(self, state: str = "idle", origin: httpcore.Origin = ORIGIN) -> None:
        self.state = state  # idle, active, connecting, closed, expired
        self.origin = origin

    def is_closed(self) -> bool:
        return self.state == "closed"

    def has_expired(self) -> bool:
        return self.state == "expired"

    def is_idle(self) -> bool:
        return self.state == "idle"

    def is_available(self) -> bool:
        return self.state == "idle"

    def can_handle_request(self, origin: httpcore.Origin) -> bool:
        return origin == self.origin


class FakeRequest:
    def __init__(self, origin: httpcore.Origin = ORIGIN, connection: Any = None) -> None:
        scheme, host, port = origin.scheme.decode(), origin.host.decode(), origin.port
        self.request = httpcore.Request("GET", f"{scheme}://{host}:{port}/")
        self.connection = connection

    def assign_to_connection(self, connection: Any) -> None:
        self.connection = connection


class FakePool:
    def __init__(
        self, connections: list[FakeConnection], requests: list[FakeRequest], most: int = 10, keep: int = 10
    ) -> None:
        self._connections: list[Any] = list(connections)
        self._requests: list[Any] = list(requests)
        self._max_connections = most
        self._max_keepalive_connections = keep
        self.created: list[FakeConnection] = []

    def create_connection(self, origin: httpcore.Origin) -> FakeConnection:
        connection = FakeConnection("connecting", origin)
        self.created.append(connection)
        return connection


def test_each_idle_connection_goes_to_one_request_then_new_ones_are_made() -> None:
    idle = [FakeConnection() for _ in range(3)]
    busy = FakeConnection("active")
    requests = [FakeRequest() for _ in range(5)]
    pool = FakePool([busy, *idle], [FakeRequest(connection=busy), *requests])
    assert assign(pool) == []
    assigned = [request.connection for request in requests]
    assert assigned[:3] == idle  # first come, first served, one each
    assert assigned[3:] == pool.created and len(pool.created) == 2
    assert pool._connections == [busy, *idle, *pool.created]
    # The next pass (the requests have not started yet: still idle) hands nothing twice.
    late = FakeRequest()
    pool._requests.append(late)
    assign(pool)
    assert late.connection is pool.created[-1] and len(pool.created) == 3


def test_connections_of_another_origin_are_not_handed_out() -> None:
    other = FakeConnection(origin=OTHER)
    request = FakeRequest()
    pool = FakePool([other], [request])
    assign(pool)
    assert request.connection is pool.created[0] and request.connection is not other


def test_closed_are_dropped_expired_and_surplus_idle_closed_but_never_a_handed_one() -> None:
    closed, expired = FakeConnection("closed"), FakeConnection("expired")
    handed = FakeConnection()  # idle, but a request waits to start on it
    spare = [FakeConnection() for _ in range(3)]
    pool = FakePool([closed, expired, handed, *spare], [FakeRequest(connection=handed)], keep=2)
    closing = assign(pool)
    # 4 kept connections, 2 kept alive at most: two spare idle ones go, the handed one stays.
    assert closing == [expired, *spare[:2]]
    assert pool._connections == [handed, spare[2]]


def test_a_handed_connection_is_not_closed_when_its_keep_alive_runs_out() -> None:
    # Its request has not started on it yet; closing it now could close it under the
    # request once it starts (the request breaks after it was sent: not re-sendable).
    handed, other = FakeConnection("expired"), FakeConnection("expired")
    waiting = FakeRequest(connection=handed)
    pool = FakePool([handed, other], [waiting])
    assert assign(pool) == [other]
    assert pool._connections == [handed] and waiting.connection is handed


def test_at_the_connection_limit_an_idle_one_makes_room_and_others_wait() -> None:
    active = [FakeConnection("active") for _ in range(2)]
    other = FakeConnection(origin=OTHER)  # idle, but for another origin
    first, second = FakeRequest(), FakeRequest()
    pool = FakePool([*active, other], [FakeRequest(connection=c) for c in active] + [first, second], most=3)
    closing = assign(pool)
    assert closing == [other]
    assert first.connection is pool.created[0]
    assert second.connection is None  # nothing left to close: queued until one frees up
    assert len(pool._connections) == 3


# --------------------------------------------------------------------------- real pools


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=API_KEY, service_time=0.05) as srv:
        yield srv


class Counter:
    def __init__(self) -> None:
        self.passes = 0
        self.lock = threading.Lock()

    def wrap(self, monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> None:
        def counted(pool: Any) -> list[Any]:
            with self.lock:
                self.passes += 1
            return assign(pool)

        monkeypatch.setattr(cls, "_assign_requests_to_connections", counted)


async def test_a_crowd_entering_an_idle_pool_costs_a_few_passes_each(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = Counter()
    counter.wrap(monkeypatch, _AsyncPool)
    async with wi.AsyncClient(
        API_KEY, base_url=server.base_url, max_concurrency=64, adaptive_concurrency=False
    ) as client:
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert type(pool) is _AsyncPool

        async def burst(n: int) -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(n):
                    tg.start_soon(lambda: client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1))

        await burst(24)  # 24 connections, idle afterwards
        assert len(pool.connections) == 24
        counter.passes = 0
        await burst(48)
        # Each request: a pass on entering, one on leaving (httpcore's stock pass gave
        # the same idle connection to all 48 and needed hundreds).
        assert counter.passes <= 3 * 48, counter.passes
        assert len(pool.connections) == 48  # the 24 idle ones reused, 24 made


def test_threads_of_a_sync_client_share_the_fixed_pool(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter()
    counter.wrap(monkeypatch, _SyncPool)
    with wi.Client(API_KEY, base_url=server.base_url, max_concurrency=64, adaptive_concurrency=False) as client:
        http = client._pool.get()
        assert type(http._transport._pool) is _SyncPool  # type: ignore[attr-defined]

        def one(_: int) -> None:
            client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1)

        with ThreadPoolExecutor(16) as threads:
            list(threads.map(one, range(16)))
            counter.passes = 0
            list(threads.map(one, range(32)))
        assert counter.passes <= 3 * 32, counter.passes


async def test_only_the_sdks_own_plain_pools_are_changed() -> None:
    async with httpx.AsyncClient() as given:
        client = wi.AsyncClient(API_KEY, http_client=given)
        assert type(given._transport._pool) is httpcore.AsyncConnectionPool  # type: ignore[attr-defined]
        await client.aclose()
    async with httpx.AsyncClient(proxy="http://127.0.0.1:9") as proxied:
        install(proxied)
        (through,) = proxied._mounts.values()  # where every request goes: the proxy's pool
        assert type(through._pool) is httpcore.AsyncHTTPProxy  # type: ignore[union-attr]
    async with httpx.AsyncClient() as multiplexed:
        multiplexed._transport._pool._http2 = True  # type: ignore[attr-defined]  # (needs h2)
        assert install(multiplexed) is False
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as mocked:
        assert install(mocked) is False


def test_an_httpcore_it_was_not_written_for_keeps_its_own_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pool_fix, "_SUPPORTED", False)
    with httpx.Client() as http:
        assert install(http) is False
        assert type(http._transport._pool) is httpcore.ConnectionPool  # type: ignore[attr-defined]


class CountingConnection(FakeConnection):
    """Idle, and expired or not (as httpcore's: an expired idle connection is still idle)."""

    checks = 0
    expired = False

    def has_expired(self) -> bool:
        CountingConnection.checks += 1
        return self.expired


def test_idle_connections_are_checked_for_expiry_once_per_interval_and_before_use() -> None:
    """A check is a socket readability test (about 20 us through anyio): every idle
    connection on every pass, as httpcore does, cost a client with 80 connections half
    its CPU. A pass scans them all at most every `_SCAN_EVERY` seconds; between scans
    only the connection about to be handed out is checked, and an expired one is closed
    instead of handed out."""
    CountingConnection.checks = 0
    connections = [CountingConnection() for _ in range(40)]
    pool = FakePool(list(connections), [], most=100, keep=100)
    assert assign(pool) == []  # the first pass scans every connection
    assert CountingConnection.checks == 40
    for _ in range(20):  # requests come and go within the interval
        request = FakeRequest()
        pool._requests = [request]
        assert assign(pool) == []
        assert request.connection is connections[0]
        pool._requests = []
    assert CountingConnection.checks == 40 + 20  # one check per connection handed out
    # One expires (its keep-alive ran out, or the server closed it) between scans: it
    # is not handed out but closed, and the request gets the next.
    connections[0].expired = True
    request = FakeRequest()
    pool._requests = [request]
    assert assign(pool) == [connections[0]]
    assert request.connection is connections[1]
    assert connections[0] not in pool._connections
    # The next scan closes idle connections that expired meanwhile.
    connections[5].expired = True
    pool._requests = []
    setattr(pool, "_wi_next_scan", 0.0)  # noqa: B010 - the interval has passed
    assert assign(pool) == [connections[5]]
    assert len(pool._connections) == 38
