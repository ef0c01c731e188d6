"""`AsyncClient(transport="aiohttp")`: the switch, and what is particular to aiohttp's pool.

Everything the SDK promises (typed errors, retries, limits, streams, secrets, soak) is
tested on both transports by the suites that opt in (`async_transport` in conftest.py);
here: the switch's own errors, the pool's limits kept as httpx keeps them (idle
connections, pool timeouts), a client dropped without closing, and the mapping of each
aiohttp failure to the httpx error the retry policy reads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from _helpers import API_KEY, MESSAGES, MODEL
from test_integration import _sockets_to

import wandb_inference as wi
from wandb_inference._transports._aiohttp import AiohttpTransport, _raise
from wandb_inference.server import LocalServer


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=API_KEY) as srv:
        yield srv


async def test_the_switch_checks_its_value_and_its_company() -> None:
    with pytest.raises(wi.ConfigurationError, match="transport must be 'httpx' or 'aiohttp', got 'curl'"):
        wi.AsyncClient(API_KEY, transport="curl")  # type: ignore[arg-type]
    async with httpx.AsyncClient() as http:
        with pytest.raises(wi.ConfigurationError, match="pass it or http_client=, not both"):
            wi.AsyncClient(API_KEY, transport="aiohttp", http_client=http)
        # A user's own pool with the default transport is fine.
        wi.AsyncClient(API_KEY, transport="httpx", http_client=http)


def test_without_aiohttp_installed_the_switch_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['aiohttp'] = None\n"
        "import wandb_inference\n"
        "try:\n"
        "    wandb_inference.AsyncClient(api_key='k', transport='aiohttp')\n"
        "except wandb_inference.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'wandb-inference[aiohttp]'" in out.stdout


def test_outside_asyncio_it_is_a_configuration_error() -> None:
    """aiohttp runs on asyncio only: under trio (or no loop) the first call says so."""
    transport = AiohttpTransport(limits=httpx.Limits())
    with pytest.raises(wi.ConfigurationError, match="asyncio only"):
        transport._open()


async def test_the_pool_keeps_at_most_the_keepalive_limit_idle(server: LocalServer) -> None:
    """httpx keeps `max_keepalive_connections` idle and closes the rest; so does this pool."""
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=5)
    http = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    async with http, wi.AsyncClient(API_KEY, base_url=server.base_url, http_client=http) as client:
        await asyncio.gather(*(client.models.list() for _ in range(30)))
        for _ in range(100):  # closing takes the loop a turn
            if _sockets_to(server.port) <= 5:
                break
            await asyncio.sleep(0.01)
        assert 1 <= _sockets_to(server.port) <= 5
        await client.models.list()  # an idle connection serves the next request


async def test_a_full_pool_times_out_as_a_pool_timeout(server: LocalServer) -> None:
    """All connections busy (one open stream, max_connections=1): the next request waits
    for the pool, and its timeout is httpx's PoolTimeout (retried: it was never sent)."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    http = httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    timeout = httpx.Timeout(5.0, pool=0.3)
    async with (
        http,
        wi.AsyncClient(API_KEY, base_url=server.base_url, http_client=http, timeout=timeout, sleep=sleep) as client,
    ):
        stall = {"X-Wandb-Fault": "stall-stream;after=1;seconds=10"}  # the stream keeps its connection
        stream = await client.chat.create(
            model=MODEL, messages=MESSAGES, stream=True, max_tokens=50, extra_headers=stall
        )
        async with stream:
            await anext(stream)
            with pytest.raises(
                wi.APITimeoutError, match=r"waiting for a free connection from the pool \(PoolTimeout\)"
            ):
                await client.models.list()
        assert len(delays) == 3  # retried, as httpx's pool timeouts are


async def test_a_client_dropped_unclosed_closes_its_sockets_quietly(
    server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    client: Any = wi.AsyncClient(API_KEY, base_url=server.base_url, transport="aiohttp")
    assert (await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2)).text
    assert _sockets_to(server.port) == 1  # the pooled connection
    client.itself = client  # in a reference cycle: collected in any order, by the cycle collector
    with caplog.at_level(logging.DEBUG):
        del client
        gc.collect()
        await asyncio.sleep(0.05)
    assert _sockets_to(server.port) == 0
    assert not [r for r in caplog.records if "Unclosed" in r.getMessage()]


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def _key(conn: str = "127.0.0.1:9") -> Any:
    return type("Key", (), {"host": "127.0.0.1", "port": 9, "ssl": None})()


@pytest.mark.parametrize(
    ("error", "expected", "sent"),
    [
        (aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "refused")), httpx.ConnectError, False),
        (
            aiohttp.ClientConnectorDNSError(_key(), socket.gaierror(-2, "Name or service not known")),
            httpx.ConnectError,
            False,
        ),
        (aiohttp.ConnectionTimeoutError("Connection timeout"), httpx.ConnectTimeout, False),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), httpx.ReadTimeout, True),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, True),
        (aiohttp.ClientPayloadError("Response payload is not completed"), httpx.RemoteProtocolError, True),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError, True),
        (aiohttp.ClientOSError(32, "Can not write request body for http://x"), httpx.WriteError, False),
        (aiohttp.ClientConnectionError("Connection closed"), httpx.ReadError, True),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_each_aiohttp_failure_is_the_httpx_error_of_the_same_event(
    error: Exception, expected: type[httpx.TransportError], sent: bool
) -> None:
    """What the retry policy reads: never sent (retried for any request) or maybe processed."""
    from wandb_inference._policy._retry import may_have_been_processed

    request = _request()
    with pytest.raises(httpx.TransportError) as info:
        _raise(error, request)
    assert type(info.value) is expected
    assert info.value.__cause__ is error and info.value.request is request
    assert may_have_been_processed(info.value) is sent


def test_a_pool_wait_is_a_pool_timeout() -> None:
    with pytest.raises(httpx.PoolTimeout):
        _raise(aiohttp.ConnectionTimeoutError("Connection timeout"), _request(), pool_full=True)
