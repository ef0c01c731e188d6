"""The SDK's one error tree, and the pure mapping from an HTTP response to an error.

```
WandbInferenceError                    every error this SDK raises
├── ConfigurationError (ValueError)    bad or missing client options (no key, bad project)
├── InvalidRequestError (ValueError)   a call's arguments fail validation before sending
│   └── CapabilityError                the model cannot do what was asked (vision, embeddings)
└── APIError                           something went wrong talking to the service
    ├── APIConnectionError             no response: DNS, refused, reset, TLS, protocol
    │   └── APITimeoutError            connect/read/write/pool timeout or total deadline
    ├── APIResponseValidationError     a 2xx whose body is not what the API documents
    ├── APIStatusError                 any non-2xx response (unusual 4xx land here)
    │   ├── BadRequestError            400, 422
    │   ├── AuthenticationError        401 (bad key, or wrong team/project)
    │   ├── QuotaExceededError         402, and 429 "quota" (out of credits): not retried
    │   ├── PermissionDeniedError      403 (region, or gateway disabled for the org)
    │   ├── NotFoundError              404 (unknown or retired model, wrong base URL)
    │   ├── RateLimitError             429 concurrency limit: retried with backoff
    │   ├── PersonalAccountError       429 "personal accounts": set a team project
    │   └── InternalServerError        500 and other 5xx
    │       └── ServiceUnavailableError  503 (and 529): overloaded
    └── StreamError                    a stream failed after it started; keeps the partial data
        ├── StreamInterruptedError     connection cut, or body ended without `[DONE]`
        └── StreamEventError           the server sent an error inside the stream
```

Every error message says what happened and what to do. The API key never appears in a
message, a repr or a log line: the request kept on an error has its `Authorization`
header redacted.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import httpx

if TYPE_CHECKING:
    from ._types import ChatCompletion

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CapabilityError",
    "ConfigurationError",
    "InternalServerError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "PersonalAccountError",
    "QuotaExceededError",
    "RateLimitError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamEventError",
    "StreamInterruptedError",
    "WandbInferenceError",
]

Endpoint = Literal["chat", "models", "embeddings", "other"]

_REDACTED = "[redacted]"
_BODY_SNIPPET = 300


class WandbInferenceError(Exception):
    """Base class of every error raised by wandb-inference."""

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def _repr_markdown_(self) -> str:
        """Jupyter rendering: the class name in bold, then the message."""
        return f"**{type(self).__name__}**: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # The default exception pickling calls `cls(*self.args)`, which fails for the
        # subclasses with required keyword-only arguments (`response=`, `error=`): their
        # errors could not cross a process pool, nor be `copy`-ed. Rebuild without
        # `__init__` and restore the attributes (request already redacted) instead.
        return (_rebuild_error, (type(self), self.args), self.__dict__)


def _rebuild_error(cls: type[WandbInferenceError], args: tuple[Any, ...]) -> WandbInferenceError:
    error = cls.__new__(cls)
    error.args = args
    return error


class ConfigurationError(WandbInferenceError, ValueError):
    """A client option is missing or invalid (API key, project, base URL, timeout...)."""


class InvalidRequestError(WandbInferenceError, ValueError):
    """The arguments of a call are invalid; raised before anything is sent."""


class CapabilityError(InvalidRequestError):
    """The model cannot do what the call asks (images to a text-only model, ...).

    Raised before sending. Pass `check_capabilities=False` to skip the check for models
    the catalog does not know yet.
    """


def redact_request(request: httpx.Request | None) -> httpx.Request | None:
    """Return a copy of `request` safe to keep on a result or an error: no credentials.

    A shallow copy with its own headers (3 us, against 15 us for a new `httpx.Request`:
    this runs on every call); the body is shared, it holds no secret.
    """
    if request is None:
        return None
    headers = request.headers.copy()
    for name in _SECRET_HEADERS:
        if name in headers:
            headers[name] = _REDACTED
    clone = object.__new__(httpx.Request)
    clone.__dict__.update(request.__dict__)
    clone.headers = headers
    return clone


_SECRET_HEADERS = ("authorization", "proxy-authorization", "api-key", "x-api-key")


class APIError(WandbInferenceError):
    """Something went wrong while talking to the service.

    Attributes:
        request: the request that failed, with credentials redacted (None if not built).
    """

    request: httpx.Request | None

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = redact_request(request)


class APIConnectionError(APIError):
    """No usable response arrived: DNS failure, refused or reset connection, TLS error."""


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write, pool) or hit its total deadline."""


class APIResponseValidationError(APIError):
    """A successful response whose body is not what the API documents."""

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message, request=request)
        self.response = response
        self.body = body


class APIStatusError(APIError):
    """The service answered with a non-2xx status.

    Attributes:
        status_code: the HTTP status.
        body: the parsed JSON body, or the text for non-JSON bodies (HTML, plain text),
            or None when empty.
        response: the `httpx.Response` (body already read).
        request_id: the `x-request-id` (or similar) header, when the server sent one.
        retry_after: seconds the server asked to wait (`retry-after-ms` / `Retry-After`),
            or None.
        code: the `error.code` of a JSON error body, if any.
        server_message: the server's own message, without the SDK's advice.
    """

    status_code: int
    body: object
    response: httpx.Response
    request_id: str | None
    retry_after: float | None
    code: str | None
    server_message: str

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: object,
        server_message: str = "",
        code: str | None = None,
    ) -> None:
        super().__init__(message, request=_request_of(response))
        self.response = response
        self.status_code = response.status_code
        self.body = body
        self.request_id = request_id_of(response.headers)
        self.retry_after = parse_retry_after(response.headers)
        self.code = code
        self.server_message = server_message


class BadRequestError(APIStatusError):
    """400 or 422: the service rejected the request's parameters."""


class AuthenticationError(APIStatusError):
    """401: the API key is wrong, or the key cannot use the `OpenAI-Project` sent."""


class QuotaExceededError(APIStatusError):
    """402, or a 429 about quota: out of credits or over the spend cap. Never retried."""


class PermissionDeniedError(APIStatusError):
    """403: region not supported, or the inference gateway is disabled for the org."""


class NotFoundError(APIStatusError):
    """404: unknown or retired model, or a base URL that is not the API's."""


class RateLimitError(APIStatusError):
    """429 concurrency limit: too many requests in flight. Retried with backoff."""


class PersonalAccountError(APIStatusError):
    """429 for personal accounts: requests must name a team project. Never retried."""


class InternalServerError(APIStatusError):
    """500 or another 5xx: the service failed. 500, 502 and 504 are retried."""


class ServiceUnavailableError(InternalServerError):
    """503 (or 529): the engine is overloaded. Retried with backoff."""


class StreamError(APIError):
    """A stream failed after it started. Nothing received is lost.

    Attributes:
        partial: the completion accumulated from the chunks received before the failure
            (content, reasoning, tool calls so far), or None if no chunk arrived.
        text: the content text received so far (first choice), "" if none.
        reasoning: the reasoning text received so far (first choice), "" if none.
        chunks_received: how many chunks arrived before the failure.
    """

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        partial: ChatCompletion | None = None,
        text: str = "",
        reasoning: str = "",
        chunks_received: int = 0,
    ) -> None:
        super().__init__(message, request=request)
        self.partial = partial
        self.text = text
        self.reasoning = reasoning
        self.chunks_received = chunks_received


class StreamInterruptedError(StreamError):
    """The connection broke mid-stream, or the body ended without `data: [DONE]`."""


class StreamEventError(StreamError):
    """The server sent an error inside the stream (`{"error": ...}` or `event: error`).

    Attributes:
        error: the error object the server sent (a dict, or the raw text).
        code: its `code`, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        error: object,
        code: str | None = None,
        request: httpx.Request | None = None,
        partial: ChatCompletion | None = None,
        text: str = "",
        reasoning: str = "",
        chunks_received: int = 0,
    ) -> None:
        super().__init__(
            message,
            request=request,
            partial=partial,
            text=text,
            reasoning=reasoning,
            chunks_received=chunks_received,
        )
        self.error = error
        self.code = code


# --------------------------------------------------------------------------- mapping


def _request_of(response: httpx.Response) -> httpx.Request | None:
    try:
        return response.request
    except RuntimeError:  # a Response built without a request (tests, user code)
        return None


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


def request_id_of(headers: httpx.Headers) -> str | None:
    """The request id a server sent back, if any."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked to wait, from `retry-after-ms` or `Retry-After`.

    `Retry-After` may be a number of seconds or an HTTP date. Negative, non-finite or
    unparsable values give None. Callers cap the result.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        reference = time.time() if now is None else now
        seconds = max(0.0, parsed.timestamp() - reference)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


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
        return "The engine is overloaded. The SDK already retried; W&B advises waiting 60-120 s before trying again."
    if cls is InternalServerError:
        return "The service failed. W&B advises waiting 30-60 s before trying again."
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


def connection_error_from(
    exc: httpx.TransportError, request: httpx.Request | None, *, base_url: str
) -> APIConnectionError:
    """Turn an httpx transport error into the SDK's typed error with advice."""
    redact_transport_error(exc)
    kind = type(exc).__name__
    detail = str(exc) or kind
    if isinstance(exc, httpx.TimeoutException):
        what = {
            "ConnectTimeout": "connecting",
            "ReadTimeout": "waiting for the response",
            "WriteTimeout": "sending the request",
            "PoolTimeout": "waiting for a free connection from the pool",
        }.get(kind, "talking to the server")
        return APITimeoutError(
            f"Timed out {what} ({kind}) at {base_url}. Reasoning models can take minutes "
            "before the first token: raise `timeout=` or use stream=True.",
            request=request,
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        # The server was reached but its reply was not valid HTTP: "Could not reach" would
        # send the user looking at the network. h11 says "Receive buffer too long" when
        # the headers pass httpx's 100 KiB limit: name that in words.
        hint = " (the response headers exceed httpx's 100 KiB limit)" if "buffer too long" in detail else ""
        return APIConnectionError(
            f"The server at {base_url} sent a broken HTTP response or closed the connection "
            f"without one ({kind}: {detail}){hint}. Check the base URL and any proxy in "
            "between; the SDK already retried.",
            request=request,
        )
    return APIConnectionError(
        f"Could not reach {base_url} ({kind}: {detail}). Check the network, the base URL "
        "and any proxy settings (HTTPS_PROXY); the SDK already retried.",
        request=request,
    )


def redact_transport_error(exc: httpx.TransportError) -> None:
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
