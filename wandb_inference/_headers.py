"""Reading a reply's headers: the request id a server sent back.

At the bottom of the package (it imports nothing of it): errors, results and streams
all report the request id, and none of them may import the others for it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["request_id_of"]

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The request id a server sent back, if any (quote it in support tickets)."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None
