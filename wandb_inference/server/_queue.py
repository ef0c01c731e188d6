"""Which request gets which fault: the FIFO queue, per-key bindings, scripted-header counts."""

from __future__ import annotations

import threading
from typing import Final, final

import attrs

from ._faults import Fault

__all__ = ["FaultQueue", "is_chat_path", "normalise_path"]

_CHAT_PATH: Final = "/chat/completions"


def normalise_path(path: str) -> str:
    """A path without the `/v1` prefix: `/v1/chat/completions` -> `/chat/completions`.

    Args:
        path: a request path, with or without `/v1`.

    Returns:
        The path as the OpenAPI document spells it.
    """
    path = "/" + path.lstrip("/")
    return path.removeprefix("/v1") or "/"


@attrs.define
class _Entry:
    fault: Fault
    remaining: int | None
    path: str | None = None
    model: str | None = None


@final
class FaultQueue:
    """Which request gets which fault. Thread-safe: tests push from their own thread.

    For each request the first match wins, in this order: the `X-Wandb-Fault` header,
    a fault bound to the request's API key, then the FIFO queue (the first entry whose
    filters match). Stream faults only match streamed chat requests, so they wait in the
    queue for one. Whatever matched is recorded with the request.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Entry] = []
        self._by_key: dict[str, _Entry] = {}
        self._header_uses: dict[str, int] = {}

    def push(self, fault: Fault, times: int | None = 1, path: str | None = None, model: str | None = None) -> None:
        """Queue a fault for the next matching request(s).

        Args:
            fault: what to do.
            times: how many requests get it (None: every matching request until `clear`).
            path: only requests to this path (`/chat/completions` or `/v1/chat/completions`).
            model: only requests for this model.

        Raises:
            ValueError: `times` is below 1.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        entry = _Entry(fault, times, normalise_path(path) if path else None, model)
        with self._lock:
            self._queue.append(entry)

    def for_key(self, key: str, fault: Fault, times: int | None = None) -> None:
        """Give every request authenticated with `key` this fault (replacing any before).

        Args:
            key: the bearer token as the client sends it.
            fault: what to do.
            times: how many requests get it (None: all until `clear`).

        Raises:
            ValueError: `times` is below 1.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        with self._lock:
            self._by_key[key] = _Entry(fault, times)

    def clear(self) -> None:
        """Forget queued and per-key faults and the header `id` counters."""
        with self._lock:
            self._queue.clear()
            self._by_key.clear()
            self._header_uses.clear()

    def __len__(self) -> int:
        """How many queue entries still wait (per-key faults not counted)."""
        with self._lock:
            return len(self._queue)

    def take(self, *, path: str, model: str | None, key: str | None, streamed_chat: bool) -> Fault | None:
        """The fault for one request from the key bindings or the queue, consuming it.

        Args:
            path: the request path.
            model: the request's model, if any.
            key: the bearer token, if any.
            streamed_chat: whether this is a chat request with `stream: true`.

        Returns:
            The fault, or None.
        """
        path = normalise_path(path)
        with self._lock:
            bound = self._by_key.get(key) if key is not None else None
            if key is not None and bound is not None and _fits(bound.fault, streamed_chat):
                if _consume(bound):
                    del self._by_key[key]
                return bound.fault
            for i, entry in enumerate(self._queue):
                if entry.path is not None and entry.path != path:
                    continue
                if entry.model is not None and entry.model != model:
                    continue
                if not _fits(entry.fault, streamed_chat):
                    continue
                if _consume(entry):
                    del self._queue[i]
                return entry.fault
        return None

    def take_scripted(self, fault: Fault, fault_id: str | None, times: int | None, streamed_chat: bool) -> bool:
        """Whether a header-scripted fault applies to this request (counting its `id`).

        Args:
            fault: the fault the header describes.
            fault_id: the header's `id`: requests carrying the same id share a count.
            times: how many of those requests fail (with an id; default 1).
            streamed_chat: whether this is a chat request with `stream: true`.

        Returns:
            True when this request gets the fault.
        """
        if not _fits(fault, streamed_chat):
            return False
        if fault_id is None:
            return True
        with self._lock:
            used = self._header_uses.get(fault_id, 0)
            if used >= (times or 1):
                return False
            self._header_uses[fault_id] = used + 1
            return True


def _fits(fault: Fault, streamed_chat: bool) -> bool:
    return fault.stream is None or streamed_chat


def _consume(entry: _Entry) -> bool:
    """Count one use; True when the entry is used up."""
    if entry.remaining is None:
        return False
    entry.remaining -= 1
    return entry.remaining <= 0


def is_chat_path(path: str) -> bool:
    """Whether `path` is the chat completions route (with or without `/v1`)."""
    return normalise_path(path) == _CHAT_PATH
