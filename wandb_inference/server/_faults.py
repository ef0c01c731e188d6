"""Injectable faults: what the local server does instead of (or to) a normal reply.

A `Fault` is a frozen value built with a named constructor (`Fault.status(429)`,
`Fault.reset()`, `Fault.cut_stream(after=3)`, ...); `_queue.FaultQueue` decides which
request gets which fault, and `_fault_header` parses the faults clients script per request.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http
import json
from collections.abc import Mapping
from typing import Any, Literal, final

import attrs

from ._errors import Kind, spec_for

__all__ = ["Disconnect", "Fault", "RetryAfter", "StreamFault"]

Disconnect = Literal["reset", "close"]
"""`reset`: TCP RST (the client sees a reset). `close`: FIN (the peer hung up)."""

RetryAfter = int | float | str | dt.datetime | None
"""Seconds (number), an HTTP date (`datetime`), or a raw header value (`str`)."""

_DEFAULT_STREAM_ERROR = "The server had an error while processing your request"


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _positive(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@final
@attrs.frozen(kw_only=True)
class StreamFault:
    """How to spoil a streamed chat completion (`stream: true`) once its 200 has started.

    Counts are of chunk events (`data: {chunk}`) already sent. Fields combine freely,
    e.g. CRLF line endings, pings and 1-byte writes, then a cut after 5 chunks.

    Attributes:
        cut_after: drop the connection after this many chunks (no `[DONE]`, no clean end
            of the chunked body: the client sees a protocol/read error mid-body).
        cut_mid_utf8: cut inside a multi-byte UTF-8 character: at the first chunk at or
            after `cut_after` that holds one, only its bytes up to the character's lead
            byte are sent. Implies `non_ascii`.
        reset: cut with a TCP RST rather than a FIN.
        omit_done: end the body cleanly but without `data: [DONE]`.
        error_after: after this many chunks send an error event and stop generating
            (`[DONE]` follows, as vLLM does, unless `omit_done`).
        error_event: send that error as `event: error` + `data: {"error": ...}` rather
            than as a bare `data: {"error": ...}` payload.
        error_message: the error's message.
        stall_after: after this many chunks, go silent for `stall_seconds`.
        stall_seconds: how long the mid-stream stall lasts.
        pings: a `: ping` comment line before every event.
        empty_events: an empty `data:` event before every event.
        crlf: end lines with CRLF instead of LF.
        split: write every event in pieces of at most this many bytes (awkward boundaries:
            inside `data:`, between CR and LF, inside a UTF-8 character).
        split_pause: seconds between those pieces, so they reach the client as separate
            reads (without it the kernel may merge them).
        non_ascii: make the generated text contain multi-byte characters (é, 日本, 🚀).
    """

    cut_after: int | None = attrs.field(default=None, validator=_non_negative)
    cut_mid_utf8: bool = False
    reset: bool = False
    omit_done: bool = False
    error_after: int | None = attrs.field(default=None, validator=_non_negative)
    error_event: bool = False
    error_message: str = _DEFAULT_STREAM_ERROR
    stall_after: int | None = attrs.field(default=None, validator=_non_negative)
    stall_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    pings: bool = False
    empty_events: bool = False
    crlf: bool = False
    split: int | None = attrs.field(default=None, validator=_positive)
    split_pause: float = attrs.field(default=0.0, validator=_non_negative)
    non_ascii: bool = False

    @property
    def wants_non_ascii(self) -> bool:
        """Whether the reply text must contain multi-byte characters."""
        return self.non_ascii or self.cut_mid_utf8


def _retry_headers(
    retry_after: RetryAfter, retry_after_ms: float | None, headers: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if isinstance(retry_after, dt.datetime):
        moment = retry_after if retry_after.tzinfo else retry_after.replace(tzinfo=dt.UTC)
        out.append(("retry-after", email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)))
    elif isinstance(retry_after, str):
        out.append(("retry-after", retry_after))
    elif retry_after is not None:
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after}")
        out.append(("retry-after", _number(retry_after)))
    if retry_after_ms is not None:
        if retry_after_ms < 0:
            raise ValueError(f"retry_after_ms must be >= 0, got {retry_after_ms}")
        out.append(("retry-after-ms", _number(retry_after_ms)))
    out.extend((name.lower(), value) for name, value in (headers or {}).items())
    return tuple(out)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_status(status: int) -> None:
    if not 200 <= status <= 599:
        raise ValueError(f"status must be between 200 and 599, got {status}")


@final
@attrs.frozen(kw_only=True)
class Fault:
    """One injected failure. Build it with a named constructor; combine with `with_delay`.

    Exactly one of three things happens after `delay`: the connection is dropped
    (`disconnect`), a canned response is sent (`status_code`), or a normal streamed reply
    is spoiled (`stream`; only streamed chat requests take such a fault). A fault with
    only a `delay` is a stall: the normal reply follows it.

    Attributes:
        label: a short human description, recorded with each request it hit.
        delay: seconds to wait before anything else (a stall); ends early if the client
            goes away.
        disconnect: drop the connection without any HTTP response.
        status_code: the status of the canned response.
        message: the canned response is the service's JSON error with this message
            (`{model}` is replaced with the request's model), `error_type` and `code`.
        error_type: the JSON error's `type`.
        code: the JSON error's `code`.
        body: the canned response's raw body (when `message` is None).
        content_type: the canned response's content type.
        headers: extra response headers (e.g. `retry-after`).
        stream: how to spoil a streamed reply.
    """

    label: str
    delay: float = attrs.field(default=0.0, validator=_non_negative)
    disconnect: Disconnect | None = None
    status_code: int | None = None
    message: str | None = None
    error_type: str | None = None
    code: str | int | None = None
    body: bytes | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    stream: StreamFault | None = None

    def __attrs_post_init__(self) -> None:
        actions = [self.disconnect is not None, self.status_code is not None, self.stream is not None]
        if sum(actions) > 1:
            raise ValueError("a fault either disconnects, responds or spoils a stream, not several")
        if self.status_code is not None:
            _check_status(self.status_code)
        elif self.message is not None or self.body is not None:
            raise ValueError("a canned body needs a status_code")

    # ----------------------------------------------------------- canned responses
    @classmethod
    def status(
        cls,
        status: int,
        *,
        kind: Kind | None = None,
        message: str | None = None,
        retry_after: RetryAfter = None,
        retry_after_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """The service's JSON error for a status, as SERVICE.md describes it.

        Args:
            status: the HTTP status (429, 402, 403, 500, 503, or any other).
            kind: 429 `concurrency` (default; `code: rate_limit_exceeded`), `quota` or
                `personal`; 403 `region` (default) or `gateway`.
            message: replaces the service's message (`{model}` becomes the model).
            retry_after: a `Retry-After` header: seconds, or a `datetime` (HTTP date).
            retry_after_ms: a `retry-after-ms` header.
            headers: more response headers.

        Returns:
            The fault.
        """
        _check_status(status)
        spec = spec_for(status, kind)
        label = f"{status} {kind}" if kind else str(status)
        return cls(
            label=label,
            status_code=status,
            message=spec.message if message is None else message,
            error_type=spec.type,
            code=spec.code,
            content_type="application/json",
            headers=_retry_headers(retry_after, retry_after_ms, headers),
        )

    @classmethod
    def respond(
        cls,
        status: int,
        body: bytes | str = b"",
        *,
        content_type: str | None = "application/json",
        retry_after: RetryAfter = None,
        retry_after_ms: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Any status with any body (including a 200 with a malformed body).

        Args:
            status: the HTTP status.
            body: the exact body (str is encoded as UTF-8).
            content_type: the content type, or None for no header.
            retry_after: a `Retry-After` header.
            retry_after_ms: a `retry-after-ms` header.
            headers: more response headers.

        Returns:
            The fault.
        """
        raw = body.encode() if isinstance(body, str) else body
        return cls(
            label=f"{status} canned",
            status_code=status,
            body=raw,
            content_type=content_type,
            headers=_retry_headers(retry_after, retry_after_ms, headers),
        )

    @classmethod
    def json(cls, status: int, body: Any, **options: Any) -> Fault:
        """Any status with any JSON body, e.g. `{"error": "a bare string"}`.

        Args:
            status: the HTTP status.
            body: a JSON-serialisable value.
            **options: `retry_after`, `retry_after_ms`, `headers` as in `respond`.

        Returns:
            The fault.
        """
        return attrs.evolve(
            cls.respond(status, json.dumps(body), content_type="application/json", **options),
            label=f"{status} json",
        )

    @classmethod
    def html(cls, status: int = 502, *, title: str | None = None, **options: Any) -> Fault:
        """A proxy's HTML error page (`text/html`), like nginx or a load balancer sends.

        Args:
            status: the HTTP status.
            title: the page title (default: "502 Bad Gateway" style).
            **options: `retry_after`, `retry_after_ms`, `headers` as in `respond`.

        Returns:
            The fault.
        """
        heading = title or f"{status} {_phrase(status)}"
        page = (
            f"<html>\r\n<head><title>{heading}</title></head>\r\n<body>\r\n"
            f"<center><h1>{heading}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        fault = cls.respond(status, page, content_type="text/html", **options)
        return attrs.evolve(fault, label=f"{status} html")

    @classmethod
    def text(cls, status: int = 500, text: str | None = None, **options: Any) -> Fault:
        """A plain-text body (`text/plain`), like a bare proxy or a crashed worker sends.

        Args:
            status: the HTTP status.
            text: the body (default: the status phrase).
            **options: `retry_after`, `retry_after_ms`, `headers` as in `respond`.

        Returns:
            The fault.
        """
        body = text if text is not None else _phrase(status)
        fault = cls.respond(status, body, content_type="text/plain; charset=utf-8", **options)
        return attrs.evolve(fault, label=f"{status} text")

    @classmethod
    def detail(cls, status: int = 500, detail: str | None = None, **options: Any) -> Fault:
        """A FastAPI-style `{"detail": "..."}` body.

        Args:
            status: the HTTP status.
            detail: the detail text (default: the service's message for the status).
            **options: `retry_after`, `retry_after_ms`, `headers` as in `respond`.

        Returns:
            The fault.
        """
        body = {"detail": detail if detail is not None else spec_for(status).message}
        return attrs.evolve(cls.json(status, body, **options), label=f"{status} detail")

    @classmethod
    def empty(cls, status: int = 500, **options: Any) -> Fault:
        """A response with an empty body and no content type.

        Args:
            status: the HTTP status.
            **options: `retry_after`, `retry_after_ms`, `headers` as in `respond`.

        Returns:
            The fault.
        """
        return attrs.evolve(cls.respond(status, b"", content_type=None, **options), label=f"{status} empty")

    # ----------------------------------------------------------- no response
    @classmethod
    def reset(cls) -> Fault:
        """Drop the connection with a TCP RST before any response byte."""
        return cls(label="reset", disconnect="reset")

    @classmethod
    def close(cls) -> Fault:
        """Close the connection (FIN) before any response byte: "server disconnected"."""
        return cls(label="close", disconnect="close")

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Wait `seconds`, then answer normally (a slow first byte; client timeouts).

        Args:
            seconds: how long to wait.

        Returns:
            The fault.
        """
        return cls(label=f"stall {_number(seconds)}s", delay=seconds)

    def with_delay(self, seconds: float) -> Fault:
        """This fault, after a stall of `seconds`.

        Args:
            seconds: how long to wait first.

        Returns:
            A new fault.
        """
        return attrs.evolve(self, delay=seconds, label=f"{self.label} after {_number(seconds)}s")

    # ----------------------------------------------------------- spoiled streams
    @classmethod
    def streaming(cls, shape: StreamFault, label: str | None = None) -> Fault:
        """Spoil a streamed reply in any combination of ways.

        Args:
            shape: what to do to the stream.
            label: the description (default: built from the shape).

        Returns:
            The fault.
        """
        if label is None:
            changed = [f.name for f in attrs.fields(StreamFault) if getattr(shape, f.name) != f.default]
            label = "stream " + (",".join(changed) or "unchanged")
        return cls(label=label, stream=shape)

    @classmethod
    def cut_stream(cls, after: int = 1, *, mid_utf8: bool = False, reset: bool = False) -> Fault:
        """Drop the connection mid-stream: no `[DONE]`, an incomplete chunked body.

        Args:
            after: how many chunks get through first.
            mid_utf8: cut inside a multi-byte UTF-8 character (the text is made non-ASCII).
            reset: cut with RST rather than FIN.

        Returns:
            The fault.
        """
        shape = StreamFault(cut_after=after, cut_mid_utf8=mid_utf8, reset=reset)
        utf8 = " mid-utf8" if mid_utf8 else ""
        return cls.streaming(shape, label=f"cut stream after {after}{utf8}{' rst' if reset else ''}")

    @classmethod
    def no_done(cls) -> Fault:
        """End the stream cleanly but without `data: [DONE]`."""
        return cls.streaming(StreamFault(omit_done=True), label="stream without [DONE]")

    @classmethod
    def stream_error(cls, after: int = 1, *, event: bool = False, message: str | None = None) -> Fault:
        """An error inside the stream: `data: {"error": ...}`, or `event: error`.

        Args:
            after: how many chunks get through first.
            event: send it as an `event: error` event.
            message: the error message.

        Returns:
            The fault.
        """
        shape = StreamFault(error_after=after, error_event=event, error_message=message or _DEFAULT_STREAM_ERROR)
        return cls.streaming(shape, label=f"stream error{' event' if event else ''} after {after}")

    @classmethod
    def stall_stream(cls, after: int = 1, seconds: float = 1.0, *, pings: bool = False) -> Fault:
        """Go silent mid-stream (read timeouts, idle streams).

        Args:
            after: how many chunks get through first.
            seconds: how long the silence lasts.
            pings: send `: ping` comments before events, as idle real streams do.

        Returns:
            The fault.
        """
        shape = StreamFault(stall_after=after, stall_seconds=seconds, pings=pings)
        return cls.streaming(shape, label=f"stream stall {_number(seconds)}s after {after}")

    @classmethod
    def awkward_stream(
        cls,
        *,
        pings: bool = True,
        empty_events: bool = True,
        crlf: bool = True,
        split: int | None = 3,
        split_pause: float = 0.0,
        non_ascii: bool = True,
    ) -> Fault:
        """A valid stream in the most awkward legal form: every decoder edge at once.

        Args:
            pings: `: ping` comment lines between events.
            empty_events: empty `data:` events between events.
            crlf: CRLF line endings.
            split: write in pieces of at most this many bytes (None: whole events).
            split_pause: seconds between pieces.
            non_ascii: multi-byte characters in the text.

        Returns:
            The fault.
        """
        shape = StreamFault(
            pings=pings,
            empty_events=empty_events,
            crlf=crlf,
            split=split,
            split_pause=split_pause,
            non_ascii=non_ascii,
        )
        return cls.streaming(shape, label="awkward stream")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
