"""From what the service sent to the SDK's typed error, with advice. Pure.

One status -> class table (`error_class_for`), 429 split by code and message into
concurrency / quota / personal account, bodies of any shape (JSON, `{"detail"}`, text,
HTML from a proxy, empty), transport failures with what to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

import httpx

from wandb_inference._exceptions import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PersonalAccountError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    redact_request,
)
from wandb_inference._headers import request_id_of

__all__ = [
    "Endpoint",
    "classify_429",
    "connection_error_from",
    "decode_error_body",
    "error_class_for",
    "error_payload_message",
    "make_status_error",
    "redact_transport_error",
]

Endpoint = Literal["chat", "models", "embeddings", "other"]

_BODY_SNIPPET = 300


def decode_error_body(response: httpx.Response) -> tuple[object, str, str | None]:
    """Parse an error body of any shape.

    Returns:
        (body, server_message, code): the JSON value or text (None if empty), the most
        useful human message found in it, and `error.code` as a string if present.
    """
    content = response.content
    if not content:
        return None, "", None
    text = content.decode(response.encoding or "utf-8", errors="replace")
    try:
        body: object = json.loads(text)
    except ValueError:
        stripped = text.strip()
        if stripped.startswith("<") or "html" in response.headers.get("content-type", ""):
            return text, _html_summary(stripped), None
        return text, _snippet(stripped), None
    return body, *_message_and_code(body)


def _message_and_code(body: object) -> tuple[str, str | None]:
    if isinstance(body, Mapping):
        error = body.get("error")
        if isinstance(error, Mapping):
            message = error.get("message")
            code = error.get("code")
            etype = error.get("type")
            msg = message if isinstance(message, str) else ""
            if not msg and isinstance(etype, str):
                msg = etype
            return _snippet(msg), None if code is None else str(code)
        if isinstance(error, str):
            return _snippet(error), None
        for key in ("detail", "message"):
            value = body.get(key)
            if isinstance(value, str):
                return _snippet(value), None
            if value is not None:
                return _snippet(json.dumps(value)), None
    if isinstance(body, str):
        return _snippet(body), None
    return _snippet(json.dumps(body)), None


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > _BODY_SNIPPET:
        return text[: _BODY_SNIPPET - 3] + "..."
    return text


def _html_summary(html: str) -> str:
    lower = html.lower()
    start = lower.find("<title>")
    if start != -1:
        end = lower.find("</title>", start)
        if end != -1:
            return "HTML page: " + _snippet(html[start + 7 : end])
    return "an HTML page (probably from a proxy or load balancer)"


def _has(message: str, *needles: str) -> bool:
    lower = message.lower()
    return any(n in lower for n in needles)


def classify_429(server_message: str, code: str | None) -> type[APIStatusError]:
    """Which kind of 429 this is, from the error code and message."""
    if _has(server_message, "personal"):
        return PersonalAccountError
    if code == "insufficient_quota" or (_has(server_message, "quota") and not _has(server_message, "concurrency")):
        return QuotaExceededError
    return RateLimitError


def error_class_for(status: int, server_message: str, code: str | None) -> type[APIStatusError]:
    """The error class for a non-2xx status (the one status -> class table)."""
    if status == 429:
        return classify_429(server_message, code)
    cls = _STATUS_TO_ERROR.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return InternalServerError
    return APIStatusError


_STATUS_TO_ERROR: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: BadRequestError,
    500: InternalServerError,
    503: ServiceUnavailableError,
    529: ServiceUnavailableError,
}


def _advice(
    cls: type[APIStatusError],
    status: int,
    endpoint: Endpoint,
    model: str | None,
    retried: int,
) -> str:
    if cls is AuthenticationError:
        return (
            "Check the API key (WANDB_API_KEY, or `wandb login`; keys are at "
            "https://wandb.ai/authorize). A wrong project also gives 401: check that the "
            "OpenAI-Project 'team/project' exists and that this key's user belongs to the team."
        )
    if cls is QuotaExceededError:
        return (
            "Out of credits or over the spend cap: check the plan and billing of the "
            "entity in the W&B settings. Retrying will not help."
        )
    if cls is PermissionDeniedError:
        return (
            "The service refused this account: W&B Inference may not be available in "
            "this region, or the inference gateway is not enabled for the organization "
            "(an org admin can enable it)."
        )
    if cls is NotFoundError:
        if endpoint == "chat":
            name = f"Model {model!r}" if model else "The model"
            return (
                f"{name} is unknown here or has been retired (retired models answer 404). "
                "List the served models with `await client.models.list()` "
                "(or `wandb-inference models`), and check the base URL."
            )
        if endpoint == "embeddings":
            return (
                "This deployment serves no embeddings for this model (W&B's catalog may "
                "list no embedding model). Check the model id with `client.models.list()` "
                "and the base URL."
            )
        return "Check the base URL: it should end in /v1 (https://api.inference.wandb.ai/v1)."
    if cls is RateLimitError:
        tries = f" after {retried} retries" if retried else ""
        return (
            f"Concurrency limit reached{tries}: too many requests in flight for this "
            "project or model. Lower your parallelism (see `max_concurrency`), raise "
            "`max_retries`, or try later."
        )
    if cls is PersonalAccountError:
        return (
            "W&B Inference needs a team project for this account: pass "
            "project='team/project' (or set WANDB_PROJECT and WANDB_ENTITY, or "
            "WANDB_INFERENCE_PROJECT)."
        )
    if cls is ServiceUnavailableError:
        return "The engine is overloaded. W&B advises waiting 60-120 s before trying again." + _retry_note(retried)
    if cls is InternalServerError:
        return "The service failed. W&B advises waiting 30-60 s before trying again." + _retry_note(retried)
    if cls is BadRequestError:
        return "Fix the request parameters named above; retrying the same request will fail."
    if 300 <= status < 400:
        return (
            "The server redirected the request. The SDK does not follow redirects (the API "
            "key must not travel to another host): set base_url to the final URL."
        )
    return "Unexpected status from the server: check the base URL and any proxy in between."


def make_status_error(
    response: httpx.Response,
    *,
    endpoint: Endpoint = "other",
    model: str | None = None,
    retried: int = 0,
) -> APIStatusError:
    """Build the typed error for a non-2xx response whose body has been read."""
    body, server_message, code = decode_error_body(response)
    status = response.status_code
    cls = error_class_for(status, server_message, code)
    reason = response.reason_phrase or "error"
    if 300 <= status < 400 and "location" in response.headers:
        server_message = f"redirect to {response.headers['location']}"
    said = f": {server_message}" if server_message else ""
    request_id = request_id_of(response.headers)
    rid = f" (request id {request_id})" if request_id else ""
    message = f"{status} {reason}{said}{rid}. {_advice(cls, status, endpoint, model, retried)}"
    return cls(message, response=response, body=body, server_message=server_message, code=code)


def _retry_note(retried: int) -> str:
    """What the SDK did about it: said only when it did retry."""
    if not retried:
        return ""
    return f" The SDK retried {retried} time{'s' if retried != 1 else ''} first."


def connection_error_from(
    exc: httpx.TransportError,
    request: httpx.Request | None,
    *,
    base_url: str,
    retried: int = 0,
    processed: bool = False,
) -> APIConnectionError:
    """Turn an httpx transport error into the SDK's typed error with advice.

    Args:
        exc: the transport error (its request is redacted in place: it stays `__cause__`).
        request: the request that failed (kept redacted on the error).
        base_url: named in the message.
        retried: how many retries were made before this failure (said only when > 0).
        processed: the request was sent and the server may have processed it (a POST
            whose connection broke after sending: not re-sent, the message says so).
    """
    redact_transport_error(exc)
    kind = type(exc).__name__
    detail = str(exc) or kind
    note = _retry_note(retried)
    maybe = (
        " The request had been sent: the server may have received and processed it (and "
        "billed it), so the SDK did not re-send it. Check before sending it again."
        if processed
        else ""
    )
    error: APIConnectionError
    if isinstance(exc, httpx.TimeoutException):
        what = {
            "ConnectTimeout": "connecting",
            "ReadTimeout": "waiting for the response",
            "WriteTimeout": "sending the request",
            "PoolTimeout": "waiting for a free connection from the pool",
        }.get(kind, "talking to the server")
        error = APITimeoutError(
            f"Timed out {what} ({kind}) at {base_url}. Reasoning models can take minutes "
            f"before the first token: raise `timeout=` or use stream=True.{maybe}{note}",
            request=request,
        )
    elif isinstance(exc, httpx.RemoteProtocolError):
        # The server was reached but its reply was not valid HTTP: "Could not reach" would
        # send the user looking at the network. h11 says "Receive buffer too long" when
        # the headers pass httpx's 100 KiB limit: name that in words.
        hint = " (the response headers exceed httpx's 100 KiB limit)" if "buffer too long" in detail else ""
        error = APIConnectionError(
            f"The server at {base_url} sent a broken HTTP response or closed the connection "
            f"without one ({kind}: {detail}){hint}. Check the base URL and any proxy in "
            f"between.{maybe}{note}",
            request=request,
        )
    elif processed:
        error = APIConnectionError(
            f"The connection to {base_url} broke while waiting for the reply ({kind}: {detail}).{maybe}{note}",
            request=request,
        )
    else:
        error = APIConnectionError(
            f"Could not reach {base_url} ({kind}: {detail}). Check the network, the base URL "
            f"and any proxy settings (HTTPS_PROXY).{note}",
            request=request,
        )
    error.may_have_been_processed = processed
    return error


def redact_transport_error(exc: httpx.RequestError) -> None:
    """Swap the request an httpx error keeps for a copy without credentials.

    The SDK raises its own errors `from` httpx's, so the httpx error stays reachable as
    `__cause__` (error reporters walk it); its `.request` is the one sent, with the key.
    """
    try:
        request = exc.request
    except RuntimeError:  # raised before httpx attached a request
        return
    redacted = redact_request(request)
    if redacted is not None:
        exc.request = redacted


def error_payload_message(error: object) -> tuple[str, str | None]:
    """The message and code of an in-stream error payload."""
    if isinstance(error, Mapping):
        return _message_and_code({"error": error})
    if isinstance(error, str):
        return _snippet(error), None
    return _snippet(json.dumps(error)), None
