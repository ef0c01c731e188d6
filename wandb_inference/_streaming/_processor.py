"""`StreamProcessor`: a stream's body bytes in, typed chunks out, without I/O.

SSE decoding (`_sse`), `[DONE]`, error events and payloads, accumulation of everything
received (`_accumulate`), and the typed errors (which keep the text received so far) for
bad events, cut streams and httpx's read failures. The stream objects (`_streams`) feed
it one network read at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

from wandb_inference._exceptions import (
    APIResponseValidationError,
    StreamError,
    StreamEventError,
    StreamInterruptedError,
)
from wandb_inference._policy._errors_map import error_payload_message, redact_transport_error

from ._accumulate import ChatCompletionAccumulator
from ._sse import ServerSentEvent, SSEDecoder

if TYPE_CHECKING:
    from wandb_inference._types._completion import ChatCompletion

__all__ = ["StreamProcessor"]

C = TypeVar("C")
_DONE = "[DONE]"
# `json.loads` minus its argument checks (the data is always a str here): once per token.
_json = json.JSONDecoder()
_decode = _json.decode
# Its C scanner alone, without the two whitespace regex matches and two Python frames
# around it (a third of the decoding time of a token chunk): used when the data is one
# JSON value with nothing around it, as servers send it; anything else goes to `_decode`.
_scan = _json.scan_once


class StreamProcessor(Generic[C]):
    """Bytes in, typed chunks out. Raises typed errors that carry the data so far."""

    __slots__ = ("_accumulator", "_decoder", "_deferred", "_done", "_parse", "request")

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
        # An error met in a read after chunks that came before it: raised once those are
        # delivered, so the text on the error is the text the reader saw.
        self._deferred: StreamError | None = None

    def finished(self) -> bool:
        """True once `data: [DONE]` arrived (a method: its value changes as bytes arrive)."""
        return self._done

    def failed(self) -> bool:
        """True when an error is waiting behind chunks not yet delivered (`raise_deferred`)."""
        return self._deferred is not None

    def raise_deferred(self) -> None:
        """Raise the error that followed the chunks of an earlier read, if any.

        The readers call it before reading on: one network read can hold chunks and then
        an error event (or a corrupt one); the chunks go out first, then this.

        Raises:
            StreamError: (a subclass for) the deferred error.
        """
        error = self._deferred
        if error is not None:
            self._deferred = None
            raise error

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
        texts = self._decoder.plain_data(data)
        if texts is None:
            try:
                events = self._decoder.feed(data)
            except APIResponseValidationError as exc:
                raise self._error(StreamError, str(exc)) from exc
            return self._handle_all(events)
        # The common read: whole `data: {...}` events, no other field (the decoder checked).
        if len(texts) == 1:
            chunk = self._message(texts[0])
            return [] if chunk is None else [chunk]
        out: list[C] = []
        message = self._message
        for text in texts:
            try:
                chunk = message(text)
            except StreamError as exc:
                if not out:
                    raise
                self._deferred = exc  # after the chunks before it (see `raise_deferred`)
                break
            if chunk is None:  # `[DONE]`: nothing after it counts
                break
            out.append(chunk)
        return out

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

    def read_error(self, exc: httpx.HTTPError | httpx.StreamError) -> StreamError:
        """The error for an httpx failure while the body is read (credentials redacted).

        A body that cannot be decoded (`httpx.DecodingError`: corrupt compression) gives a
        `StreamError`; a broken or timed-out connection, or a response closed under the
        stream, a `StreamInterruptedError`. Both keep the data received so far.
        """
        if isinstance(exc, httpx.DecodingError):
            redact_transport_error(exc)  # it becomes the error's __cause__: no key on it
            return self._error(
                StreamError,
                f"The stream's body could not be decoded (DecodingError: {exc}): its compression is "
                "corrupt, or a proxy mangled it. Retry; if it persists, check the proxies in between.",
            )
        return self.interrupted(exc)

    def closed_early(self) -> StreamInterruptedError:
        """The error for reading a stream closed before `[DONE]` (a `break`, `close()`...)."""
        error = self._error(
            StreamInterruptedError,
            "The stream was closed before it finished (a `break`, close(), the end of its `with` "
            "block, or an earlier error), so it cannot be read further.",
        )
        assert isinstance(error, StreamInterruptedError)
        return error

    def interrupted(self, exc: BaseException) -> StreamInterruptedError:
        """The error for a transport failure (or a response closed) in the middle of the stream."""
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
            try:
                chunk = self._handle(event)
            except StreamError as exc:
                if not out:
                    raise
                self._deferred = exc  # after the chunks before it (see `raise_deferred`)
                break
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
            obj, end = _scan(data, 0)
        except (StopIteration, ValueError):  # not JSON, or blank before it: `_decode` says which
            end = -1
        if end != len(data):
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
            from wandb_inference._types._completion import ChatCompletion

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
