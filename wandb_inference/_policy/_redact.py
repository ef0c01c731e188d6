"""Kept responses forget the transport once closed: nothing on them leads back to the key.

A response from `httpx.Client.send` keeps, as `response.stream`, the transport's stream,
which keeps the request the transport sent (httpcore's own copy, whose headers hold
`Authorization: Bearer <key>`), and `response.extensions["network_stream"]` leads to the
pooled connection. Redacting `response.request` leaves both. A response kept on a result
or an error is closed: its body is read or given up, so those references serve nothing.
They are dropped at close; what users read (status, headers, content, `http_version`,
`reason_phrase`, `elapsed`) stays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

__all__ = ["forget_transport"]

_EMPTY = httpx.ByteStream(b"")
# Extension values that are plain data (`http_version`, `reason_phrase`, HTTP/2's
# `stream_id`) are kept; any other (httpcore's network stream) is dropped.
_PLAIN = (bytes, str, int, float)


def _forget(response: httpx.Response) -> None:
    """Drop a closed response's transport stream and connection (idempotent)."""
    if response.stream is not _EMPTY:
        response.stream = _EMPTY
        extensions = response.extensions
        response.extensions = {name: value for name, value in extensions.items() if isinstance(value, _PLAIN)}


class _ForgetOnClose(httpx.SyncByteStream):
    """Reads through to the transport's stream; once closed, the response forgets it."""

    __slots__ = ("_response", "_stream")

    def __init__(self, stream: httpx.SyncByteStream, response: httpx.Response) -> None:
        self._stream = stream
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._stream)  # the transport's own iterator: no cost per read

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._stream = _EMPTY  # the response no longer refers to this wrapper either
            _forget(self._response)


class _AsyncForgetOnClose(httpx.AsyncByteStream):
    """The async twin of `_ForgetOnClose`."""

    __slots__ = ("_response", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, response: httpx.Response) -> None:
        self._stream = stream
        self._response = response

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._stream = _EMPTY  # the response no longer refers to this wrapper either
            _forget(self._response)


def forget_transport(response: httpx.Response) -> None:
    """Make `response` drop the transport's objects when it is closed (now, if it is).

    Idempotent and cheap: call it on every response a result or an error may keep. A
    response whose body is bytes in memory (built by hand) holds nothing to drop.
    """
    if response.is_closed:
        _forget(response)
        return
    stream = response.stream
    if isinstance(stream, httpx.SyncByteStream) and isinstance(stream, httpx.AsyncByteStream):
        return  # both colours: `httpx.ByteStream`, bytes in memory with nothing to drop
    if isinstance(stream, httpx.SyncByteStream):
        if not isinstance(stream, _ForgetOnClose):
            response.stream = _ForgetOnClose(stream, response)
    elif not isinstance(stream, _AsyncForgetOnClose):
        response.stream = _AsyncForgetOnClose(stream, response)
