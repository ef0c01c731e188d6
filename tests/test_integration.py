"""Both clients against the project's own server on 127.0.0.1: real sockets, real streams.

The async tests (and those taking `kind`) run on both transports of `AsyncClient`
(httpx's and aiohttp's): see `async_transport` in conftest.py.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conftest import Either

import wandb_inference as wi
from wandb_inference.server import Fault, LocalServer

pytestmark = pytest.mark.usefixtures("async_transport")

KEY = "integration-key-777"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "Tell me something."}]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _reset(server: LocalServer) -> None:
    server.faults.clear()
    server.requests.clear()


@pytest.fixture
def client(server: LocalServer) -> Iterator[wi.Client]:
    with wi.Client(KEY, base_url=server.base_url) as c:
        yield c


@pytest.fixture
async def aclient(server: LocalServer) -> AsyncIterator[wi.AsyncClient]:
    async with wi.AsyncClient(KEY, base_url=server.base_url) as c:
        yield c


def either(kind: str, base_url: str, api_key: str = KEY, **options: Any) -> Either:
    """A client of `kind` with its own pool (close it: `await c.close()`)."""
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    if "sleep" in options and kind == "async":
        sleep = options["sleep"]

        async def asleep(seconds: float) -> None:
            sleep(seconds)

        options["sleep"] = asleep
    return Either(kind, cls(api_key, base_url=base_url, **options))


async def _collect_text(c: Either, stream: Any, got: list[str]) -> None:
    if c.kind == "async":
        async for chunk in stream:
            got.append(chunk.text)
    else:
        for chunk in stream:
            got.append(chunk.text)


def _sockets_to(port: int) -> int:
    """This process's open TCP connections to the server on `port` (their client ends).

    Read from /proc (the socket inodes of /proc/self/fd, looked up in /proc/net/tcp*), not
    from httpx's or httpcore's private pool: a response that is not closed keeps its
    connection, hence its socket, open.
    """
    if not os.path.isdir("/proc/self/fd"):  # pragma: no cover - depends on the machine
        pytest.skip("counting sockets needs Linux's /proc")
    inodes: set[str] = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):  # pragma: no cover - no IPv6 in this kernel
            continue
        with open(table) as rows:
            next(rows)  # the column names
            for row in rows:
                fields = row.split()  # sl, local, remote, state, ..., inode (the tenth)
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


async def _settle(port: int, at_most: int) -> int:
    """`_sockets_to(port)` once it is `at_most` or less, or after 5 s (closing a socket
    takes the event loop a turn or two)."""
    for _ in range(500):
        count = _sockets_to(port)
        if count <= at_most:
            break
        await asyncio.sleep(0.01)
    return count


def test_sync_round_trip(client: wi.Client) -> None:
    models = client.models.list()
    assert MODEL in models.ids
    reply = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=5)
    again = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=5)
    assert reply.text and reply.text == again.text
    usage: Any = reply.usage
    assert usage.completion_tokens <= 12
    with client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=5, stream=True) as stream:
        streamed = "".join(stream.text_stream())
    assert streamed == reply.text
    vectors = client.bge_m3().embed(["a", "b"])
    assert len(vectors) == 2 and len(vectors[0]) == 1024
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3


async def test_async_round_trip(aclient: wi.AsyncClient) -> None:
    reply = await aclient.chat.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=5)
    stream = await aclient.chat.create(model=MODEL, messages=MESSAGES, max_tokens=12, seed=5, stream=True)
    async with stream:
        chunks = [c async for c in stream]
    assert "".join(c.text for c in chunks) == reply.text
    assert stream.completion.text == reply.text
    result = await aclient.embeddings.create(model="BAAI/bge-m3", input="x", dimensions=8)
    assert len(result.data[0].embedding) == 8


async def test_headers_reach_the_server(server: LocalServer, kind: str) -> None:
    c = either(kind, server.base_url, project="team/proj")
    try:
        await c.call("chat.create", model=MODEL, messages=MESSAGES, max_tokens=2, extra_headers={"X-Trace": "t1"})
    finally:
        await c.close()
    (seen,) = server.requests
    headers = {k.lower(): v for k, v in seen.headers}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-project"] == "team/proj"
    assert headers["x-trace"] == "t1"
    assert headers["user-agent"].startswith("wandb-inference/")
    assert headers["accept-encoding"] == "gzip, deflate"  # only what the SDK inflates under its caps
    assert [k for k, _ in seen.headers if k.lower() == "authorization"] == ["authorization"]  # once


async def test_retry_after_gaps_are_about_one_second(server: LocalServer, kind: str) -> None:
    server.faults.push(Fault.status(429, kind="concurrency", retry_after=1), times=2)
    c = either(kind, server.base_url)
    start = time.monotonic()
    try:
        reply = await c.call("chat.create", model=MODEL, messages=MESSAGES, max_tokens=3)
    finally:
        await c.close()
    elapsed = time.monotonic() - start
    assert reply.text
    assert len(server.requests) == 3
    assert 1.9 <= elapsed < 6.0  # two 1 s waits; the upper bound leaves a loaded machine room


@pytest.mark.parametrize("status", [402, 403, 500, 503])
async def test_fault_statuses_map_to_typed_errors(server: LocalServer, kind: str, status: int) -> None:
    server.faults.push(Fault.status(status), times=None)
    c = either(kind, server.base_url, max_retries=1, sleep=lambda s: None)
    try:
        with pytest.raises(wi.APIStatusError) as info:
            await c.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await c.close()
    expected = {
        402: wi.QuotaExceededError,
        403: wi.PermissionDeniedError,
        500: wi.InternalServerError,
        503: wi.ServiceUnavailableError,
    }
    assert type(info.value) is expected[status]
    assert len(server.requests) == (2 if status >= 500 else 1)


async def test_wrong_key_and_unknown_model(server: LocalServer, kind: str) -> None:
    c = either(kind, server.base_url, api_key="wrong")
    try:
        with pytest.raises(wi.AuthenticationError):
            await c.call("models.list")
    finally:
        await c.close()
    c = either(kind, server.base_url)
    try:
        with pytest.raises(wi.NotFoundError, match=r"models\.list"):
            await c.call("chat.create", model="nobody/model", messages=MESSAGES)
    finally:
        await c.close()


async def test_connection_reset_after_the_request_is_not_resent(server: LocalServer, kind: str) -> None:
    """The server received the request, then reset: it may have processed it, so a chat
    POST is not re-sent (that could bill twice); the error says so."""
    server.faults.push(Fault.reset(), times=1)
    c = either(kind, server.base_url, sleep=lambda s: None)
    try:
        with pytest.raises(wi.APIConnectionError) as info:
            await c.call("chat.create", model=MODEL, messages=MESSAGES, max_tokens=2)
    finally:
        await c.close()
    assert type(info.value) is wi.APIConnectionError
    assert info.value.may_have_been_processed and "did not re-send it" in str(info.value)
    assert len(server.requests) == 1


async def test_connection_reset_of_an_idempotent_request_is_retried(server: LocalServer, kind: str) -> None:
    server.faults.push(Fault.reset(), times=1)
    delays: list[float] = []
    c = either(kind, server.base_url, sleep=delays.append)
    try:
        assert len(await c.call("models.list")) > 0
    finally:
        await c.close()
    # Retried once, by the SDK's own policy (one retry layer: it waited once).
    assert len(server.requests) == 2 and len(delays) == 1


async def test_connection_refused_is_retried(kind: str) -> None:
    """Refused: the request never left, so it is retried (and nothing is received twice)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    delays: list[float] = []
    c = either(kind, f"http://127.0.0.1:{port}/v1", max_retries=2, sleep=delays.append)
    try:
        with pytest.raises(wi.APIConnectionError) as info:
            await c.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await c.close()
    assert type(info.value) is wi.APIConnectionError
    assert len(delays) == 2 and not info.value.may_have_been_processed
    assert "Could not reach" in str(info.value) and "retried 2 times" in str(info.value)


async def test_an_unknown_host_is_a_connection_error(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that does not resolve: typed, retried (it was never sent).

    The resolver itself answers "unknown name" here (no query leaves the machine): both
    transports resolve through `socket.getaddrinfo`.
    """
    import socket

    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("no-such-host.invalid", b"no-such-host.invalid"):  # anyio asks with bytes
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    delays: list[float] = []
    c = either(kind, "http://no-such-host.invalid/v1", max_retries=1, sleep=delays.append)
    try:
        with pytest.raises(wi.APIConnectionError) as info:
            await c.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await c.close()
    assert type(info.value) is wi.APIConnectionError and not info.value.may_have_been_processed
    assert "Could not reach http://no-such-host.invalid/v1 (ConnectError" in str(info.value)
    assert "Name or service not known" in str(info.value)
    assert len(delays) == 1 and len(asked) == 2


async def test_cut_stream_keeps_partial_text(server: LocalServer, kind: str) -> None:
    server.faults.push(Fault.cut_stream(after=4, mid_utf8=True), times=1)
    c = either(kind, server.base_url)
    got: list[str] = []
    try:
        stream = await c.call("chat.create", model=MODEL, messages=MESSAGES, max_tokens=50, stream=True)
        with pytest.raises(wi.StreamInterruptedError) as info:
            await _collect_text(c, stream, got)
    finally:
        await c.close()
    assert info.value.text == "".join(got)
    assert info.value.chunks_received >= 4
    assert stream.closed


def test_sync_break_closes_the_connection(server: LocalServer, client: wi.Client) -> None:
    for chunk in client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=200, stream=True):
        if chunk.text:
            break
    gc.collect()
    # The stream was left mid-body: its connection cannot serve another request, and is gone.
    assert _sockets_to(server.port) == 0


async def test_async_break_and_cancel_close_the_connection(server: LocalServer, aclient: wi.AsyncClient) -> None:
    stream = await aclient.chat.create(model=MODEL, messages=MESSAGES, max_tokens=200, stream=True)
    async for chunk in stream:
        if chunk.text:
            break
    for _ in range(5):
        await asyncio.sleep(0)
    assert stream.closed

    server.faults.push(Fault.stall_stream(after=2, seconds=30), times=1)
    started = asyncio.Event()

    async def reader() -> None:
        s = await aclient.chat.create(model=MODEL, messages=MESSAGES, max_tokens=50, stream=True)
        async with s:
            async for _ in s:
                started.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Both streams were left mid-body: their connections are closed, not kept busy.
    assert await _settle(server.port, at_most=0) == 0


async def test_500_concurrent_streams_some_abandoned(server: LocalServer, aclient: wi.AsyncClient) -> None:
    async def one(i: int) -> int:
        stream = await aclient.chat.create(model=MODEL, messages=MESSAGES, max_tokens=8, stream=True)
        n = 0
        async with stream:
            async for _ in stream:
                n += 1
                if i % 5 == 0 and n == 2:
                    break  # abandoned half-way
        return n

    counts = await asyncio.gather(*(one(i) for i in range(500)))
    assert len(counts) == 500 and all(c >= 2 for c in counts)
    # The 400 streams read to the end left idle connections, of which the pool keeps 200
    # (its keep-alive limit); the 100 abandoned ones closed theirs. Were they kept busy
    # instead, 300 sockets would stay open.
    assert await _settle(server.port, at_most=200) <= 200


def test_eight_threads_share_one_client(client: wi.Client) -> None:
    errors: list[BaseException] = []
    done = [0]
    lock = threading.Lock()

    def work() -> None:
        try:
            for _ in range(63):
                client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2)
                with lock:
                    done[0] += 1
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and done[0] == 504


def _child(client: wi.Client, queue: Any) -> None:
    queue.put(client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3).text)


def test_client_works_after_fork(client: wi.Client) -> None:
    before = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3).text
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(client, queue))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 0
    assert queue.get(timeout=5) == before
    assert client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3).text == before


def test_derived_clients_do_not_leak(server: LocalServer, client: wi.Client) -> None:
    client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            derived = client.with_options(timeout=30, default_headers={"X-N": str(i)})
            if i % 100 == 0:
                derived.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1)
            derived.close()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert _sockets_to(server.port) <= 2  # the derived clients shared the one pool
    assert grown < 2_000_000
    assert client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1).text
