"""The pools the SDK creates: httpx's, with httpcore's request-to-connection pass fixed.

httpcore 1.0's pool (`_assign_requests_to_connections`, run whenever a request enters
or leaves it) gives each queued request the first available connection without
reserving it. An idle HTTP/1.1 connection stays idle until the waiting task runs, so in
one pass every queued request is handed the *same* idle connection; all but one then
fail with `ConnectionNotAvailable`, queue again and each run the pass again, which
scans every request against every connection (and the keep-alive check is quadratic in
connections). Tens of requests entering at once (the concurrency gate waking its
waiters when a limit rises) over tens of idle connections (left by a burst of refused
requests) kept the event loop busy for seconds: measured with 256 workers against a
limit of 32, the service held 5 to 15 requests while 60 to 170 sat in the pool, and a
run took 1.5 to 3 times the oracle's time until keep-alive expiry thinned the pool.
Upstream: encode/httpcore#1035 (open); the httpx2 fork fixed it the same way
(pydantic/httpx2#1075).

This pass keeps httpcore's rules (drop closed connections, close expired ones and idle
ones beyond `max_keepalive_connections`, reuse before creating, create below
`max_connections`, else close an idle one to make room) but hands each idle connection
to one request at most, and treats a connection handed to a request that has not
started on it yet as taken (so it is neither handed again nor closed, as idle or as
expired: closing it could close it under its request once that starts), in one walk
over the connections and one over the requests.

It relies on httpcore 1.0's private pool attributes, so it is installed only where they
are known to be: on the plain HTTP/1.1 pools of clients the SDK builds itself (not on a
proxy's, not on an `http_client` the caller passes in), for httpcore 1.0.x. Elsewhere
httpcore's own pass runs, unchanged.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import httpcore
import httpx

from wandb_inference._config import DEFAULT_LIMITS

__all__ = ["async_http_client", "install", "sync_http_client"]

# How often a pass checks every idle connection for expiry (keep-alive run out, or the
# server closed it: a socket readability check each, about 20 us through anyio under a
# profiler). Between those scans only a connection about to be handed out is checked.
# Checking all of them on every pass, as httpcore does, cost a client with 80
# connections in its pool (left by a first burst of refused requests) half its CPU:
# 2 passes a request, 80 checks each.
_SCAN_EVERY = 0.1

_SUPPORTED = httpcore.__version__.startswith("1.0.") and all(
    hasattr(pool, "_assign_requests_to_connections") for pool in (httpcore.AsyncConnectionPool, httpcore.ConnectionPool)
)


class _Connection(Protocol):
    def is_closed(self) -> bool: ...
    def has_expired(self) -> bool: ...
    def is_idle(self) -> bool: ...
    def is_available(self) -> bool: ...
    def can_handle_request(self, origin: httpcore.Origin) -> bool: ...


class _PoolRequest(Protocol):
    request: httpcore.Request
    connection: Any

    def assign_to_connection(self, connection: Any) -> None: ...


class _Pool(Protocol):
    _connections: list[Any]
    _requests: list[Any]
    _max_connections: int
    _max_keepalive_connections: int

    def create_connection(self, origin: httpcore.Origin) -> Any: ...


def assign(pool: _Pool) -> list[Any]:
    """httpcore's pass, each idle connection to one request at most; returns the
    connections to close (the caller closes them outside the pool's lock)."""
    closing: list[Any] = []
    kept: list[_Connection] = []
    # Connections handed to a request: its own, started or about to start on it. One
    # handed out but not started yet is still idle, and its keep-alive may run out
    # before its request starts: closing it then (as httpcore does, encode/httpcore#1110)
    # can close it under the request, which breaks after it was sent. It stays: its
    # request takes it or, finding it closed, queues again.
    taken = {id(request.connection) for request in pool._requests if request.connection is not None}
    now = time.monotonic()
    scan = now >= getattr(pool, "_wi_next_scan", 0.0)
    if scan:
        setattr(pool, "_wi_next_scan", now + _SCAN_EVERY)  # noqa: B010 - not a declared field
    for connection in pool._connections:
        if connection.is_closed():
            continue
        if scan and id(connection) not in taken and connection.has_expired():
            closing.append(connection)
        else:
            kept.append(connection)
    # Surplus keep-alive (httpcore's rule: idle connections go while the pool holds more
    # connections than `max_keepalive_connections`).
    surplus = len(kept) - pool._max_keepalive_connections
    if surplus > 0:
        trimmed: list[_Connection] = []
        for connection in kept:
            if surplus > 0 and id(connection) not in taken and connection.is_idle():
                closing.append(connection)
                surplus -= 1
            else:
                trimmed.append(connection)
        kept = trimmed
    available = [c for c in kept if id(c) not in taken and c.is_available()]
    idle = [c for c in kept if id(c) not in taken and c.is_idle()]
    queued: list[_PoolRequest] = [request for request in pool._requests if request.connection is None]
    for request in queued:
        origin = request.request.url.origin
        chosen = None
        while chosen is None:
            index = next((i for i, c in enumerate(available) if c.can_handle_request(origin)), None)
            if index is None:
                break
            chosen = available.pop(index)
            if not scan and chosen.has_expired():
                # Not checked by this pass's scan: checked now, before it is handed out.
                closing.append(chosen)
                kept.remove(chosen)
                if chosen in idle:
                    idle.remove(chosen)
                chosen = None
        if chosen is None:
            if len(kept) >= pool._max_connections:
                victim = next((c for c in idle if id(c) not in taken), None)
                if victim is None:
                    continue  # stays queued until a connection frees up
                idle.remove(victim)
                kept.remove(victim)
                if victim in available:
                    available.remove(victim)
                closing.append(victim)
            chosen = pool.create_connection(origin)
            kept.append(chosen)
        taken.add(id(chosen))
        request.assign_to_connection(chosen)
    pool._connections = kept
    return closing


class _AsyncPool(httpcore.AsyncConnectionPool):
    def _assign_requests_to_connections(self) -> list[Any]:
        return assign(self)


class _SyncPool(httpcore.ConnectionPool):
    def _assign_requests_to_connections(self) -> list[Any]:
        return assign(self)


def install(client: httpx.AsyncClient | httpx.Client) -> bool:
    """Give `client`'s own plain HTTP/1.1 pool the fixed pass; False when not installed
    (another transport, a proxy, HTTP/2, an httpcore this was not written for)."""
    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    if not _SUPPORTED or getattr(pool, "_http2", True):
        return False
    if type(pool) is httpcore.AsyncConnectionPool:
        pool.__class__ = _AsyncPool
        return True
    if type(pool) is httpcore.ConnectionPool:
        pool.__class__ = _SyncPool
        return True
    return False


def async_http_client() -> httpx.AsyncClient:
    """The `httpx.AsyncClient` an `AsyncClient` makes for itself."""
    client = httpx.AsyncClient(limits=DEFAULT_LIMITS, follow_redirects=False)
    install(client)
    return client


def sync_http_client() -> httpx.Client:
    """The `httpx.Client` a `Client` makes for itself (and again after `fork`)."""
    client = httpx.Client(limits=DEFAULT_LIMITS, follow_redirects=False)
    install(client)
    return client
