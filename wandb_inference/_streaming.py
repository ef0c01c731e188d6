"""Chat streams: the shared event processor, and the async and sync stream objects.

`StreamProcessor` turns body bytes into typed chunks (SSE decoding, `[DONE]`, in-stream
errors, accumulation) without I/O. `AsyncChatStream` and `ChatStream` are the two thin
loops feeding it: they close the HTTP response when the stream ends, fails, is left
early (`break`, an exception, cancellation) or is garbage-collected.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

import anyio
import httpx

from ._accumulate import ChatCompletionAccumulator
from ._errors_map import error_payload_message, redact_transport_error
from ._exceptions import (
    APIResponseValidationError,
    StreamError,
    StreamEventError,
    StreamInterruptedError,
)
from ._sse import ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from ._chunk import ChatCompletionChunk
    from ._completion import ChatCompletion
    from ._concurrency import Slot

__all__ = ["AsyncChatStream", "ChatStream", "StreamProcessor"]

C = TypeVar("C")
_DONE = "[DONE]"
# `json.loads` minus its argument checks (the data is always a str here): once per token.
_decode = json.JSONDecoder().decode


class StreamProcessor(Generic[C]):
    """Bytes in, typed chunks out. Raises typed errors that carry the data so far."""

    __slots__ = ("_accumulator", "_decoder", "_done", "_parse", "request")

    def __init__(
        self,
        request: httpx.Request | None,
        parse: Callable[[Mapping[str, Any]], C],
        *,
        max_event_size: int | None = None,
    ) -> None:
        self.request = request
        self._parse = parse
        self._decoder = SSEDecoder() if max_event_size is None else SSEDecoder(max_event_size)
        self._accumulator = ChatCompletionAccumulator()
        self._done = False

    def finished(self) -> bool:
        """True once `data: [DONE]` arrived (a method: its value changes as bytes arrive)."""
        return self._done

    @property
    def accumulator(self) -> ChatCompletionAccumulator:
        """Everything received so far."""
        return self._accumulator

    def feed(self, data: bytes) -> list[C]:
        """Decode one network read into chunks (none after `[DONE]`).

        Raises:
            StreamEventError: the server sent an error event or payload.
            StreamError: an event that is not a JSON chunk.
            APIResponseValidationError: an event over the decoder's size limit.
        """
        if self._done:
            return []
        text = self._decoder.single_data(data)
        if text is not None:  # the common read: one whole `data: {...}` event
            chunk = self._message(text)
            return [] if chunk is None else [chunk]
        try:
            events = self._decoder.feed(data)
        except APIResponseValidationError as exc:
            raise self._error(StreamError, str(exc)) from exc
        return self._handle_all(events)

    def end(self) -> list[C]:
        """The body ended: flush the decoder; raise if `[DONE]` never came.

        Raises:
            StreamInterruptedError: the body ended without `data: [DONE]`.
        """
        if self.finished():
            return []
        try:
            chunks = self._handle_all(self._decoder.close())
        except StreamError as exc:
            if type(exc) is not StreamError:
                raise
            # The body stopped inside an event (`data: {"partial`): a cut, not bad JSON.
            raise self._error(
                StreamInterruptedError,
                "The stream ended in the middle of an event: the server or a proxy cut it short.",
            ) from exc
        if not self.finished():
            raise self._error(
                StreamInterruptedError,
                "The stream ended without `data: [DONE]`: the server or a proxy cut it short "
                "(the backend may have failed).",
            )
        return chunks

    def interrupted(self, exc: BaseException) -> StreamInterruptedError:
        """The error for a transport failure in the middle of the stream."""
        if isinstance(exc, httpx.TransportError):
            redact_transport_error(exc)  # it becomes the error's __cause__: no key on it
        kind = type(exc).__name__
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "broke"
        # str(exc), not exc: an exception is always truthy, and httpx's async ReadTimeout
        # has an empty message ("(ReadTimeout: )").
        detail = f"{kind}: {exc}" if str(exc) else kind
        error = self._error(
            StreamInterruptedError,
            f"The stream {what} mid-way ({detail}).",
        )
        assert isinstance(error, StreamInterruptedError)
        return error

    def _handle_all(self, events: list[ServerSentEvent]) -> list[C]:
        out: list[C] = []
        for event in events:
            if self.finished():
                break
            chunk = self._handle(event)
            if chunk is not None:
                out.append(chunk)
        return out

    def _handle(self, event: ServerSentEvent) -> C | None:
        data = event.data
        if event.event != "message":
            if event.event == "error":
                try:
                    payload: object = json.loads(data)
                except ValueError:
                    payload = data
                if isinstance(payload, Mapping) and "error" in payload:
                    payload = payload["error"]
                raise self._event_error(payload)
            return None  # other event types (pings...) carry no chunk
        return self._message(data)

    def _message(self, data: str) -> C | None:
        """A `message` event's data: a chunk, or None for `[DONE]`."""
        if data == _DONE:
            self._done = True
            return None
        try:
            obj = _decode(data)
        except ValueError as exc:
            raise self._error(StreamError, f"The stream sent an event that is not JSON: {data[:200]!r}") from exc
        if not isinstance(obj, dict):
            raise self._error(StreamError, f"The stream sent a non-object event: {data[:200]!r}")
        if "error" in obj and not obj.get("choices"):
            raise self._event_error(obj["error"])
        self._accumulator.add(obj)
        try:
            return self._parse(obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._error(
                StreamError,
                f"The stream sent a chunk of an unexpected shape ({exc!r}): {data[:200]!r}",
            ) from exc

    def _event_error(self, payload: object) -> StreamEventError:
        message, code = error_payload_message(payload)
        error = self._error(
            StreamEventError,
            f"The server reported an error mid-stream: {message or 'no message'}",
            error=payload,
            code=code,
        )
        assert isinstance(error, StreamEventError)
        return error

    def _error(self, cls: type[StreamError], message: str, **extra: Any) -> StreamError:
        acc = self._accumulator
        partial: ChatCompletion | None = None
        if acc.has_data:
            from ._completion import ChatCompletion

            try:
                partial = ChatCompletion.from_dict(acc.to_dict())
            except (KeyError, TypeError, ValueError, AttributeError):  # pragma: no cover
                partial = None
        text, reasoning = acc.text, acc.reasoning
        kept = f" Kept the {acc.chunks} chunk(s) received so far on the error: .partial, .text ({len(text)} chars)."
        if not acc.has_data:
            kept = " Nothing had been received."
        return cls(
            message + kept,
            request=self.request,
            partial=partial,
            text=text,
            reasoning=reasoning,
            chunks_received=acc.chunks,
            **extra,
        )


class _StreamBase(Generic[C]):
    """State and accessors shared by both stream flavours."""

    response: httpx.Response
    _processor: StreamProcessor[C]
    _closed: bool

    _slot: Slot | None

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.finish(ok=self._processor.finished())

    @property
    def request_id(self) -> str | None:
        """The server's request id header, if any."""
        from ._exceptions import request_id_of

        return request_id_of(self.response.headers)

    @property
    def closed(self) -> bool:
        """True once the HTTP response is closed (stream finished, failed or left)."""
        return self._closed

    @property
    def text_so_far(self) -> str:
        """The content received so far (first choice)."""
        return self._processor.accumulator.text

    @property
    def completion(self) -> ChatCompletion:
        """The completion accumulated from the chunks received so far."""
        from ._completion import ChatCompletion
        from ._types import set_response

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
    """

    def __init__(
        self,
        response: httpx.Response,
        processor: StreamProcessor[ChatCompletionChunk],
        slot: Slot | None = None,
    ) -> None:
        self.response = response
        self._processor = processor
        self._slot = slot
        self._closed = False
        self._iterator: AsyncIterator[ChatCompletionChunk] | None = None

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        processor = self._processor
        try:
            if processor.finished():
                return
            try:
                async for data in self.response.aiter_bytes():
                    for chunk in processor.feed(data):
                        yield chunk
                    if processor.finished():
                        return
            except httpx.TransportError as exc:
                raise processor.interrupted(exc) from exc
            for chunk in processor.end():
                yield chunk
        finally:
            await self.aclose()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        # A fresh generator per `async for`, referenced only by the loop: on `break` it is
        # collected at once and its `finally` closes the response.
        return self._chunks()

    async def __anext__(self) -> ChatCompletionChunk:
        if self._iterator is None:
            self._iterator = self._chunks()
        return await self._iterator.__anext__()

    async def text_stream(self) -> AsyncIterator[str]:
        """The content deltas as plain strings (empty deltas skipped)."""
        async for chunk in self:
            text = chunk.text
            if text:
                yield text

    async def until_done(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion."""
        async for _ in self:
            pass
        return self.completion

    get_final_completion = until_done

    async def aclose(self) -> None:
        """Close the HTTP response (idempotent; safe during cancellation)."""
        if self._closed:
            return
        self._closed = True
        self._release()
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


@final
class ChatStream(_StreamBase["ChatCompletionChunk"]):
    """A stream of `ChatCompletionChunk`: iterate it, ideally in `with`; `break` closes it."""

    def __init__(
        self,
        response: httpx.Response,
        processor: StreamProcessor[ChatCompletionChunk],
        slot: Slot | None = None,
    ) -> None:
        self.response = response
        self._processor = processor
        self._slot = slot
        self._closed = False
        self._iterator: Iterator[ChatCompletionChunk] | None = None

    def _chunks(self) -> Iterator[ChatCompletionChunk]:
        processor = self._processor
        try:
            if processor.finished():
                return
            try:
                for data in self.response.iter_bytes():
                    yield from processor.feed(data)
                    if processor.finished():
                        return
            except httpx.TransportError as exc:
                raise processor.interrupted(exc) from exc
            yield from processor.end()
        finally:
            self.close()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._chunks()

    def __next__(self) -> ChatCompletionChunk:
        if self._iterator is None:
            self._iterator = self._chunks()
        return next(self._iterator)

    def text_stream(self) -> Iterator[str]:
        """The content deltas as plain strings (empty deltas skipped)."""
        for chunk in self:
            text = chunk.text
            if text:
                yield text

    def until_done(self) -> ChatCompletion:
        """Read the rest of the stream and return the whole completion."""
        for _ in self:
            pass
        return self.completion

    get_final_completion = until_done

    def close(self) -> None:
        """Close the HTTP response (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._release()
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
            self.close()
