"""Stream objects under misuse: dropped unread, read by `next()` then `for`, read again
after a `break` or `close()`, fed a body that cannot be decoded. Both colours."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from _helpers import API_KEY, BASE_URL, MESSAGES, MODEL, chunk, sse
from conftest import Either

import wandb_inference as wi
from wandb_inference._streaming._processor import StreamProcessor
from wandb_inference._types._chunk import parse_chunk
from wandb_inference.server import LocalServer

# Async tests run on both transports of AsyncClient (httpx's and aiohttp's): conftest.py.
pytestmark = pytest.mark.usefixtures("async_transport")

SSE = {"content-type": "text/event-stream"}
WORDS = ["Hel", "lo", " wor", "ld"]
ONE_PER_READ = [sse(chunk(w), done=False) for w in WORDS] + [b"data: [DONE]\n\n"]


def _sse_handler(body: bytes) -> Any:
    """The whole body in one read."""
    return lambda request: httpx.Response(200, content=body, headers=SSE)


def _pieces_handler(pieces: list[bytes]) -> Any:
    """The body in these reads."""
    return lambda request: httpx.Response(200, stream=_Pieces(pieces), headers=SSE)


class _Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self.pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


async def _next(either: Either, stream: Any) -> Any:
    if either.kind == "async":
        return await anext(stream)
    return next(stream)


async def _read_into(either: Either, stream: Any, texts: list[str]) -> None:
    if either.kind == "async":
        async for c in stream:
            texts.append(c.text)
    else:
        for c in stream:
            texts.append(c.text)


async def _break_after_first(either: Either, stream: Any) -> None:
    if either.kind == "async":
        async for c in stream:
            assert c.text == "Hel"
            break
    else:
        for c in stream:
            assert c.text == "Hel"
            break


async def _until_done(either: Either, stream: Any) -> Any:
    if either.kind == "async":
        return await stream.until_done()
    return stream.until_done()


async def _close(either: Either, stream: Any) -> None:
    if either.kind == "async":
        await stream.aclose()
    else:
        stream.close()


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What `__del__` methods raised (Python prints and swallows those)."""
    seen: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    return seen


# --------------------------------------------------------------------------- dropped streams


async def _read_one(client: wi.AsyncClient) -> str:
    stream = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
    async with stream:
        return (await stream.until_done()).text


def _read_one_sync(client: wi.Client) -> str:
    with client.chat.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        return stream.until_done().text


@pytest.mark.httpx_only  # its own httpx.MockTransport pool
async def test_dropped_async_stream_gives_its_slot_back(unraisable: list[Any]) -> None:
    body = sse(*(chunk(w) for w in WORDS))
    http = httpx.AsyncClient(transport=httpx.MockTransport(_sse_handler(body)))
    async with wi.AsyncClient(API_KEY, base_url=BASE_URL, http_client=http, max_concurrency=1) as client:
        stream = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        del stream  # e.g. an exception before `async with stream`
        gc.collect()
        with anyio.fail_after(5):  # another task: the slot is not its own
            assert await asyncio.create_task(_read_one(client)) == "Hello world"
    await http.aclose()
    for _ in range(3):  # let the scheduled close run before the loop ends
        await asyncio.sleep(0)
    assert unraisable == []


@pytest.mark.httpx_only  # its own httpx.MockTransport pool
async def test_dropped_half_read_async_stream_gives_its_slot_back(unraisable: list[Any]) -> None:
    body = sse(*(chunk(w) for w in WORDS))
    http = httpx.AsyncClient(transport=httpx.MockTransport(_sse_handler(body)))
    async with wi.AsyncClient(API_KEY, base_url=BASE_URL, http_client=http, max_concurrency=1) as client:
        stream = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        assert (await anext(stream)).text == "Hel"
        del stream
        gc.collect()
        with anyio.fail_after(5):
            assert await asyncio.create_task(_read_one(client)) == "Hello world"
    await http.aclose()
    for _ in range(3):
        await asyncio.sleep(0)
    assert unraisable == []


def test_async_stream_dropped_after_its_loop_ended_releases_quietly(unraisable: list[Any]) -> None:
    body = sse(*(chunk(w) for w in WORDS))
    http = httpx.AsyncClient(transport=httpx.MockTransport(_sse_handler(body)))
    client = wi.AsyncClient(API_KEY, base_url=BASE_URL, http_client=http, max_concurrency=1)

    held: list[wi.AsyncChatStream] = []

    async def open_one() -> None:  # not returned: a task keeps its result
        held.append(await client.chat.create(model=MODEL, messages=MESSAGES, stream=True))

    async def read_one_then_close() -> str:
        with anyio.fail_after(5):
            text = await _read_one(client)
        await client.aclose()
        await http.aclose()
        return text

    asyncio.run(open_one())
    held.clear()  # its loop is gone: the slot is given back, nothing can be scheduled
    gc.collect()
    assert asyncio.run(read_one_then_close()) == "Hello world"
    assert unraisable == []


def test_dropped_sync_stream_gives_its_slot_back(unraisable: list[Any]) -> None:
    body = sse(*(chunk(w) for w in WORDS))
    http = httpx.Client(transport=httpx.MockTransport(_sse_handler(body)))
    with wi.Client(API_KEY, base_url=BASE_URL, http_client=http, max_concurrency=1) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        assert next(stream).text == "Hel"
        del stream
        gc.collect()
        texts: list[str] = []
        other = threading.Thread(target=lambda: texts.append(_read_one_sync(client)), daemon=True)
        other.start()  # another thread: the slot is not its own
        other.join(5)
        assert texts == ["Hello world"]
    http.close()
    assert unraisable == []


# --------------------------------------------------------------------------- one iteration per stream


async def test_next_then_for_continues_where_it_left(make_client: Any) -> None:
    # The whole body arrives in one read: the chunks after the first wait in the stream.
    client = make_client(_sse_handler(sse(*(chunk(w) for w in WORDS))))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    first = await _next(client, stream)
    second = await _next(client, stream)
    rest = await client.collect(stream)
    assert [first.text, second.text, *(c.text for c in rest)] == WORDS
    assert stream.closed
    assert stream.completion.text == "Hello world"


async def test_next_then_for_across_reads(make_client: Any) -> None:
    client = make_client(_pieces_handler(ONE_PER_READ))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    assert (await _next(client, stream)).text == "Hel"
    assert [c.text for c in await client.collect(stream)] == WORDS[1:]
    assert stream.closed


async def test_reading_a_finished_stream_again_yields_nothing(make_client: Any) -> None:
    client = make_client(_sse_handler(sse(*(chunk(w) for w in WORDS))))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    assert [c.text for c in await client.collect(stream)] == WORDS
    assert await client.collect(stream) == []
    assert (await _until_done(client, stream)).text == "Hello world"
    if client.kind == "async":
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    else:  # not through `_next`: a StopIteration cannot leave a coroutine
        with pytest.raises(StopIteration):
            next(stream)


async def test_until_done_after_a_break_is_a_typed_interruption(make_client: Any) -> None:
    client = make_client(_pieces_handler(ONE_PER_READ))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    await _break_after_first(client, stream)
    assert stream.closed  # at once, in both colours: no chunk is read after a `break`
    with pytest.raises(wi.StreamInterruptedError, match="closed before it finished") as info:
        await _until_done(client, stream)
    assert info.value.text == "Hel"
    assert info.value.partial is not None and info.value.partial.text == "Hel"
    assert "Kept the 1 chunk(s) received so far" in str(info.value)
    with pytest.raises(wi.StreamInterruptedError, match="closed before it finished"):
        await client.collect(stream)
    for _ in range(3):  # the response's close, scheduled by the `break`, runs
        await asyncio.sleep(0)
    assert stream.response.is_closed


async def test_break_after_done_arrived_reads_nothing_more_without_error(make_client: Any) -> None:
    # One read holds every chunk and `[DONE]`: the stream had finished when the loop left.
    client = make_client(_sse_handler(sse(*(chunk(w) for w in WORDS))))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    await _break_after_first(client, stream)
    assert stream.closed
    assert await client.collect(stream) == []
    assert (await _until_done(client, stream)).text == "Hello world"


async def test_iterating_a_stream_closed_before_reading_is_a_typed_interruption(make_client: Any) -> None:
    client = make_client(_sse_handler(sse(*(chunk(w) for w in WORDS))))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    await _close(client, stream)
    with pytest.raises(wi.StreamInterruptedError, match="closed before it finished") as info:
        await _next(client, stream)
    assert info.value.text == "" and info.value.partial is None
    assert "Nothing had been received" in str(info.value)


async def test_a_failed_stream_read_again_is_typed(make_client: Any) -> None:
    client = make_client(_sse_handler(sse(chunk("Hel"), done=False)))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamInterruptedError, match="without"):
        await client.collect(stream)
    with pytest.raises(wi.StreamInterruptedError, match="closed before it finished") as info:
        await client.collect(stream)
    assert info.value.text == "Hel"


async def test_response_closed_under_the_stream_is_typed(make_client: Any) -> None:
    client = make_client(_pieces_handler(ONE_PER_READ))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    if client.kind == "async":
        await stream.response.aclose()
    else:
        stream.response.close()
    with pytest.raises(wi.StreamInterruptedError, match="StreamClosed") as info:
        await client.collect(stream)
    assert isinstance(info.value.__cause__, httpx.StreamClosed)
    assert stream.closed


@pytest.mark.parametrize(
    ("tail", "cls"),
    [
        (b'event: error\ndata: {"message": "backend died"}\n\n', wi.StreamEventError),
        (b'data: {"error": {"message": "backend died"}}\n\n', wi.StreamEventError),
        (b"data: {not json\n\n", wi.StreamError),
    ],
    ids=["error-event", "error-payload", "bad-json"],
)
async def test_chunks_read_together_with_an_error_come_out_before_it(
    make_client: Any, tail: bytes, cls: type[wi.StreamError]
) -> None:
    """One network read holding two chunks and then an error: the reader gets both chunks,
    then the error, whose text is exactly the text it saw (a fast server or a coalescing
    transport packs events so)."""
    client = make_client(_sse_handler(sse(chunk("Hel", role="assistant"), chunk("lo"), done=False) + tail))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    got: list[str] = []
    with pytest.raises(cls) as info:
        await _read_into(client, stream, got)
    assert type(info.value) is cls
    assert got == ["Hel", "lo"]
    assert info.value.text == "Hello" and info.value.chunks_received == 2
    assert stream.closed
    with pytest.raises(wi.StreamInterruptedError):  # read again: closed before it finished
        await _read_into(client, stream, got)


# --------------------------------------------------------------------------- undecodable bodies


def _gzip_then_garbage() -> list[bytes]:
    packer = zlib.compressobj(wbits=zlib.MAX_WBITS | 16)
    head = packer.compress(sse(chunk("Hel"), chunk("lo"), done=False)) + packer.flush(zlib.Z_SYNC_FLUSH)
    return [head, b"\xff" * 64]


async def test_corrupt_gzip_mid_stream_is_a_stream_error_keeping_the_text(make_client: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {**SSE, "content-encoding": "gzip"}
        return httpx.Response(200, stream=_Pieces(_gzip_then_garbage()), headers=headers)

    client = make_client(handler)
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    got: list[str] = []
    with pytest.raises(wi.StreamError, match="could not be decoded") as info:
        await _read_into(client, stream, got)
    assert type(info.value) is wi.StreamError
    assert got == ["Hel", "lo"]
    assert info.value.text == "Hello" and info.value.chunks_received == 2
    assert isinstance(info.value.__cause__, httpx.DecodingError)
    assert stream.closed


def test_read_errors_lose_the_key() -> None:
    request = httpx.Request("POST", f"{BASE_URL}/chat/completions", headers={"Authorization": f"Bearer {API_KEY}"})
    processor = StreamProcessor(request, parse_chunk)
    decoding = httpx.DecodingError("Error -3 while decompressing data", request=request)
    error = processor.read_error(decoding)
    assert type(error) is wi.StreamError
    assert API_KEY not in decoding.request.headers["authorization"]
    transport = httpx.ReadError("reset", request=request)
    interrupted = processor.read_error(transport)
    assert isinstance(interrupted, wi.StreamInterruptedError)
    assert API_KEY not in transport.request.headers["authorization"]


# --------------------------------------------------------------------------- real sockets


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=API_KEY) as srv:
        yield srv


def _busy(http: httpx.AsyncClient) -> int:
    """Connections of the pool that are not idle (a leaked response keeps one busy)."""
    transport: Any = http._transport
    if type(transport).__name__ == "AiohttpTransport":  # aiohttp's connector: its acquired set
        session = transport._session
        return 0 if session is None else len(session.connector._acquired)
    return sum(1 for conn in transport._pool.connections if not conn.is_idle())


async def test_dropped_async_streams_free_their_connections(server: LocalServer, unraisable: list[Any]) -> None:
    async with wi.AsyncClient(API_KEY, base_url=server.base_url, max_concurrency=1) as client:
        unread = await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=50, stream=True)
        del unread
        gc.collect()
        with anyio.fail_after(10):
            assert await asyncio.create_task(_read_one(client))
        half = await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=50, stream=True)
        assert await anext(half)
        del half
        gc.collect()
        with anyio.fail_after(10):
            assert await asyncio.create_task(_read_one(client))
        for _ in range(100):  # the scheduled closes run
            if not _busy(client._http):
                break
            await asyncio.sleep(0.01)
        assert _busy(client._http) == 0
    assert unraisable == []
