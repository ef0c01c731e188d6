"""Bodies read with compression undone in bounded pieces: what both transports' replies go through.

httpx inflates each network read in one go: a 64 KiB read of a gzip bomb becomes 64 MiB
before any size cap can look at it (and zlib builds it twice over). The clients read the
raw bytes instead (`aiter_body` / `iter_body`) and inflate them here a piece of at most
`PIECE` bytes at a time, so their caps (reply, error body, SSE event) are checked every
`PIECE` bytes of output: the memory a bomb can take is a cap plus about one piece.

The SDK asks for `gzip, deflate` only (`ACCEPT_ENCODING`); a body in another coding
(brotli, zstd: no bounded decoder in the standard library) is refused with
`httpx.DecodingError`, as a corrupt one is. An uncompressed body costs nothing here: its
reads pass through as they come.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import TypeVar

import httpx

from wandb_inference._policy._redact import _AsyncForgetOnClose, _ForgetOnClose

__all__ = ["ACCEPT_ENCODING", "PIECE", "aiter_body", "decoder_for", "iter_body"]

ACCEPT_ENCODING = "gzip, deflate"
# The most one step of inflating produces; the caps are checked between steps.
PIECE = 64 * 1024


class _Inflate:
    """One gzip or deflate layer, inflated incrementally with bounded output."""

    __slots__ = ("_started", "_zlib")

    def __init__(self, gzip: bool) -> None:
        # deflate: RFC 9110 means zlib-wrapped, some servers send it raw (httpx accepts both).
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._started = gzip

    def decode(self, data: bytes) -> Iterator[bytes]:
        if not self._started and data:
            self._started = True
            probe = zlib.decompressobj()
            try:
                probe.decompress(data[:64], 1)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, no zlib header
        inflate = self._zlib.decompress
        out = inflate(data, PIECE)
        while True:
            if out:
                yield out
            tail = self._zlib.unconsumed_tail
            if not tail and len(out) < PIECE:
                return  # all input consumed and nothing held back
            out = inflate(tail, PIECE)

    def flush(self) -> Iterator[bytes]:
        # After `decode` drained its input nothing is held back; flush adds nothing big.
        out = self._zlib.flush()
        if out:
            yield out


class BodyDecoder:
    """Undo a body's `Content-Encoding` layers (last applied, first undone), bounded."""

    __slots__ = ("_layers", "_request")

    def __init__(self, layers: list[_Inflate], request: httpx.Request | None) -> None:
        self._layers = layers
        self._request = request

    def _error(self, exc: zlib.error) -> httpx.DecodingError:
        return httpx.DecodingError(str(exc), request=self._request)

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of one read (each at most `PIECE` bytes).

        Raises:
            httpx.DecodingError: the compressed data is corrupt.
        """
        try:
            yield from self._through(0, data)
        except zlib.error as exc:
            raise self._error(exc) from exc

    def flush(self) -> Iterator[bytes]:
        """What the layers hold at the end of the body.

        Raises:
            httpx.DecodingError: the compressed data is corrupt.
        """
        try:
            for index, layer in enumerate(self._layers):
                for out in layer.flush():
                    yield from self._through(index + 1, out)
        except zlib.error as exc:
            raise self._error(exc) from exc

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._layers):
            yield data
            return
        for out in self._layers[index].decode(data):
            yield from self._through(index + 1, out)


def decoder_for(response: httpx.Response) -> BodyDecoder | None:
    """The decoder of a reply's body, or None when it is not compressed.

    Raises:
        httpx.DecodingError: a coding other than gzip, deflate or identity.
    """
    codings = response.headers.get_list("content-encoding", split_commas=True)
    if not codings:
        return None
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:  # a response built by hand, without one
        request = None
    layers: list[_Inflate] = []
    for coding in reversed(codings):
        name = coding.strip().lower()
        if name in ("gzip", "x-gzip"):
            layers.append(_Inflate(gzip=True))
        elif name == "deflate":
            layers.append(_Inflate(gzip=False))
        elif name not in ("identity", ""):
            raise httpx.DecodingError(
                f"the body is in Content-Encoding {coding.strip()!r}, which the SDK did not ask "
                f"for and cannot inflate under its size limits (it asks for {ACCEPT_ENCODING!r})",
                request=request,
            )
    return BodyDecoder(layers, request) if layers else None


async def _adecoded(raw: AsyncIterator[bytes], decoder: BodyDecoder) -> AsyncIterator[bytes]:
    async for data in raw:
        for piece in decoder.decode(data):
            yield piece
    for piece in decoder.flush():
        yield piece


def _decoded(raw: Iterator[bytes], decoder: BodyDecoder) -> Iterator[bytes]:
    for data in raw:
        yield from decoder.decode(data)
    yield from decoder.flush()


def _in_memory(response: httpx.Response) -> bool:
    """A body httpx already read (a response built with `content=`, as `MockTransport`
    handlers do): there is nothing raw left to read, only the decoded bytes.

    What `response.content` checks before it raises `ResponseNotRead` (as it would on
    every streamed reply: raising and catching it cost about 2 us a call)."""
    return hasattr(response, "_content")


def _transport_stream(response: httpx.Response) -> httpx.SyncByteStream | httpx.AsyncByteStream:
    """The response's stream, marked consumed: what `iter_raw()` / `aiter_raw()` read.

    Read directly, without httpx's per-read bookkeeping (byte count, chunking, error
    context: the SDK sizes, times and types the reads itself), saves a generator hop per
    network read, that is per stream chunk. The caller closes the response.

    Raises:
        httpx.StreamConsumed: the body was read already.
        httpx.StreamClosed: the response is closed.
    """
    if response.is_stream_consumed:
        raise httpx.StreamConsumed()
    if response.is_closed:
        raise httpx.StreamClosed()
    response.is_stream_consumed = True
    return response.stream


def _unbound(stream: _S) -> _S:
    """The transport's own stream, under the wrappers that only pass its reads through.

    `httpx.AsyncClient.send` wraps the transport's stream in one that notes the time
    when it is closed (`BoundAsyncStream`), and the SDK's `forget_transport` wraps that;
    each passes every read through a generator of its own. Reading the stream under them
    saves those hops per network read (per stream chunk); closing still goes through them
    (`response.aclose()`), so nothing they do at close is skipped.
    """
    while True:
        cls = type(stream)
        if not (cls in _FORGET or (cls.__module__ == "httpx._client" and cls.__name__ in _BOUND)):
            return stream
        inner = getattr(stream, "_stream", None)
        if not isinstance(inner, httpx.SyncByteStream | httpx.AsyncByteStream):
            return stream
        stream = inner  # type: ignore[assignment]


_S = TypeVar("_S", httpx.SyncByteStream, httpx.AsyncByteStream)
_BOUND = frozenset({"BoundSyncStream", "BoundAsyncStream"})
_FORGET = frozenset({_ForgetOnClose, _AsyncForgetOnClose})


def aiter_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """A reply's body, decompressed in pieces of at most `PIECE` bytes (async).

    Raises:
        httpx.DecodingError: an unsupported coding (at once) or corrupt data (while read).
        httpx.StreamConsumed / httpx.StreamClosed: the body was read, or closed, already.
    """
    if _in_memory(response):
        return response.aiter_bytes()
    decoder = decoder_for(response)
    stream = _transport_stream(response)
    assert isinstance(stream, httpx.AsyncByteStream)
    raw = _unbound(stream).__aiter__()
    return raw if decoder is None else _adecoded(raw, decoder)


def iter_body(response: httpx.Response) -> Iterator[bytes]:
    """The sync twin of `aiter_body`.

    Raises:
        httpx.DecodingError: an unsupported coding (at once) or corrupt data (while read).
    """
    if _in_memory(response):
        return response.iter_bytes()
    decoder = decoder_for(response)
    stream = _transport_stream(response)
    assert isinstance(stream, httpx.SyncByteStream)
    raw = iter(_unbound(stream))
    return raw if decoder is None else _decoded(raw, decoder)
