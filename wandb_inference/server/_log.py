"""The record of every request the server received, for tests to assert on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, final, overload

import attrs

from ._faults import Fault

__all__ = ["RecordedRequest", "RequestLog"]


@final
@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the server received it.

    Attributes:
        request_id: the `x-request-id` the server answered with.
        method: the HTTP method.
        path: the path, `/v1/...` included.
        query: the raw query string.
        headers: every header as received (names lower-case, `authorization` included).
        content: the raw body bytes.
        body: the body parsed as JSON, or None (empty or not JSON).
        fault: the fault applied to it, or None.
        status: the response status, once sent; None while pending or when the fault
            dropped the connection before any response.
        received_at: `time.time()` on arrival.
    """

    request_id: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    content: bytes
    body: Any
    fault: Fault | None = None
    status: int | None = None
    received_at: float

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None.

        Args:
            name: the header name.

        Returns:
            The value as received.
        """
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    @property
    def model(self) -> str | None:
        """The `model` field of a JSON body, if any."""
        if isinstance(self.body, dict):
            model = self.body.get("model")
            return model if isinstance(model, str) else None
        return None


@final
class RequestLog:
    """Every request received, oldest first. Thread-safe; reads return snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []
        self._positions: dict[str, int] = {}

    def append(self, request: RecordedRequest) -> None:
        """Record a request.

        Args:
            request: the request.
        """
        with self._lock:
            self._positions[request.request_id] = len(self._items)
            self._items.append(request)

    def update(self, request_id: str, **changes: Any) -> None:
        """Amend a recorded request (its fault, its status); ignored after `clear()`.

        Args:
            request_id: which request.
            **changes: field values to replace.
        """
        with self._lock:
            position = self._positions.get(request_id)
            if position is not None:
                self._items[position] = attrs.evolve(self._items[position], **changes)

    def clear(self) -> None:
        """Forget every request recorded so far."""
        with self._lock:
            self._items.clear()
            self._positions.clear()

    def snapshot(self) -> list[RecordedRequest]:
        """A copy of the list of requests.

        Returns:
            The requests, oldest first.
        """
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    @overload
    def __getitem__(self, index: int) -> RecordedRequest: ...
    @overload
    def __getitem__(self, index: slice) -> list[RecordedRequest]: ...
    def __getitem__(self, index: int | slice) -> RecordedRequest | list[RecordedRequest]:
        with self._lock:
            return self._items[index]

    @property
    def last(self) -> RecordedRequest:
        """The most recent request.

        Raises:
            IndexError: nothing was received yet.
        """
        with self._lock:
            if not self._items:
                raise IndexError("the server has received no request yet")
            return self._items[-1]
