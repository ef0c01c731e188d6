"""One request/response exchange at the ASGI level: reading, answering, stalling, dropping.

Dropping a connection with no HTTP response at all cannot be done through ASGI: an
application that raises before starting a response gets a 500 from uvicorn. So the
server's uvicorn protocol registers each connection's transport in `Connections`, keyed
by the peer address that uvicorn also puts in `scope["client"]`, and `Exchange.drop`
closes that transport (with `SO_LINGER` 0 for a real TCP RST). uvicorn then sees the
peer gone and sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, final

import anyio
from starlette.types import Message, Receive, Scope, Send

from ._errors import error_body

__all__ = ["Connections", "Exchange", "dumps"]

_DROP_TIMEOUT: Final = 5.0


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the service sends it (non-ASCII left as is).

    Args:
        value: a JSON-serialisable value.

    Returns:
        The bytes.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


@final
class Connections:
    """Open connections' transports by peer address; written by the server's protocol."""

    def __init__(self) -> None:
        self._by_peer: dict[tuple[str, int], asyncio.Transport] = {}

    def add(self, peer: tuple[str, int] | None, transport: asyncio.Transport) -> None:
        """Register a connection.

        Args:
            peer: the client's (host, port).
            transport: its transport.
        """
        if peer is not None:
            self._by_peer[(peer[0], peer[1])] = transport

    def discard(self, peer: tuple[str, int] | None) -> None:
        """Forget a closed connection.

        Args:
            peer: the client's (host, port).
        """
        if peer is not None:
            self._by_peer.pop((peer[0], peer[1]), None)

    def get(self, peer: Sequence[Any] | None) -> asyncio.Transport | None:
        """The transport of a peer, if registered.

        Args:
            peer: `scope["client"]`.

        Returns:
            The transport, or None.
        """
        if not peer:
            return None
        return self._by_peer.get((str(peer[0]), int(peer[1])))


async def wait_disconnect(receive: Receive) -> None:
    """Return once the client is gone (the request body must already be read).

    Args:
        receive: the ASGI receive callable.
    """
    while (await receive())["type"] != "http.disconnect":
        pass


class Exchange:
    """The request being served and the ways to answer it.

    Args:
        scope: the ASGI scope.
        receive: the ASGI receive callable (the body already drained).
        send: the ASGI send callable.
        connections: where to find this connection's transport.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, connections: Connections) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self._connections = connections

    async def respond(
        self, status: int, body: bytes, content_type: str | None, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Send a whole response.

        Args:
            status: the HTTP status.
            body: the body.
            content_type: the content type, or None for no such header.
            headers: more headers.
        """
        raw = [(b"content-length", str(len(body)).encode())]
        if content_type is not None:
            raw.append((b"content-type", content_type.encode("latin-1")))
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def json(self, status: int, body: Any, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Send a JSON response.

        Args:
            status: the HTTP status.
            body: the JSON value.
            headers: more headers.
        """
        await self.respond(status, dumps(body), "application/json", headers)

    async def error(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | int | None = None,
        param: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Send the service's JSON error body.

        Args:
            status: the HTTP status.
            message: the human sentence.
            type_: the error type.
            code: the machine code.
            param: the parameter at fault.
            headers: more headers.
        """
        await self.json(status, error_body(message, type_, code, param), headers)

    async def sleep(self, seconds: float) -> bool:
        """Wait, unless the client goes away first.

        Args:
            seconds: how long.

        Returns:
            True when the client is still there.
        """
        finished = False

        async def wait() -> None:
            nonlocal finished
            await anyio.sleep(seconds)
            finished = True

        await self.unless_disconnected(wait)
        return finished

    async def unless_disconnected(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work`, cancelling it if the client disconnects meanwhile.

        Args:
            work: the coroutine function (e.g. writing a stream).
        """
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await wait_disconnect(self.receive)
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await work()
            group.cancel_scope.cancel()

    async def drop(self, reset: bool) -> None:
        """Drop the connection without (more of) a response; return once it is gone.

        Args:
            reset: send a TCP RST (the client sees "connection reset") rather than
                closing after flushing what was written (the client sees EOF).

        Raises:
            ConnectionAbortedError: the app runs outside `LocalServer` (e.g. under
                `httpx.ASGITransport`), where no socket can be reached.
        """
        transport = self._connections.get(self.scope.get("client"))
        if transport is None:
            raise ConnectionAbortedError(
                "this fault drops the connection, which only works in LocalServer's own uvicorn"
            )
        if reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0: close() discards the send queue and answers with RST, not FIN.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()  # flushes what was written, then FIN
        with anyio.move_on_after(_DROP_TIMEOUT):
            await wait_disconnect(self.receive)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left before sending it.

    Args:
        receive: the ASGI receive callable.

    Returns:
        The body bytes, or None.
    """
    chunks: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
