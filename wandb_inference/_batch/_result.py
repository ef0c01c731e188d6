"""What a batch request came to: `BatchResult`, its OpenAI Batch output line, and how
each error is treated by a job. Pure.

Output line: `{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error": null}`; a failure: `{"id", "custom_id", "response": null or the error response,
"error": {"code", "message"}}`.

How a job treats an error (`classify`):
- `line`: the line failed (400, 404, 5xx after the client's retries, a reply that may
  have been processed...): written to the errors file, never sent again by a re-run.
- `requeue`: the request was certainly not processed (a concurrency 429 or a 503 the
  client's retries did not get past, a connection that never carried it, a wait for a
  concurrency slot that ran out): sent again later in the same job, a bounded number of
  times, then written as a line failure.
- `job`: the failure is the job's, not the line's (a bad key 401, 403, out of quota
  402 / quota 429, a personal account's 429): the job stops, the line is not written, so
  that re-running the same command once it is fixed sends it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final, Literal, final

import attrs

from wandb_inference._exceptions import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CapabilityError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PersonalAccountError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    WandbInferenceError,
)

if TYPE_CHECKING:
    from wandb_inference._types._completion import ChatCompletion
    from wandb_inference._types._embeddings import EmbeddingResponse

__all__ = ["BatchResult", "Treatment", "classify", "error_code", "output_line"]

Treatment = Literal["line", "requeue", "job"]

_JOB_ERRORS: Final = (AuthenticationError, PermissionDeniedError, QuotaExceededError, PersonalAccountError)
_CODES: Final[tuple[tuple[type[WandbInferenceError], str], ...]] = (
    (CapabilityError, "capability_error"),
    (InvalidRequestError, "invalid_request"),
    (BadRequestError, "bad_request"),
    (AuthenticationError, "authentication_error"),
    (QuotaExceededError, "quota_exceeded"),
    (PermissionDeniedError, "permission_denied"),
    (NotFoundError, "not_found"),
    (RateLimitError, "rate_limit_exceeded"),
    (PersonalAccountError, "personal_account"),
    (ServiceUnavailableError, "service_unavailable"),
    (InternalServerError, "server_error"),
    (APITimeoutError, "timeout"),
    (APIConnectionError, "connection_error"),
    (APIResponseValidationError, "invalid_response"),
)


@final
@attrs.frozen(kw_only=True)
class BatchResult:
    """The outcome of one batch request.

    Attributes:
        custom_id: the request's `custom_id`.
        response: the typed result (`ChatCompletion` or `EmbeddingResponse`), or None.
        error: the typed error (a `WandbInferenceError`), or None.
        line: the request's line number (or position in the iterable, from 1).
        latency: seconds from sending to the result (client retries and waits included).
    """

    custom_id: str
    response: ChatCompletion | EmbeddingResponse | None = None
    error: WandbInferenceError | None = None
    line: int | None = None
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.error is None

    @property
    def request_id(self) -> str | None:
        """The server's request id (of the reply, or of the error response)."""
        if self.response is not None:
            return self.response.request_id
        return self.error.request_id if isinstance(self.error, APIStatusError) else None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI Batch output line (a dict) for this result."""
        return output_line(self.custom_id, self.response, self.error)


def _message(error: BaseException) -> str:
    return " ".join(str(error).split())


def error_code(error: BaseException) -> str:
    """The `error.code` of an output line: the server's own code when it sent one,
    else a name for the error's class (`quota_exceeded`, `timeout`, ...)."""
    if isinstance(error, APIStatusError) and error.code:
        return error.code
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    if isinstance(error, APIStatusError):
        return f"http_{error.status_code}"
    return "error"


def output_line(
    custom_id: str,
    response: ChatCompletion | EmbeddingResponse | None,
    error: BaseException | None,
) -> dict[str, Any]:
    """The OpenAI Batch output line of a result (success or failure)."""
    line_id = f"batch_req_{uuid.uuid4().hex}"
    if error is None:
        assert response is not None
        http = response.http_response
        reply = {
            "status_code": http.status_code if http is not None else 200,
            "request_id": response.request_id,
            "body": response.to_dict(),
        }
        return {"id": line_id, "custom_id": custom_id, "response": reply, "error": None}
    failed: dict[str, Any] | None = None
    if isinstance(error, APIStatusError):
        failed = {"status_code": error.status_code, "request_id": error.request_id, "body": error.body}
    return {
        "id": line_id,
        "custom_id": custom_id,
        "response": failed,
        "error": {"code": error_code(error), "message": _message(error)},
    }


def classify(error: BaseException) -> Treatment:
    """How a job treats a request that failed with `error` (see the module docstring)."""
    if isinstance(error, _JOB_ERRORS):
        return "job"
    if isinstance(error, RateLimitError | ServiceUnavailableError):
        return "requeue"
    if isinstance(error, APIConnectionError) and not error.may_have_been_processed:
        return "requeue"
    return "line"


def is_unreachable(error: BaseException) -> bool:
    """A failure that says the service cannot be reached at all (counted in a row, it stops a job)."""
    return isinstance(error, APIConnectionError) and not error.may_have_been_processed
