"""Writing a chat stream as server-sent events, spoiled as a `StreamFault` asks.

The ASGI body messages are the unit of writing: uvicorn turns each into one transport
write (one chunk of the chunked encoding), and asyncio sends it at once (TCP_NODELAY),
so `split` really puts the event boundaries where the fault says on the wire. Whether
the client's reads see them separately depends on timing; `split_pause` makes it likely.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
from starlette.types import Send

from ._errors import error_body
from ._faults import StreamFault

__all__ = ["SSE_HEADERS", "write_stream"]

SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]

Drop = Callable[[bool], Awaitable[None]]
"""Drops the connection now (True: with RST); returns once the peer is gone."""

_NO_FAULT: Final = StreamFault()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _first_lead_byte(data: bytes) -> int | None:
    """Index of the first lead byte of a multi-byte UTF-8 character, if any."""
    for i, byte in enumerate(data):
        if byte >= 0xC0:
            return i
    return None


class _Writer:
    def __init__(self, send: Send, shape: StreamFault) -> None:
        self._send = send
        self._shape = shape
        self.eol = b"\r\n" if shape.crlf else b"\n"

    def event(self, data: str, name: str | None = None) -> bytes:
        head = b"event: " + name.encode() + self.eol if name else b""
        return head + b"data: " + data.encode() + self.eol + self.eol

    async def write(self, data: bytes) -> None:
        size = self._shape.split
        if not size:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
            return
        for start in range(0, len(data), size):
            if start and self._shape.split_pause:
                await anyio.sleep(self._shape.split_pause)
            await self._send({"type": "http.response.body", "body": data[start : start + size], "more_body": True})

    async def finish(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def write_stream(
    send: Send,
    events: Sequence[dict[str, Any]],
    *,
    shape: StreamFault | None,
    pace: float,
    drop: Drop,
) -> None:
    """Send a 200 `text/event-stream` of `events`, then `data: [DONE]`, unless spoiled.

    Args:
        send: the ASGI send callable.
        events: the chunk bodies, in order.
        shape: how to spoil the stream (None: a clean stream).
        pace: seconds between chunks.
        drop: drops the connection (for cuts).
    """
    shape = shape or _NO_FAULT
    writer = _Writer(send, shape)
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    total = len(events)
    for index in range(total + 1):
        at_end = index == total
        if index and pace and not at_end:
            await anyio.sleep(pace)
        # Counts past the end act at the end, so a fault never silently does nothing.
        if shape.stall_after is not None and index == min(shape.stall_after, total):
            await anyio.sleep(shape.stall_seconds)
        if shape.error_after is not None and index == min(shape.error_after, total):
            error = _dumps(error_body(shape.error_message, "server_error", 500))
            await writer.write(writer.event(error, "error" if shape.error_event else None))
            break
        data = b"" if at_end else writer.event(_dumps(events[index]))
        if shape.cut_after is not None and index >= shape.cut_after:
            lead = _first_lead_byte(data) if shape.cut_mid_utf8 else None
            if lead is not None:
                await writer.write(data[: lead + 1])
            if at_end or not shape.cut_mid_utf8 or lead is not None:
                await drop(shape.reset)
                return
        if at_end:
            break
        if shape.pings:
            await writer.write(b": ping" + writer.eol + writer.eol)
        if shape.empty_events:
            await writer.write(b"data:" + writer.eol + writer.eol)
        await writer.write(data)
    if not shape.omit_done:
        await writer.write(writer.event("[DONE]"))
    await writer.finish()
