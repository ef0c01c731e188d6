"""Per-call options every method takes, and what a model object offers (no spec involved).

At the bottom of the package: the generated parameters (`_spec/_params.py`) extend
`RequestOptions`, and the request checks (`_request.py`) read both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypedDict

import httpx

__all__ = ["ModelLike", "RequestOptions"]


class ModelLike(Protocol):
    """A generated model (or anything) that turns itself into its JSON object."""

    def to_dict(self) -> dict[str, Any]: ...


class RequestOptions(TypedDict, total=False):
    """Per-call transport options accepted by every method."""

    extra_headers: Mapping[str, str] | None
    """Headers added to (or overriding) the client's for this call."""
    extra_query: Mapping[str, str] | None
    """Query parameters added to the URL."""
    extra_body: Mapping[str, Any] | None
    """JSON fields merged into the body last (for parameters the SDK does not know yet)."""
    timeout: float | httpx.Timeout | None
    """This call's timeout (seconds, or an `httpx.Timeout`); None: the client's."""
