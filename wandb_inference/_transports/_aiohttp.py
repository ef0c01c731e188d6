"""An httpx transport over aiohttp: what `AsyncClient(transport="aiohttp")` sends with.

The SDK keeps httpx's request and response types all through (one I/O shell, one retry
layer); only the bytes move through aiohttp's connection pool and C HTTP parser, which
cost less CPU per request and per network read than httpcore and h11. What the shell and
the policies rely on is kept as httpx's own transport does it:

- every aiohttp failure becomes the httpx error httpcore raises for the same event, so the
  retry policy (`_policy/_retry.py`) decides the same: a refused or unresolvable host, a
  TLS failure, a connect or pool timeout and a body that could not be written are "never
  sent" (retried for any request); a connection closed or reset after the request went
  out is "may have been processed" (a POST is not re-sent); a silent server is a read
  timeout; an unparsable reply is a protocol error. (`httpx-aiohttp` maps a server that
  hangs up after reading the request to `ConnectTimeout`, which would re-send a chat
  POST the server may have billed: one reason this transport is our own.)
- no redirects, no cookies of aiohttp's own (httpx keeps the client's), no decompression
  (the SDK inflates bodies itself under its caps: `_decompress.py`), no hidden retry
  (aiohttp re-sends an idempotent request once on a broken connection by default).
- a body left unfinished closes its connection; a finished one goes back to the pool,
  which keeps at most `max_keepalive_connections` idle (httpx's rule) for
  `keepalive_expiry` seconds, within `max_connections` in all.
- a response head line may be up to 100 KiB (httpx refuses a head over 100 KiB).
- aiohttp has no write timeout: a deadline over the exchange up to the reply's head (httpx's
  four timeouts added) ends a stalled upload, as httpx's `WriteTimeout`.

aiohttp runs on asyncio only, and its session belongs to the event loop of its first
request (as httpx's pooled connections belong to theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ssl
import weakref
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import aiohttp
import httpx
from yarl import URL

__all__ = ["AiohttpTransport", "aiohttp_http_client"]

# httpx (h11) refuses a response head over 100 KiB; aiohttp limits each line instead.
_MAX_HEAD_LINE = 100 * 1024
# The most one read of a body returns (httpcore's read size), and of an event stream.
_READ = 64 * 1024
_EVENTS_READ = 16 * 1024
# Request bodies over this (aiohttp's threshold) are handed over as a file object.
_LARGE_BODY = 1 << 20
# Cached per client: request URLs and timeout sets repeat; a bound keeps odd uses small.
_CACHE_SIZE = 128


class _Connector(aiohttp.TCPConnector):
    """aiohttp's pool, keeping at most `max_idle` idle connections per host, and
    aborting a connection closed with bytes still unsent.

    aiohttp keeps every finished connection (up to `limit`) until it expires; httpx keeps
    `max_keepalive_connections` and closes the rest. After a burst of 500 streams that is
    the difference between 200 open sockets and 500.
    """

    def __init__(self, *, max_idle: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_idle = max_idle

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        transport = protocol.transport
        if (should_close or protocol.should_close) and transport is not None and transport.get_write_buffer_size():
            # Bytes still queued for a peer that stopped reading (a stalled upload): a
            # graceful close would wait for them for ever, keeping the socket. Drop them.
            transport.abort()
        idle = self._conns.get(key)
        if self._max_idle is not None and idle is not None and len(idle) >= self._max_idle:
            should_close = True
        super()._release(key, protocol, should_close=should_close)

    def close_now(self) -> None:
        """Close every connection at once, without awaiting (a pool dropped unclosed)."""
        self._close()


def _raise(exc: BaseException, request: httpx.Request, pool_full: bool = False) -> NoReturn:
    """Raise the httpx error httpcore would raise for aiohttp's `exc` (from it).

    Raises:
        httpx.TransportError: always (a subclass naming what happened).
    """
    message = str(exc)
    error: httpx.TransportError
    if isinstance(exc, aiohttp.ClientConnectorError):  # DNS, refused, TLS: never reached
        error = httpx.ConnectError(message, request=request)
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):  # waiting for the pool, or connecting
        cls = httpx.PoolTimeout if pool_full else httpx.ConnectTimeout
        error = cls(message, request=request)
    elif isinstance(exc, aiohttp.SocketTimeoutError):
        error = httpx.ReadTimeout(message, request=request)
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        # httpcore's words for the same event (the server closed without a reply).
        error = httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
    elif isinstance(exc, aiohttp.ClientResponseError):  # a head aiohttp's parser refused
        detail = exc.message
        if "Got more than" in detail:  # one line over the limit: in httpx's words
            detail = f"the response headers exceed the 100 KiB limit ({detail[:120]})"
        error = httpx.RemoteProtocolError(detail, request=request)
    elif isinstance(exc, aiohttp.ClientPayloadError):  # a body cut short
        error = httpx.RemoteProtocolError(message, request=request)
    elif isinstance(exc, aiohttp.ClientOSError) and "Can not write request body" in message:
        error = httpx.WriteError(message, request=request)  # the request did not fully leave
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol(message, request=request)
    elif isinstance(exc, TimeoutError):
        error = httpx.ReadTimeout(message, request=request)
    else:  # reset, "connection closed", anything else once the request may be out
        error = httpx.ReadError(message or type(exc).__name__, request=request)
    raise error from exc


def _backstop(timeouts: dict[str, float | None]) -> float | None:
    """The longest an exchange may take up to the reply's head: httpx's timeouts added."""
    total = 0.0
    for name in ("connect", "write", "read", "pool"):
        value = timeouts.get(name)
        if value is None:
            return None
        total += value
    return total


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp: as it comes, at most 64 KiB a read (16 KiB of an event stream)."""

    __slots__ = ("_request", "_response", "_transport")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request, transport: AiohttpTransport) -> None:
        self._response: aiohttp.ClientResponse | None = response
        self._request = request
        self._transport = transport

    async def __aiter__(self) -> AsyncIterator[bytes]:
        response = self._response
        if response is None:
            return
        # The read timeout of the body is the request's as it is now: a stream's body gets
        # its own back after `total_timeout` cut the wait for the head (`restore_timeouts`),
        # and httpcore, too, reads it afresh for the body.
        read_timeout = (self._request.extensions.get("timeout") or {}).get("read")
        connection = response.connection
        protocol = None if connection is None else connection.protocol
        if protocol is not None and protocol.read_timeout != read_timeout:
            protocol.read_timeout = read_timeout
            protocol.start_timeout()
        # Reads as they come, but bounded, as httpcore's are (64 KiB): a client that falls
        # behind a fast stream would otherwise get everything buffered meanwhile in one
        # piece (hundreds of KiB), and pay for the memory before it reads a byte. An event
        # stream is read event by event: smaller pieces stay in the CPU's caches.
        size = _EVENTS_READ if response.content_type == "text/event-stream" else _READ
        content = response.content
        try:
            while data := await content.read(size):
                yield data
        except (aiohttp.ClientError, OSError) as exc:
            _raise(exc, self._request)

    async def aclose(self) -> None:
        response = self._response
        if response is None:
            return
        # Forget aiohttp's response (its request info holds the headers as sent, the key
        # among them); a finished body has already put its connection back in the pool.
        self._response = None
        self._transport._active -= 1
        if response.content.is_eof():
            response.release()
        else:
            response.close()  # unfinished: the connection cannot serve another request


def _close_dropped(connector: _Connector) -> None:
    with contextlib.suppress(Exception):  # a finalizer: nobody to tell
        connector.close_now()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with aiohttp (asyncio only).

    Args:
        limits: the pool's limits, as for httpx (`max_connections`,
            `max_keepalive_connections`, `keepalive_expiry`).
        verify: TLS verification, as httpx's `verify=` (certifi's CA bundle by default).
        trust_env: read `SSL_CERT_FILE` / `SSL_CERT_DIR`, as httpx does.
    """

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True, trust_env: bool = True) -> None:
        self._limits = limits
        self._verify = verify
        self._trust_env = trust_env
        self._session: aiohttp.ClientSession | None = None
        self._active = 0  # requests holding a connection (sent, or body not yet closed)
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[float | bool | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            from wandb_inference._exceptions import ConfigurationError

            raise ConfigurationError(
                "transport='aiohttp' runs on asyncio only (aiohttp has no trio support): use "
                "the default transport under trio."
            ) from None
        limits = self._limits
        connector = _Connector(
            max_idle=limits.max_keepalive_connections,
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx.create_ssl_context(verify=self._verify, trust_env=self._trust_env),
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the client's cookies
            auto_decompress=False,  # the SDK inflates under its size caps
            timeout=aiohttp.ClientTimeout(),  # every request carries its own
            max_line_size=_MAX_HEAD_LINE,
            max_field_size=_MAX_HEAD_LINE,
            requote_redirect_url=False,
        )
        # One retry layer: the SDK's. aiohttp would re-send an idempotent request once
        # when its connection breaks (no public switch).
        session._retry_connection = False
        # A transport dropped without `aclose()` (a client never closed) closes its sockets
        # then, quietly: aiohttp would log "Unclosed client session" as an asyncio error
        # (httpx's own pool says nothing). A weak reference's callback, not `__del__`: it
        # runs before the objects of a collected cycle are finalized, the session's too.
        weakref.finalize(self, _close_dropped, connector).atexit = False
        self._session = session
        return session

    def _url(self, url: httpx.URL) -> URL:
        text = str(url)
        parsed = self._urls.get(text)
        if parsed is None:
            if len(self._urls) >= _CACHE_SIZE:
                self._urls.clear()
            parsed = self._urls[text] = URL(text, encoded=True)  # httpx has encoded it
        return parsed

    def _timeout(self, timeouts: dict[str, float | None], pool_full: bool) -> aiohttp.ClientTimeout:
        connect, read, pool = timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool")
        key = (connect, read, pool, pool_full)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _CACHE_SIZE:
                self._timeouts.clear()
            # aiohttp's `connect` bounds the wait for a pooled connection and the making of
            # a new one together, `sock_connect` the making alone, `sock_read` each wait for
            # data (the head, then every read of the body). So: with every connection in
            # use, the request waits for one within httpx's pool timeout; otherwise it
            # connects (name lookup included, as httpcore does) within the connect timeout.
            # httpx's write timeout has no twin here: see the deadline in
            # `handle_async_request`.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=pool if pool_full else connect, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:  # a streamed upload: aiohttp sends it chunked
            data = request.stream
            request.headers.pop("transfer-encoding", None)
        else:
            if data is not None and len(data) > _LARGE_BODY:
                # aiohttp warns (ResourceWarning) about large bytes bodies, and sends a file
                # object in pieces instead: the same bytes, the same Content-Length.
                data = io.BytesIO(data)
        encoding = request.headers.encoding
        timeouts = request.extensions.get("timeout") or {}
        pool_full = self._limits.max_connections is not None and self._active >= self._limits.max_connections
        # aiohttp's read timer starts once the body is sent, and it has no write timeout:
        # a server that stops reading an upload would hold the request for ever. A
        # deadline over the whole exchange up to the reply's head (the sum of httpx's four
        # timeouts) bounds it; the others fire first whenever they apply, so when this one
        # does, the upload is what stalled: httpx's WriteTimeout.
        deadline = _backstop(timeouts) if data is not None else None
        self._active += 1
        try:
            async with asyncio.timeout(deadline) as backstop:
                response = await session.request(
                    request.method,
                    self._url(request.url),
                    # The raw pairs, decoded as `multi_items()` does (without its property per item).
                    headers=[(name.decode(encoding), value.decode(encoding)) for name, value in request.headers.raw],
                    data=data,
                    allow_redirects=False,
                    timeout=self._timeout(timeouts, pool_full),
                )
        except (aiohttp.ClientError, OSError) as exc:
            self._active -= 1
            if backstop.expired():
                raise httpx.WriteTimeout(
                    f"the request body was not taken within {deadline:g}s", request=request
                ) from exc
            _raise(exc, request, pool_full)
        except BaseException:
            self._active -= 1
            raise
        version = response.version
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request, self),
            extensions={
                "http_version": b"HTTP/%d.%d" % (version.major, version.minor) if version else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )

    async def aclose(self) -> None:
        """Close the pool (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def aiohttp_http_client(limits: httpx.Limits) -> httpx.AsyncClient:
    """The `httpx.AsyncClient` of `AsyncClient(transport="aiohttp")`: the SDK's own pool
    settings (no redirects followed) over `AiohttpTransport`.

    Proxies from the environment (`HTTPS_PROXY`...) are still honoured: httpx sends those
    requests with its own transport.
    """
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), limits=limits, follow_redirects=False)
