"""The SDK's one error tree (the mapping from responses to it is in `_errors_map.py`).

```
WandbInferenceError                    every error this SDK raises
├── ConfigurationError (ValueError)    bad or missing client options (no key, bad project)
├── InvalidRequestError (ValueError)   a call's arguments fail validation before sending
│   ├── CapabilityError                the model cannot do what was asked (vision, embeddings)
│   └── BatchFileError                 a batch job's files: invalid or duplicate lines, a
│                                      corrupt or locked output file (nothing was sent)
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
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._headers import request_id_of

if TYPE_CHECKING:
    from ._types._completion import ChatCompletion

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFileError",
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

_REDACTED = "[redacted]"


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


class BatchFileError(InvalidRequestError):
    """A batch job cannot start because of its files; nothing was sent.

    Invalid or duplicate input lines (each named with its line number in `problems`;
    `skip_invalid=True` / `--skip-invalid` goes on without them), an input file that
    cannot be read, an output file with a corrupt line before its end, or an output file
    another batch job is writing.

    Attributes:
        problems: `(line number, custom_id or None, what is wrong)` for each bad input
            line, in file order (empty for problems that are not about input lines).
    """

    def __init__(self, message: str, *, problems: tuple[tuple[int, str | None, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


def redact_request(request: httpx.Request | None) -> httpx.Request | None:
    """Return a copy of `request` safe to keep on a result or an error: no credentials.

    A shallow copy with its own headers (this runs on every call); the body is shared, it
    holds no secret. One pass finds the secret headers present (usually only
    `Authorization`), so only those are looked up again.
    """
    if request is None:
        return None
    headers = request.headers.copy()
    for name in _SECRET_HEADERS.intersection([key.lower() for key, _ in headers.raw]):
        headers[name.decode("ascii")] = _REDACTED
    clone = object.__new__(httpx.Request)
    clone.__dict__.update(request.__dict__)
    clone.headers = headers
    return clone


_SECRET_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"api-key", b"x-api-key"})


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
    """No usable response arrived: DNS failure, refused or reset connection, TLS error.

    Attributes:
        may_have_been_processed: True when the request had been sent before the failure
            (the connection broke or timed out while waiting for the reply): the server
            may have processed, and billed, it. The SDK never re-sends such a chat or
            embeddings request; check before sending it again. False when the failure
            proves it never left (refused, DNS, connect or pool timeout, failed write).
    """

    may_have_been_processed: bool = False


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
