"""Server-sent events: a byte-level decoder that does no I/O.

It follows the WHATWG "event stream interpretation" algorithm
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
and is fed whatever the network hands over, cut at any byte:

- lines end in `\\r\\n`, `\\r` or `\\n`, and a `\\r\\n` split across two reads is one line end;
- one UTF-8 byte order mark at the start of the stream is dropped, even if split;
- only complete lines are decoded (UTF-8), so a character split across reads survives,
  and invalid bytes become U+FFFD as the spec says;
- `:` comments are ignored; `data:` lines are joined with `\\n`; `event:` sets the type
  (back to "message" after each event); `id:` sets the last event id, which persists
  across events (an id containing NUL is ignored); `retry:` is read only when it is
  ASCII digits.

Deviations, each deliberate and lenient:

- An event whose data is empty (no `data:` field, as the spec says, but also a lone
  `data:` with nothing after it) is not dispatched: no consumer has a use for it and
  servers send such events as keep-alives.
- At the end of the body (`close()`), a last line without a line end is still processed,
  and an event whose blank line never came is dispatched if it has data. The spec drops
  both, but a body that ends right after `data: ...\\n` has said what it meant to say.

A size limit (`max_event_size`) bounds the memory one line or one event may take, so a
server that never ends a line cannot exhaust memory.

This is the per-token hot path of every stream: a typical read is one or a few
`data: {...}\\n\\n` events of ~200 bytes. The common case costs a handful of C-level
operations per read (memchr, one decode, one split) and no per-line Python work;
`benchmarks/micro_sse.py` measures it.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from wandb_inference._exceptions import APIResponseValidationError

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "SSEDecoder", "ServerSentEvent"]

DEFAULT_MAX_EVENT_SIZE: Final = 16 * 1024 * 1024
"""Default bound, in bytes, on one line or one event's data (16 MiB)."""

_BOM: Final = b"\xef\xbb\xbf"


@attrs.frozen(kw_only=True)
class ServerSentEvent:
    """One dispatched server-sent event.

    Attributes:
        event: the event type (`event:` field), "message" when none was sent.
        data: the `data:` lines of the event, joined with "\\n"; never empty.
        id: the last event id seen on the stream so far (it persists across events, as
            the spec says), or None if the stream never sent an `id:` field.
        retry: the reconnection time in milliseconds sent in this event's block, or None.
    """

    event: str = "message"
    data: str
    id: str | None = None
    retry: int | None = None


# Building events without attrs' `__init__`: a frozen class's `__init__` sets each field
# through `object.__setattr__` (~0.6 us an event, a third of the decoding cost), while the
# slots' own descriptors take half that. The class has no validators, converters or
# defaults that this would skip; a test holds the result equal to the real constructor.
_new = object.__new__
_set_event, _set_data, _set_id, _set_retry = (
    ServerSentEvent.__dict__[name].__set__ for name in ("event", "data", "id", "retry")
)


@final
class SSEDecoder:
    """Turn the bytes of an event stream, in chunks cut anywhere, into events.

    ```python
    decoder = SSEDecoder()
    for chunk in body_chunks:
        for event in decoder.feed(chunk):
            ...
    for event in decoder.close():
        ...
    ```

    After `close()` the decoder is back at the start of a stream (the last event id
    and the reconnection time are kept). After it raised, discard it.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_fresh",
        "_last_id",
        "_max",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "_started",
        "_stream_retry",
    )

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        """Create a decoder.

        Args:
            max_event_size: the most bytes one line, or the data of one event, may hold
                (characters, once decoded). Defaults to 16 MiB.

        Raises:
            TypeError: `max_event_size` is not an int.
            ValueError: `max_event_size` is not positive.
        """
        if isinstance(max_event_size, bool) or not isinstance(max_event_size, int):
            raise TypeError(f"max_event_size must be an int, not {type(max_event_size).__name__}")
        if max_event_size < 1:
            raise ValueError(f"max_event_size must be positive, got {max_event_size}")
        self._max = max_event_size
        # Bytes of the current, unterminated line, kept as a list of reads so that a
        # line spread over many reads costs one join instead of quadratic copying.
        self._pending: list[bytes] = []
        self._pending_size = 0
        # A read ended in "\r": if the next one starts with "\n", that is the same line end.
        self._skip_lf = False
        # False until the first bytes that cannot be the start of a BOM have been seen.
        self._started = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._retry: int | None = None
        # No event under way (no data, type or retry yet): the fast path of `_text` applies.
        self._fresh = True
        self._last_id: str | None = None
        self._stream_retry: int | None = None

    @property
    def last_event_id(self) -> str | None:
        """The last event id the stream set (`id:`), or None if it never sent one."""
        return self._last_id

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the stream last asked for (`retry:`), or None."""
        return self._stream_retry

    @property
    def max_event_size(self) -> int:
        """The size limit this decoder enforces, in bytes."""
        return self._max

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode the next bytes of the body.

        Args:
            chunk: the bytes of one read, cut anywhere (inside a line, a `\\r\\n`, or a
                UTF-8 character).

        Returns:
            The events completed by these bytes, in order (often none or one).

        Raises:
            APIResponseValidationError: a line or an event's data grew past
                `max_event_size`.
        """
        if self._skip_lf or not self._started:
            chunk = self._stream_start_or_crlf(chunk)
        # `int in bytes` is a memchr; `b"\n" in bytes` is a slower substring search.
        if 0x0A not in chunk and 0x0D not in chunk:
            if chunk:  # no line end yet: park the bytes, without copying what is parked
                self._pending.append(chunk)
                self._pending_size += len(chunk)
                if self._pending_size > self._max:
                    self._overflow("a line")
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
        if 0x0D in chunk:
            if chunk[-1] == 0x0D:
                self._skip_lf = True
            # "\r\r\n" becomes "\r\n" then "\n\n": CR then CRLF, two line ends, as it must.
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        cut = chunk.rfind(0x0A)
        # One decode for all complete lines: line ends are ASCII, so no character is cut,
        # and decoding line by line or all at once gives the same text.
        if cut == len(chunk) - 1:  # the common case: the read ends at a line end
            return self._text(chunk.decode("utf-8", "replace"))
        tail = chunk[cut + 1 :]
        if len(tail) > self._max:
            self._overflow("a line")
        self._pending.append(tail)
        self._pending_size = len(tail)
        return self._text(chunk[: cut + 1].decode("utf-8", "replace"))

    def plain_data(self, chunk: bytes) -> list[str] | None:
        """The data of the events `chunk` completes, when each is one plain `data:` line.

        The per-token fast path of `feed`: nearly every read of a token stream is one or
        more whole `data: {...}\\n\\n` events, perhaps followed by the start of the next
        one. When the decoder is between events (no field of an event under way, no
        `\\r` to pair) and every event completed by the bytes it holds plus `chunk` is
        exactly one `data: ` line with data, their data is returned without building
        events, and the partial line after the last of them is kept, as `feed` keeps it.
        The decoder is left as `feed` would leave it (an event with only `data` changes
        no state). Otherwise nothing is consumed: call `feed`.

        Args:
            chunk: the bytes of one read.

        Returns:
            The data of each completed event (UTF-8, invalid bytes as U+FFFD), in order,
            possibly none; or None.
        """
        if not self._fresh or not self._started or self._skip_lf or 0x0D in chunk:
            return None
        # The partial line parked before holds no line end: an event can only end in `chunk`
        # (and a line that never ends is never joined here, or copied).
        cut = chunk.rfind(b"\n\n")
        if cut < 0:
            return None
        pending = self._pending
        buffer = b"".join((*pending, chunk)) if pending else chunk
        end = len(buffer) - len(chunk) + cut + 2
        tail = buffer[end:]
        if tail:
            if 0x0A in tail or len(tail) > self._max:  # a line of the next event is complete
                return None
            buffer = buffer[:end]
        # `data: X1\n\ndata: X2\n\n...`: every line end is in a "\n\ndata: " between two
        # events or in the final "\n\n", so no X holds a line end (it is one line), and no
        # X is empty (an empty `data:` dispatches nothing). Line ends and "data: " are
        # ASCII, so the decoded text splits the same way.
        lines = buffer.count(0x0A)
        if buffer[:6] != b"data: " or buffer.count(b"\n\ndata: ") * 2 + 2 != lines or b"data: \n\n" in buffer:
            return None
        texts = buffer[6:-2].decode("utf-8", "replace").split("\n\ndata: ")
        if end - 8 >= self._max and max(map(len, texts)) >= self._max:
            return None  # an event over the limit: `feed` raises
        if tail:
            self._pending = [tail]
            self._pending_size = len(tail)
        elif pending:
            self._pending = []
            self._pending_size = 0
        return texts

    def close(self) -> list[ServerSentEvent]:
        """End of the body: process what is left, leniently.

        A last line without a line end is processed as a line, and an event whose
        closing blank line never came is dispatched if it has data (the spec would drop
        both; see the module docstring).

        Returns:
            The events this completes (at most one).

        Raises:
            APIResponseValidationError: the last line pushed an event past
                `max_event_size`.
        """
        lines: list[str] = []
        if self._pending:
            # Includes a lone partial BOM at the start of a tiny body: it is not a BOM.
            lines.append(b"".join(self._pending).decode("utf-8", "replace"))
        lines.append("")  # dispatch what is pending, as if the blank line had come
        self._pending = []
        self._pending_size = 0
        self._skip_lf = False
        self._started = False
        events: list[ServerSentEvent] = []
        self._lines(lines, events)
        return events

    # ------------------------------------------------------------------ internals

    def _stream_start_or_crlf(self, chunk: bytes) -> bytes:
        """The rare states: a "\n" may finish a "\r\n", or a BOM may open the stream."""
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 0x0A:  # the "\n" of a "\r\n" cut between two reads
                chunk = chunk[1:]
        if self._started or not chunk:
            return chunk
        if self._pending:  # only ever a partial BOM at this point
            chunk = b"".join(self._pending) + chunk
            self._pending = []
            self._pending_size = 0
        if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
            self._pending.append(chunk)  # may still become a BOM: wait for more
            self._pending_size = len(chunk)
            return b""
        self._started = True
        if chunk.startswith(_BOM):
            return chunk[len(_BOM) :]
        return chunk

    def _text(self, text: str) -> list[ServerSentEvent]:
        """Interpret complete lines (`text` ends in "\n"); return the dispatched events."""
        events: list[ServerSentEvent] = []
        end = len(text)
        start = 0
        while start < end:
            # The shape of nearly every event, one `data:` line then a blank line, becomes
            # an event with no per-line work (the general loop below costs 3x more). Not
            # when an event begun earlier (data, type, retry) is pending: it must merge.
            if self._fresh and text.startswith("data:", start):
                nl = text.find("\n", start)
                if text.startswith("\n", nl + 1):
                    value = text[start + 6 if text.startswith(" ", start + 5) else start + 5 : nl]
                    start = nl + 2
                    if value:
                        if len(value) >= self._max:
                            self._overflow("an event's data")
                        # Same as ServerSentEvent(...), twice as fast: see `_new`.
                        event = _new(ServerSentEvent)
                        _set_event(event, "message")
                        _set_data(event, value)
                        _set_id(event, self._last_id)
                        _set_retry(event, None)
                        events.append(event)
                    continue
            # Anything else: the lines up to the next blank line go through the general
            # loop, with the blank line itself; or all the lines left when there is none.
            stop = text.find("\n\n", start)
            if stop < 0:
                self._lines(text[start:-1].split("\n"), events)
                break
            lines = text[start:stop].split("\n")
            lines.append("")
            self._lines(lines, events)
            start = stop + 2
        return events

    def _lines(self, lines: list[str], events: list[ServerSentEvent]) -> None:
        """Interpret lines one by one, as the spec says; append dispatched events."""
        data = self._data
        size = self._data_size
        limit = self._max
        for line in lines:
            if not line:
                # Blank line: dispatch. Empty data is dropped (no data field, or `data:`).
                if data:
                    value = data[0] if len(data) == 1 else "\n".join(data)
                    data.clear()
                    size = 0
                    if value:
                        # Same as ServerSentEvent(event=..., ...), twice as fast: see _new.
                        event = _new(ServerSentEvent)
                        _set_event(event, self._event or "message")
                        _set_data(event, value)
                        _set_id(event, self._last_id)
                        _set_retry(event, self._retry)
                        events.append(event)
                self._event = ""
                self._retry = None
                continue
            if line[0] == ":":
                continue  # a comment (": ping")
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                size += len(value) + 1  # + 1: the "\n" that will join it to the next
                if size > limit:
                    self._overflow("an event's data")
                data.append(value)
            elif len(line) > limit:
                self._overflow("a line")
            elif name == "event":
                self._event = value
            elif name == "id":
                if "\0" not in value:
                    self._last_id = value
            elif name == "retry" and value.isascii() and value.isdigit():
                self._retry = self._stream_retry = int(value)
            # Any other field is ignored, as the spec says.
        self._data_size = size
        self._fresh = not data and not self._event and self._retry is None

    def _overflow(self, what: str) -> None:
        limit = self._max
        # Free what was buffered: the decoder is not used after this error.
        self._pending = []
        self._pending_size = 0
        self._data = []
        self._data_size = 0
        raise APIResponseValidationError(
            f"The event stream sent {what} larger than the SSE size limit of {limit:,} "
            "bytes; stopped reading to bound memory. If the server really sends events "
            "that large, raise the limit (the client's `max_event_size=`); otherwise the "
            "server or a proxy is sending a body that is not a well-formed event stream."
        )
