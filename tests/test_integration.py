"""Both clients against the project's own server on 127.0.0.1: real sockets, real streams."""

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

import wandb_inference as wi
from wandb_inference.server import Fault, LocalServer

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


def test_headers_reach_the_server(server: LocalServer) -> None:
    with wi.Client(KEY, base_url=server.base_url, project="team/proj") as c:
        c.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2, extra_headers={"X-Trace": "t1"})
    (seen,) = server.requests
    headers = {k.lower(): v for k, v in seen.headers}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-project"] == "team/proj"
    assert headers["x-trace"] == "t1"
    assert headers["user-agent"].startswith("wandb-inference/")


def test_retry_after_gaps_are_about_one_second(server: LocalServer, client: wi.Client) -> None:
    server.faults.push(Fault.status(429, kind="concurrency", retry_after=1), times=2)
    start = time.monotonic()
    reply = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3)
    elapsed = time.monotonic() - start
    assert reply.text
    assert len(server.requests) == 3
    assert 1.9 <= elapsed < 6.0  # two 1 s waits; the upper bound leaves a loaded machine room


@pytest.mark.parametrize("status", [402, 403, 500, 503])
def test_fault_statuses_map_to_typed_errors(server: LocalServer, status: int) -> None:
    server.faults.push(Fault.status(status), times=None)
    with (
        wi.Client(KEY, base_url=server.base_url, max_retries=1, sleep=lambda s: None) as c,
        pytest.raises(wi.APIStatusError) as info,
    ):
        c.chat.create(model=MODEL, messages=MESSAGES)
    expected = {
        402: wi.QuotaExceededError,
        403: wi.PermissionDeniedError,
        500: wi.InternalServerError,
        503: wi.ServiceUnavailableError,
    }
    assert type(info.value) is expected[status]
    assert len(server.requests) == (2 if status >= 500 else 1)


def test_wrong_key_and_unknown_model(server: LocalServer) -> None:
    with wi.Client("wrong", base_url=server.base_url) as c, pytest.raises(wi.AuthenticationError):
        c.models.list()
    with wi.Client(KEY, base_url=server.base_url) as c, pytest.raises(wi.NotFoundError, match=r"models\.list"):
        c.chat.create(model="nobody/model", messages=MESSAGES)


def test_connection_reset_after_the_request_is_not_resent(server: LocalServer, client: wi.Client) -> None:
    """The server received the request, then reset: it may have processed it, so a chat
    POST is not re-sent (that could bill twice); the error says so."""
    server.faults.push(Fault.reset(), times=1)
    with pytest.raises(wi.APIConnectionError) as info:
        client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert info.value.may_have_been_processed and "did not re-send it" in str(info.value)
    assert len(server.requests) == 1


def test_connection_reset_of_an_idempotent_request_is_retried(server: LocalServer, client: wi.Client) -> None:
    server.faults.push(Fault.reset(), times=1)
    assert len(client.models.list()) > 0
    assert len(server.requests) == 2


def test_connection_refused_is_retried() -> None:
    """Refused: the request never left, so it is retried (and nothing is received twice)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again at once: nothing listens there
    delays: list[float] = []
    with (
        wi.Client(KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2, sleep=delays.append) as c,
        pytest.raises(wi.APIConnectionError) as info,
    ):
        c.chat.create(model=MODEL, messages=MESSAGES)
    assert len(delays) == 2 and not info.value.may_have_been_processed
    assert "Could not reach" in str(info.value) and "retried 2 times" in str(info.value)


def test_cut_stream_keeps_partial_text(server: LocalServer, client: wi.Client) -> None:
    server.faults.push(Fault.cut_stream(after=4, mid_utf8=True), times=1)
    stream = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=50, stream=True)
    got: list[str] = []

    def read_all() -> None:
        for chunk in stream:
            got.append(chunk.text)

    with pytest.raises(wi.StreamInterruptedError) as info:
        read_all()
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
