"""Both clients against a hostile peer: a raw TCP server on 127.0.0.1 whose bytes are written by hand.

No HTTP library on the server side: that is the point. Each test makes the peer misbehave
in one way (huge headers, an endless SSE line, a decompression bomb, silence, a closed
connection, a stalled stream) and checks that the SDK answers with its typed error, in
bounded time and, where a body could be huge, with bounded memory (`tracemalloc` peak).

The server runs in a background thread with its own event loop, so the sync client (which
blocks the test's thread) and the async client (on the test's loop) talk to the same code.
The clients use their own connection pools (no `http_client=`): what is tested is what
users get by default.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import json
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from _helpers import API_KEY, MESSAGES, MODEL, chunk, completion_body, error_body
from conftest import Sleeps
from test_integration import _settle

import wandb_inference as wi
from wandb_inference._streaming._sse import DEFAULT_MAX_EVENT_SIZE

MiB = 1 << 20
# Every test runs on both transports of AsyncClient (httpx's and aiohttp's): conftest.py.
pytestmark = pytest.mark.usefixtures("async_transport")


class Peer:
    """One accepted connection, as a handler sees it."""

    def __init__(self, server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer

    async def read_request(self) -> bytes:
        """Read one request (head and Content-Length body); record and return its head."""
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        self.server.requests.append(head)
        return head

    async def send(self, data: bytes) -> None:
        """Write and wait until the bytes are handed to the kernel (backpressure)."""
        self.writer.write(data)
        await self.writer.drain()
        self.server.bytes_sent += len(data)


Handler = Callable[[Peer], Awaitable[None]]


class RawServer:
    """A hand-written HTTP peer on 127.0.0.1: `handler(peer)` runs once per connection.

    Attributes:
        base_url: the API base URL to point a client at.
        connections: connections accepted (after the TLS handshake, when TLS is on).
        requests: the request heads received, in order.
        bytes_sent: bytes the handlers managed to hand to the kernel.
        errors: unexpected exceptions raised by handlers (a test bug, not the SDK's).
    """

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.bytes_sent = 0
        self.errors: list[BaseException] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        servers: list[asyncio.Server] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            start = asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ssl_context)
            servers.append(self._loop.run_until_complete(start))
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="raw-http-peer", daemon=True)
        self._thread.start()
        if not started.wait(10):  # pragma: no cover - the loop failed to start
            raise RuntimeError("the raw server did not start")
        self._server = servers[0]
        port = self._server.sockets[0].getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.base_url = f"{scheme}://127.0.0.1:{port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            await self.handler(Peer(self, reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client hung up (that is often the expected outcome), or shutdown
        except Exception as exc:  # pragma: no cover - reported by close()
            self.errors.append(exc)
        finally:
            self._tasks.discard(task)
            writer.close()
            with suppress(ConnectionError, asyncio.CancelledError, ssl.SSLError):
                await writer.wait_closed()

    def close(self) -> None:
        """Stop accepting, cancel the handlers still running, and stop the thread."""

        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        assert not self.errors, self.errors


@contextmanager
def running_servers() -> Iterator[Callable[..., RawServer]]:
    """A function starting raw servers; all are stopped on exit."""
    servers: list[RawServer] = []

    def start(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> RawServer:
        server = RawServer(handler, ssl_context=ssl_context)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    """Start raw servers for a test; all are stopped at its end."""
    with running_servers() as start:
        yield start


async def chat(
    kind: str, base_url: str, sleeps: Sleeps, *, stream: bool = False, messages: Any = MESSAGES, **options: Any
) -> Any:
    """One chat call from a fresh client of `kind` with its own pool; a stream is read to the end.

    Retries are off unless `max_retries=` is given; waits between retries are recorded in
    `sleeps`, never slept.
    """
    options.setdefault("max_retries", 0)
    if kind == "async":
        async with wi.AsyncClient(API_KEY, base_url=base_url, sleep=sleeps.async_, **options) as aclient:
            if not stream:
                return await aclient.chat.create(model=MODEL, messages=messages)
            astream = await aclient.chat.create(model=MODEL, messages=messages, stream=True)
            async with astream:
                return [c async for c in astream]
    with wi.Client(API_KEY, base_url=base_url, sleep=sleeps.sync, **options) as client:
        if not stream:
            return client.chat.create(model=MODEL, messages=messages)
        with client.chat.create(model=MODEL, messages=messages, stream=True) as sync_stream:
            return list(sync_stream)


@contextmanager
def traced_peak() -> Iterator[list[int]]:
    """Trace Python allocations (every thread); the list receives the peak in bytes."""
    out: list[int] = []
    tracemalloc.start()
    try:
        yield out
    finally:
        out.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def head(status: str, *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers, "connection: close", "", ""]
    return "\r\n".join(lines).encode()


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# --------------------------------------------------------------------------- headers


async def test_gigantic_response_headers_are_a_connection_error(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "x-padding: " + "a" * 200_000, "content-length: 2") + b"{}")

    server = serve(handler)
    started = time.monotonic()
    with pytest.raises(wi.APIConnectionError) as info:
        await chat(kind, server.base_url, sleeps, max_retries=1)
    assert time.monotonic() - started < 10
    error = info.value
    assert not isinstance(error, wi.APITimeoutError)
    message = str(error)
    assert "RemoteProtocolError" in message and "100 KiB" in message
    assert "Could not reach" not in message  # it was reached: the reply was the problem
    # The request had been sent: a chat POST is never re-sent after that (it may have
    # been processed and billed), and the error says so.
    assert server.connections == 1
    assert error.may_have_been_processed and "may have received and processed it" in message


# --------------------------------------------------------------------------- streams


async def test_endless_sse_line_is_a_stream_error_with_bounded_memory(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    # The client cannot choose the SSE size limit (the stream is built with the default):
    # the test uses the default 16 MiB and offers four times as much in one line.
    offered = 4 * DEFAULT_MAX_EVENT_SIZE
    block = b"a" * 65536

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "content-type: text/event-stream") + b"data: ")
        for _ in range(offered // len(block)):
            await peer.send(block)

    server = serve(handler)
    started = time.monotonic()
    with traced_peak() as peak, pytest.raises(wi.StreamError) as info:
        await chat(kind, server.base_url, sleeps, stream=True)
    assert time.monotonic() - started < 20
    assert type(info.value) is wi.StreamError
    assert f"SSE size limit of {DEFAULT_MAX_EVENT_SIZE:,} bytes" in str(info.value)
    assert info.value.chunks_received == 0
    # Memory follows the limit, not the body: the client stopped reading at the limit.
    assert peak[0] < DEFAULT_MAX_EVENT_SIZE + 8 * MiB, peak[0] / MiB
    assert server.bytes_sent < offered * 3 // 4  # it stopped reading: no drain to the end


async def test_stalled_stream_is_interrupted_with_the_partial_text(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "content-type: text/event-stream", "transfer-encoding: chunked"))
        await peer.send(http_chunk(sse_event(chunk("Hel", role="assistant"))))
        await peer.send(http_chunk(sse_event(chunk("lo"))))
        await asyncio.sleep(3600)  # then nothing, with the connection open

    server = serve(handler)
    started = time.monotonic()
    with pytest.raises(wi.StreamInterruptedError) as info:
        await chat(kind, server.base_url, sleeps, stream=True, timeout=0.5)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 5
    error = info.value
    assert error.text == "Hello" and error.chunks_received == 2
    assert error.partial is not None and error.partial.text == "Hello"
    assert "timed out" in str(error) and "(ReadTimeout: )" not in str(error)
    assert server.connections == 1  # a stream that yielded is never re-sent


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("ctype", "body", "needle"),
    [
        ("application/json", b'{"id": "chatcmpl-1", "choices": [', "'application/json'"),
        ("text/html", b"<html><head><title>Sign in</title></head></html>", "'text/html'"),
    ],
)
async def test_non_json_success_is_a_validation_error(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps, ctype: str, body: bytes, needle: str
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", f"content-type: {ctype}", f"content-length: {len(body)}") + body)

    server = serve(handler)
    with pytest.raises(wi.APIResponseValidationError) as info:
        await chat(kind, server.base_url, sleeps, max_retries=3)
    assert "Expected JSON" in str(info.value) and needle in str(info.value)
    assert server.connections == 1  # a 200 that is not JSON is not retried


@pytest.mark.parametrize(
    ("status", "body", "cls", "attempts"),
    [
        (400, error_body("temperature too high", "invalid_value"), wi.BadRequestError, 1),
        (429, error_body("You exceeded your current quota", "insufficient_quota"), wi.QuotaExceededError, 1),
        (429, error_body("Concurrency limit reached for requests", "rate_limit_exceeded"), wi.RateLimitError, 3),
    ],
)
async def test_error_bodies_from_a_real_socket_are_read_and_classified(
    serve: Callable[..., RawServer],
    kind: str,
    sleeps: Sleeps,
    status: int,
    body: dict[str, Any],
    cls: type[wi.APIStatusError],
    attempts: int,
) -> None:
    """A streamed error reply: its body must be read (not `httpx.ResponseNotRead`)."""
    raw = json.dumps(body).encode()

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head(f"{status} Error", "content-type: application/json", f"content-length: {len(raw)}") + raw)

    server = serve(handler)
    with pytest.raises(cls) as info:
        await chat(kind, server.base_url, sleeps, max_retries=2)
    error = info.value
    assert type(error) is cls
    assert error.server_message == body["error"]["message"]
    assert error.code == body["error"]["code"]
    assert error.body == body and error.response.json() == body
    assert server.connections == attempts


@functools.cache
def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip body of `inflated_mib` MiB of zeros, about 1000 times smaller on the wire.

    Built from one compressed MiB repeated: after a full flush the deflate state is reset,
    so every later 1 MiB segment compresses to the same bytes. No trailer: the SDK must
    give up long before the end.
    """
    zeros = bytes(MiB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    return first + segment * (inflated_mib - 1)


def bomb_handler(status: str, bomb: bytes, ctype: str = "application/json") -> Handler:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            head(
                status,
                f"content-type: {ctype}",
                "content-encoding: gzip",
                f"content-length: {len(bomb)}",
            )
        )
        for start in range(0, len(bomb), 65536):
            await peer.send(bomb[start : start + 65536])

    return handler


BOMB_MIB = 1024
# What the clients may hold beyond a cap while refusing a bomb: one inflated piece (64 KiB),
# the compressed read it came from, the list of pieces, the test server's own buffers.
# httpx's own decoder, which inflates a whole 64 KiB read at once, needed ~135 MiB more.
SLACK = 4 * MiB


async def test_gzip_bomb_success_is_refused_with_bounded_memory(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    bomb = gzip_bomb(BOMB_MIB)
    assert len(bomb) < 2 * MiB
    server = serve(bomb_handler("200 OK", bomb))
    with traced_peak() as peak, pytest.raises(wi.APIResponseValidationError, match="exceeds 100 MiB"):
        await chat(kind, server.base_url, sleeps)
    print(f"\ngzip bomb, 200 ({kind}): peak {peak[0] / MiB:.1f} MiB")
    # The 100 MiB reply cap, and not more than a few MiB above it: compressed bodies are
    # inflated 64 KiB at a time and the cap checked after each piece.
    assert peak[0] < 100 * MiB + SLACK, peak[0] / MiB
    assert server.connections == 1


async def test_gzip_bomb_error_status_is_classified_with_bounded_memory(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    server = serve(bomb_handler("500 Internal Server Error", gzip_bomb(BOMB_MIB)))
    with traced_peak() as peak, pytest.raises(wi.InternalServerError) as info:
        await chat(kind, server.base_url, sleeps)
    error = info.value
    assert error.status_code == 500 and str(error).startswith("500 ")
    assert error.body is None and error.response.content == b""  # over the 1 MiB cap: dropped
    print(f"\ngzip bomb, 500 ({kind}): peak {peak[0] / MiB:.1f} MiB")
    assert peak[0] < 1 * MiB + SLACK, peak[0] / MiB  # the 1 MiB error-body cap


async def test_gzip_bomb_stream_is_a_stream_error_with_bounded_memory(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    """An event stream that inflates to 1 GiB without a line end: the SSE line limit
    (16 MiB) ends it, and memory follows that limit."""
    server = serve(bomb_handler("200 OK", gzip_bomb(BOMB_MIB), "text/event-stream"))
    with traced_peak() as peak, pytest.raises(wi.StreamError) as info:
        await chat(kind, server.base_url, sleeps, stream=True)
    assert type(info.value) is wi.StreamError
    assert f"SSE size limit of {DEFAULT_MAX_EVENT_SIZE:,} bytes" in str(info.value)
    print(f"\ngzip bomb, stream ({kind}): peak {peak[0] / MiB:.1f} MiB")
    assert peak[0] < DEFAULT_MAX_EVENT_SIZE + SLACK, peak[0] / MiB


@pytest.mark.parametrize("coding", ["deflate", "deflate-raw", "gzip, gzip"])
async def test_other_compressed_replies_are_inflated(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps, coding: str
) -> None:
    """zlib-wrapped and raw deflate (servers send both as `deflate`), and two layers."""
    raw = json.dumps(completion_body("Hello there")).encode()
    if coding == "deflate":
        body = zlib.compress(raw)
    elif coding == "deflate-raw":
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(raw) + packer.flush()
    else:
        body = gzip.compress(gzip.compress(raw))
    header = coding.replace("deflate-raw", "deflate")

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            head(
                "200 OK",
                "content-type: application/json",
                f"content-encoding: {header}",
                f"content-length: {len(body)}",
            )
            + body
        )

    server = serve(handler)
    reply = await chat(kind, server.base_url, sleeps)
    assert reply.text == "Hello there"


async def test_an_unasked_for_coding_is_a_validation_error(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    """Brotli (or zstd) was not asked for and has no bounded decoder: a typed error."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "content-type: application/json", "content-encoding: br", "content-length: 4"))
        await peer.send(b"\x0b\x01\x80{")

    server = serve(handler)
    with pytest.raises(wi.APIResponseValidationError, match="Content-Encoding 'br'"):
        await chat(kind, server.base_url, sleeps, max_retries=2)
    assert server.connections == 1  # a reply that came is not asked for again


# --------------------------------------------------------------------------- silence and hang-ups


async def test_server_that_never_answers_times_out(serve: Callable[..., RawServer], kind: str, sleeps: Sleeps) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await asyncio.sleep(3600)

    server = serve(handler)
    started = time.monotonic()
    with pytest.raises(wi.APITimeoutError, match="waiting for the response"):
        await chat(kind, server.base_url, sleeps, timeout=0.5, max_retries=3)
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 5
    assert server.connections == 1 and sleeps.delays == []  # read timeouts are not retried


async def test_server_that_never_reads_the_upload_times_out(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    """The server reads the head, never the body: the upload stalls once the socket
    buffers are full. httpx's write timeout ends it; aiohttp has none, so the transport's
    deadline over the exchange (httpx's four timeouts added) does, with the same error."""

    async def handler(peer: Peer) -> None:
        await peer.reader.readuntil(b"\r\n\r\n")
        peer.server.requests.append(b"head")
        await asyncio.sleep(3600)

    server = serve(handler)
    big = [{"role": "user", "content": "x" * (48 * MiB)}]
    started = time.monotonic()
    with pytest.raises(wi.APITimeoutError, match=r"sending the request \(WriteTimeout\)"):
        await chat(kind, server.base_url, sleeps, messages=big, timeout=0.5, max_retries=3)
    assert time.monotonic() - started < 15
    assert server.connections == 1 and sleeps.delays == []  # a write timeout is not retried
    # Its connection is gone, not left closing for ever behind 48 MiB nobody will read.
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    assert await _settle(port, at_most=0) == 0


async def test_server_closing_after_the_request_is_not_resent(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    """The server read the whole request, then closed: it may have processed it. Not re-sent."""

    async def handler(peer: Peer) -> None:
        await peer.read_request()  # then close without a byte

    server = serve(handler)
    with pytest.raises(wi.APIConnectionError) as info:
        await chat(kind, server.base_url, sleeps, max_retries=2)
    assert type(info.value) is wi.APIConnectionError
    assert info.value.may_have_been_processed
    assert "closed the connection" in str(info.value) and "did not re-send it" in str(info.value)
    assert len(server.requests) == 1 and sleeps.delays == []
