"""`Pool`: the sync client's `httpx.Client`, shared by its derived clients, renewed after `fork`."""

from __future__ import annotations

import os
import threading

import httpx

from ._policy._concurrency import reset_after_fork
from ._transports._pool_fix import sync_http_client

__all__ = ["Pool"]


class Pool:
    """The `httpx.Client` behind a client and its derived clients, renewed after `fork`.

    A forked child must not reuse the parent's sockets (both would read the same
    connection), so the first call in a child builds a new pool when the SDK created the
    original one; the parent's pool is left alone, not closed, in the child.
    """

    def __init__(self, http: httpx.Client, owned: bool) -> None:
        self._http = http
        self.owned = owned
        self._pid = os.getpid()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # Another thread may have held the lock at fork time: the child's copy stays held.
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid() and self.owned:
                    self._http = sync_http_client()
                self._pid = os.getpid()
        return self._http

    def close(self) -> None:
        if self.owned:
            self.get().close()
