"""The service's error bodies: messages, types and codes per status (SERVICE.md's table).

One place for the wording, so the server's own errors and the injected faults say the same
thing the real service says, and the SDK's classifier (status, then `code`, then the
substrings `concurrency` / `quota` / `personal`) sees what it will see in production.
"""

from __future__ import annotations

import http
from typing import Any, Final, Literal

import attrs

__all__ = ["KINDS", "ErrorSpec", "Kind", "error_body", "spec_for"]

Kind = Literal["concurrency", "quota", "personal", "region", "gateway"]
"""Variants of one status: 429 concurrency / quota / personal, 403 region / gateway."""


@attrs.frozen(kw_only=True)
class ErrorSpec:
    """One error's `message`, `type` and `code` (the `error` object minus `param`).

    Attributes:
        message: the human sentence; `{model}` is replaced with the request's model.
        type: the error type (`rate_limit_error`, `server_error`, ...).
        code: the machine code, or None.
    """

    message: str
    type: str
    code: str | int | None = None


KINDS: Final[dict[tuple[int, Kind], ErrorSpec]] = {
    (429, "concurrency"): ErrorSpec(
        message="Concurrency limit reached for requests: {model}-project limit reached",
        type="rate_limit_error",
        code="rate_limit_exceeded",
    ),
    (429, "quota"): ErrorSpec(
        message="You exceeded your current quota, please check your plan and billing details",
        type="insufficient_quota",
        code="insufficient_quota",
    ),
    (429, "personal"): ErrorSpec(
        message="W&B Inference isn't available for personal accounts.",
        type="invalid_request_error",
        code="personal_account",
    ),
    (403, "region"): ErrorSpec(
        message="Country, region, or territory not supported",
        type="permission_error",
        code="unsupported_country_region_territory",
    ),
    (403, "gateway"): ErrorSpec(
        message="The inference gateway is not enabled for your organization",
        type="permission_error",
        code="gateway_disabled",
    ),
}

_DEFAULT_KIND: Final[dict[int, Kind]] = {429: "concurrency", 403: "region"}

_BY_STATUS: Final[dict[int, ErrorSpec]] = {
    400: ErrorSpec(message="Invalid request parameters", type="invalid_request_error"),
    401: ErrorSpec(message="Authentication failed", type="authentication_error", code="invalid_api_key"),
    402: ErrorSpec(
        message="You exceeded your current quota, please check your plan and billing details",
        type="insufficient_quota",
        code="insufficient_quota",
    ),
    404: ErrorSpec(message="model not found", type="not_found_error", code="model_not_found"),
    422: ErrorSpec(message="Invalid request parameters", type="invalid_request_error"),
    500: ErrorSpec(message="The server had an error while processing your request", type="server_error"),
    503: ErrorSpec(
        message="The engine is currently overloaded, please try again later",
        type="server_error",
        code="engine_overloaded",
    ),
}


def spec_for(status: int, kind: Kind | None = None) -> ErrorSpec:
    """The service's error for a status (and variant).

    Args:
        status: the HTTP status.
        kind: for 429 `concurrency` (default), `quota` or `personal`; for 403 `region`
            (default) or `gateway`. Other statuses take no kind.

    Returns:
        The message, type and code the service sends.

    Raises:
        ValueError: `kind` does not apply to `status`.
    """
    if kind is None:
        kind = _DEFAULT_KIND.get(status)
    if kind is not None:
        spec = KINDS.get((status, kind))
        if spec is None:
            allowed = sorted(k for s, k in KINDS if s == status)
            hint = f"one of {allowed}" if allowed else "none"
            raise ValueError(f"kind {kind!r} does not apply to status {status} (kinds: {hint})")
        return spec
    found = _BY_STATUS.get(status)
    if found is not None:
        return found
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return ErrorSpec(message=phrase, type="server_error" if status >= 500 else "invalid_request_error")


def error_body(message: str, type_: str, code: str | int | None = None, param: str | None = None) -> dict[str, Any]:
    """The service's JSON error body.

    Args:
        message: the human sentence.
        type_: the error type.
        code: the machine code.
        param: the request parameter at fault.

    Returns:
        `{"error": {"message", "type", "code", "param"}}`.
    """
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}
