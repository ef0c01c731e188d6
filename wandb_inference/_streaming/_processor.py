"""`StreamProcessor`: a stream's body bytes in, typed chunks out, without I/O.

SSE decoding (`_sse`), `[DONE]`, error events and payloads, accumulation of everything
received (`_accumulate`), and the typed errors (which keep the text received so far) for
bad events, cut streams and httpx's read failures. The stream objects (`_streams`) feed
it one network read at a time.

Token chunks repeat themselves: the JSON text of one differs from the next only in the
string of its delta (`{"id":"chatcmpl-1",...,"delta":{"content":" word"},...}`). Once a
chunk of that shape has gone the whole way (JSON, accumulator, typed chunk), its text
around that string becomes the stream's template (`_Template`); a later chunk with the
same text around another string is then read as that string alone (the C string scanner,
no dict) and handed to the template's makers, which build what the whole way would have
built (`text_chunk_maker`, `ChatCompletionAccumulator.text_adder`). The template is
proved before use: the text with a sentinel string in that place decodes to the same
chunk with the sentinel as its text. Anything else takes the whole way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, final

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
_scan: Callable[[str, int], tuple[Any, int]] = _json.scan_once  # type: ignore[attr-defined]
# The C string scanner, strict (no raw control characters), as `_decode` reads strings.
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
# How many templates a stream may learn: a server whose chunks differ in more than their
# text (OpenAI's `obfuscation`, say) would otherwise have one proved for every chunk.
_TEMPLATES = 3
# The string a template is proved with: not a text any chunk sends.
_SENTINEL = "\x00wandb-inference template probe\x00"
_SENTINEL_JSON = json.dumps(_SENTINEL)
_BLANK = " \t\n\r"


@final
class _Template(Generic[C]):
    """The text of a stream's token chunks around their one string, and what to build
    from that string: the chunk (`make`) and the accumulator's update (`add`)."""

    __slots__ = ("add", "end", "make", "prefix", "start", "suffix")

    def __init__(self, prefix: str, suffix: str, make: Callable[[str], C], add: Callable[[str], None]) -> None:
        self.prefix = prefix
        self.suffix = suffix
        self.start = len(prefix) + 1  # after the string's opening quote
        self.end = len(suffix)
        self.make = make
        self.add = add

    @classmethod
    def learn(
        cls, data: str, obj: dict[str, Any], make: Callable[[str], C], add: Callable[[str], None]
    ) -> _Template[C] | None:
        """The template of `data` (the JSON text of `obj`, a chunk whose delta is one text
        field), or None when it cannot be proved."""
        ((field, text),) = obj["choices"][0]["delta"].items()
        at = data.rfind(f'"{field}":')
        if at < 0:
            return None
        start = at + len(field) + 3
        while start < len(data) and data[start] in _BLANK:
            start += 1
        try:
            value, end = _scanstring(data, start + 1)
        except (ValueError, IndexError):
            return None
        if data[start : start + 1] != '"' or value != text:
            return None
        prefix, suffix = data[:start], data[end:]
        # The proof: the same text with the sentinel in that place is the same chunk.
        try:
            probe = _decode(prefix + _SENTINEL_JSON + suffix)
            delta = probe["choices"][0]["delta"]
            if delta[field] != _SENTINEL:
                return None
            delta[field] = text
        except (ValueError, LookupError, TypeError):
            return None
        return cls(prefix, suffix, make, add) if probe == obj else None

    def match(self, data: str) -> C | None:
        """The chunk of `data` if it is the template's text around another string, else None.

        The caller has checked that `data` starts with the prefix and ends with the suffix.
        """
        start = self.start
        if data[start - 1 : start] != '"':
            return None
        try:
            text, end = _scanstring(data, start)
        except ValueError:  # not a valid string: the whole way says what is wrong
            return None
        if end != len(data) - self.end:
            return None
        self.add(text)
        return self.make(text)


class StreamProcessor(Generic[C]):
    """Bytes in, typed chunks out. Raises typed errors that carry the data so far."""

    __slots__ = (
        "_accumulator",
        "_decoder",
        "_deferred",
        "_done",
        "_learn",
        "_maker",
        "_parse",
        "_template",
        "request",
    )

    def __init__(
        self,
        request: httpx.Request | None,
        parse: Callable[[Mapping[str, Any]], C],
        *,
        max_event_size: int | None = None,
        templates: bool = True,
    ) -> None:
        """Create a processor.

        Args:
            request: the stream's request (kept on the errors).
            parse: builds a chunk from a decoded `data:` payload.
            max_event_size: the SSE decoder's size limit (its default when None).
            templates: read token chunks through a template (see the module docstring)
                when `parse` is `parse_chunk`; False: every chunk takes the whole way.
        """
        self.request = request
        self._parse = parse
        self._decoder = SSEDecoder() if max_event_size is None else SSEDecoder(max_event_size)
        self._accumulator = ChatCompletionAccumulator()
        self._done = False
        # An error met in a read after chunks that came before it: raised once those are
        # delivered, so the text on the error is the text the reader saw.
        self._deferred: StreamError | None = None
        from wandb_inference._types._chunk import parse_chunk, text_chunk_maker

        maker: Any = text_chunk_maker if templates and parse is parse_chunk else None
        self._maker: Callable[[Mapping[str, Any]], Callable[[str], C] | None] | None = maker
        self._learn = _TEMPLATES if maker is not None else 0
        self._template: _Template[C] | None = None

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
        template = self._template
        if template is not None and data.startswith(template.prefix) and data.endswith(template.suffix):
            made = template.match(data)
            if made is not None:
                return made
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
            chunk = self._parse(obj)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._error(
                StreamError,
                f"The stream sent a chunk of an unexpected shape ({exc!r}): {data[:200]!r}",
            ) from exc
        if self._learn:
            self._learn_template(data, obj)
        return chunk

    def _learn_template(self, data: str, obj: dict[str, Any]) -> None:
        """Make the chunk just read (`data`, decoded: `obj`) the stream's template, if it can be."""
        assert self._maker is not None
        make = self._maker(obj)
        if make is None:
            return
        add = self._accumulator.text_adder(obj)
        if add is None:
            return
        template = _Template.learn(data, obj, make, add)
        if template is not None:
            self._template = template
            self._learn -= 1

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
