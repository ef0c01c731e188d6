"""Chat streams: the async and sync stream objects.

`StreamProcessor` (`_processor`) turns body bytes into typed chunks (SSE decoding,
`[DONE]`, in-stream errors, accumulation) and httpx's read failures into typed errors,
without I/O. `AsyncChatStream` and `ChatStream` are the two thin loops feeding it. Each stream reads
its body once: one byte iterator, and a small queue of chunks decoded but not yet
delivered, shared by `next()`/`anext()` and every `for` over the stream, so `next(stream)`
then `for chunk in stream` carries on where it left off. A stream closes its HTTP
response (and gives back its concurrency slot) when it ends, fails, is left early
(`break`, an exception, cancellation) or is garbage-collected. Reading a closed stream
again stops at once if `[DONE]` had arrived, and otherwise raises
`StreamInterruptedError` with the text received so far.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import anyio
import httpx

from wandb_inference._transports._decompress import aiter_body, iter_body

if TYPE_CHECKING:
    import asyncio

    from wandb_inference._policy._concurrency import Slot
    from wandb_inference._tracing._operation import Operation
    from wandb_inference._types._chunk import ChatCompletionChunk
    from wandb_inference._types._completion import ChatCompletion

    from ._processor import StreamProcessor

__all__ = ["AsyncChatStream", "ChatStream"]

C = TypeVar("C")
# What httpx can raise while a body is read: transport failures and undecodable bodies
# (`HTTPError`), a response closed or read elsewhere (`StreamError`, a RuntimeError).
_HTTPX_READ_ERRORS = (httpx.HTTPError, httpx.StreamError)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running in this thread, or None (no loop, or trio)."""
    import asyncio

    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# Closes scheduled for dropped async streams: the loop keeps only weak references to tasks.
_CLOSING: set[asyncio.Task[None]] = set()


def _finalize(slot: Slot | None, ok: bool, response: httpx.Response) -> None:
    """Give back a dropped async stream's slot and close its response: on the stream's loop."""
    import asyncio

    if slot is not None:
        slot.finish(ok=ok)
    if not response.is_closed:
        task = asyncio.get_running_loop().create_task(_aclose_quietly(response))
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)


def _leave_quietly(stream: _StreamBase[Any]) -> None:
    with contextlib.suppress(Exception):  # a weak reference's callback: nobody to tell
        stream._leave("left")


async def _aclose_quietly(response: httpx.Response) -> None:
    with contextlib.suppress(Exception):  # a dropped stream: nobody to report a failed close to
        await response.aclose()


class _StreamBase(Generic[C]):
    """State and accessors shared by both stream flavours."""

    response: httpx.Response
    _processor: StreamProcessor[C]
    _closed: bool
    # Chunks decoded from the body but not yet delivered: one read can hold several.
    _pending: deque[C]

    _slot: Slot | None
    # The call's span when traced (ended with the stream), and the exception that ended
    # the read, if one did (a `StreamError`, a cancellation, a loop left early).
    _trace: Operation | None
    _error: BaseException | None

    def _start(self, trace: Operation | None) -> None:
        self._closed = False
        self._error = None
        self._trace = trace
        if trace is not None:
            trace.streaming(self.response)

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.finish(ok=self._processor.finished())

    def _end_trace(self, how: str) -> None:
        trace = self._trace
        if trace is not None:
            self._trace = None
            trace.end_stream(self._processor, how, self._error)

    def _leave(self, how: str = "closed") -> None:
        """Close the stream for reading (sync, idempotent): no more chunks, slot given back,
        span ended (`how`: why, unless `[DONE]` came or an exception ended the read).

        The HTTP response is closed by the caller (`close`, `aclose`, or a finalizer).
        """
        if not self._closed:
            self._closed = True
            self._pending.clear()
            self._release()
            self._end_trace(how)

    def _read_closed(self) -> bool:
        """Reading a closed stream: its end (False) if `[DONE]` came, else an error.

        Raises:
            StreamInterruptedError: the stream was closed before it finished.
        """
        if self._processor.finished():
            return False
        raise self._processor.closed_early()

    @property
    def request_id(self) -> str | None:
        """The server's request id header, if any."""
        from wandb_inference._headers import request_id_of

        return request_id_of(self.response.headers)

    @property
    def closed(self) -> bool:
        """True once the stream is closed (finished, failed, left or closed): no more chunks.

        Its HTTP response is closed then too; after a `break` out of an `async for`
        outside `async with`, as soon as the event loop gets to it.
        """
        return self._closed

    @property
    def text_so_far(self) -> str:
        """The content received so far (first choice)."""
        return self._processor.accumulator.text

    @property
    def completion(self) -> ChatCompletion:
        """The completion accumulated from the chunks received so far."""
        from wandb_inference._types._base import set_response
        from wandb_inference._types._completion import ChatCompletion

        result = ChatCompletion.from_dict(self._processor.accumulator.to_dict())

        set_response(result, self.response)
        return result

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {state} chunks={self._processor.accumulator.chunks}>"


@final
class AsyncChatStream(_StreamBase["ChatCompletionChunk"]):
    """An async stream of `ChatCompletionChunk`: iterate it, ideally in `async with`.

    ```python
    async with await client.chat.create(model=..., messages=..., stream=True) as stream:
        async for text in stream.text_stream():
            print(text, end="", flush=True)
    final = stream.completion
    ```

    `anext(stream)` and `async for` share one read of the body: each picks up where the
    last stopped. `break` closes the stream; reading it again then raises
    `StreamInterruptedError` (or simply stops if `[DONE]` had arrived).
    """

    def __init__(
        self,
        response: httpx.Response,
        processor: StreamProcessor[ChatCompletionChunk],
        slot: Slot | None = None,
        trace: Operation | None = None,
    ) -> None:
        self.response = response
        self._processor = processor
        self._slot = slot
        self._pending = deque()
        self._source: AsyncIterator[bytes] | None = None
        self._loop = _running_loop()  # where `__del__` must close the response
        self._start(trace)

    async def _fill(self) -> bool:
        """Read until a chunk is pending (True), or reach the end of the stream (False).

        What `anext()` reads with (and a loop, at its start and end). It closes the stream
        when the body ends or fails.

        Raises:
            StreamError: (a subclass for) what went wrong, the data so far kept on it.
        """
        if self._closed:
            return self._read_closed()
        processor = self._processor
        pending = self._pending
        filled = False
        try:
            processor.raise_deferred()
            if not processor.finished():
                try:
                    source = self._source
                    if source is None:  # may raise too: a closed response, an unknown coding
                        source = self._source = aiter_body(self.response)
                    async for data in source:
                        pending.extend(processor.feed(data))
                        if pending or processor.finished():
                            break
                    else:
                        pending.extend(processor.end())
                except _HTTPX_READ_ERRORS as exc:
                    raise processor.read_error(exc) from exc
                filled = bool(pending)
                if filled and self._trace is not None:
                    self._trace.first_chunk()
        except BaseException as exc:  # re-raised: kept for the span
            self._error = exc
            raise
        finally:
            if not filled:
                await self.aclose()
        return filled

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        pending = self._pending
        processor = self._processor
        try:
            while pending or await self._fill():
                while pending:
                    yield pending.popleft()
                # `_fill` alone would do; reading on in this frame saves a coroutine per
                # network read (the hot path). `_fill` still does the first read, the end
                # of the body and a stream closed meanwhile (by `anext()` or `aclose()`).
                source = self._source
                if source is None or self._closed or processor.finished() or processor.failed():
                    continue
                try:
                    async for data in source:
                        pending.extend(processor.feed(data))
                        while pending:
                            yield pending.popleft()
                        if self._closed or processor.finished() or processor.failed():
                            break
                except _HTTPX_READ_ERRORS as exc:
                    raise processor.read_error(exc) from exc
        except BaseException as exc:  # re-raised: kept for the span (GeneratorExit: left early)
            self._error = exc
            raise
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        # A fresh generator per `async for`, over the stream's own data: another loop or
        # `anext()` continues from where it stopped. On `break` the loop drops it; the
        # event loop's finalizer hook then runs its `finally`, which closes the response,
        # but only later. The weak reference's callback runs at once (CPython clears weak
        # references before that hook): the stream stops there, as a sync one does.
        chunks = self._chunks()
        weakref.finalize(chunks, _leave_quietly, self).atexit = False
        return chunks

    async def __anext__(self) -> ChatCompletionChunk:
        if self._pending or await self._fill():
            return self._pending.popleft()
        raise StopAsyncIteration

    async def text_stream(self) -> AsyncIterator[str]:
        """The content deltas as plain strings (empty deltas skipped)."""
        async for chunk in self:
            text = chunk.text
            if text:
                yield text

    async def until_done(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion.

        Raises:
            StreamError: (a subclass for) a failure, or a stream closed before it finished.
        """
        async for _ in self:
            pass
        return self.completion

    get_final_completion = until_done

    async def aclose(self) -> None:
        """Close the stream and its HTTP response (idempotent; safe during cancellation)."""
        self._leave()
        if not self.response.is_closed:
            with anyio.CancelScope(shield=True):
                await self.response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        # Dropped unclosed (say, an exception before `async with`): the slot goes back now
        # (or it is held for ever); the response, which cannot be awaited here, is closed
        # by a task on the stream's loop. Never raises or warns: nobody would see it.
        try:
            response, closed = self.response, self._closed
        except AttributeError:  # __init__ did not finish
            return
        if closed and response.is_closed:
            return
        self._closed = True
        if not closed:
            with contextlib.suppress(Exception):
                self._end_trace("abandoned")
        slot = None if closed else self._slot
        ok, loop = self._processor.finished(), self._loop
        with contextlib.suppress(Exception):
            if loop is not None and not loop.is_closed():
                if loop is _running_loop():
                    _finalize(slot, ok, response)
                    return
                if loop.is_running():  # collected in another thread: the loop's objects are not ours
                    loop.call_soon_threadsafe(_finalize, slot, ok, response)
                    return
            if slot is not None:  # no asyncio loop to close the response on: the slot only
                slot.finish(ok=ok)


@final
class ChatStream(_StreamBase["ChatCompletionChunk"]):
    """A stream of `ChatCompletionChunk`: iterate it, ideally in `with`; `break` closes it.

    `next(stream)` and `for` share one read of the body: each picks up where the last
    stopped. Reading a stream closed before it finished raises `StreamInterruptedError`.
    """

    def __init__(
        self,
        response: httpx.Response,
        processor: StreamProcessor[ChatCompletionChunk],
        slot: Slot | None = None,
        trace: Operation | None = None,
    ) -> None:
        self.response = response
        self._processor = processor
        self._slot = slot
        self._pending = deque()
        self._source: Iterator[bytes] | None = None
        self._start(trace)

    def _fill(self) -> bool:
        """Read until a chunk is pending (True), or reach the end of the stream (False).

        What `next()` reads with (and a loop, at its start and end). It closes the stream
        when the body ends or fails.

        Raises:
            StreamError: (a subclass for) what went wrong, the data so far kept on it.
        """
        if self._closed:
            return self._read_closed()
        processor = self._processor
        pending = self._pending
        filled = False
        try:
            processor.raise_deferred()
            if not processor.finished():
                try:
                    source = self._source
                    if source is None:  # may raise too: a closed response, an unknown coding
                        source = self._source = iter_body(self.response)
                    for data in source:
                        pending.extend(processor.feed(data))
                        if pending or processor.finished():
                            break
                    else:
                        pending.extend(processor.end())
                except _HTTPX_READ_ERRORS as exc:
                    raise processor.read_error(exc) from exc
                filled = bool(pending)
                if filled and self._trace is not None:
                    self._trace.first_chunk()
        except BaseException as exc:  # re-raised: kept for the span
            self._error = exc
            raise
        finally:
            if not filled:
                self.close()
        return filled

    def _chunks(self) -> Iterator[ChatCompletionChunk]:
        pending = self._pending
        processor = self._processor
        try:
            while pending or self._fill():
                while pending:
                    yield pending.popleft()
                # As in `AsyncChatStream._chunks`: read on here, `_fill` for the rest.
                source = self._source
                if source is None or self._closed or processor.finished() or processor.failed():
                    continue
                try:
                    for data in source:
                        pending.extend(processor.feed(data))
                        while pending:
                            yield pending.popleft()
                        if self._closed or processor.finished() or processor.failed():
                            break
                except _HTTPX_READ_ERRORS as exc:
                    raise processor.read_error(exc) from exc
        except BaseException as exc:  # re-raised: kept for the span (GeneratorExit: left early)
            self._error = exc
            raise
        finally:
            self.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        # A fresh generator per `for`, over the stream's own data: another loop or `next()`
        # continues from where it stopped. On `break` it is collected at once and its
        # `finally` closes the stream and the response.
        return self._chunks()

    def __next__(self) -> ChatCompletionChunk:
        if self._pending or self._fill():
            return self._pending.popleft()
        raise StopIteration

    def text_stream(self) -> Iterator[str]:
        """The content deltas as plain strings (empty deltas skipped)."""
        for chunk in self:
            text = chunk.text
            if text:
                yield text

    def until_done(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion.

        Raises:
            StreamError: (a subclass for) a failure, or a stream closed before it finished.
        """
        for _ in self:
            pass
        return self.completion

    get_final_completion = until_done

    def close(self) -> None:
        """Close the stream and its HTTP response (idempotent)."""
        self._leave()
        self.response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):  # nobody to tell
                self._leave("abandoned")
                self.response.close()
