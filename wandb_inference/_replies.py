"""What comes back, shared by both clients: bodies, typed results and typed errors.

The send loops (`_async_client`, `_client`) read a reply's body under the size caps
here, then turn it into a result (`finish_*`) or an error: a status (`status_error`), a
failed attempt (`attempt_error`: timeouts at the call's deadline, a request that may have
been processed, a corrupt body), a slot wait that ran out, a stream answered with
something other than events. One DEBUG line per attempt (`log_attempt`), never the key.
Pure: no I/O.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    NotFoundError,
    RateLimitError,
    StreamEventError,
    redact_request,
)
from ._lazy import lazy_module
from ._policy._errors_map import error_payload_message, make_status_error
from ._policy._redact import forget_transport
from ._policy._retry import FREE_RETRY_WINDOW

if TYPE_CHECKING:
    from ._exceptions import APIError
    from ._policy._concurrency import _Limits
    from ._policy._retry import RetryDecision, RetryState
    from ._prepare import RequestSpec
    from ._tracing._operation import Operation
    from ._types import _base, _completion, _parse
    from ._types._completion import ChatCompletion
    from ._types._embeddings import EmbeddingResponse
    from ._types._model_list import ModelList
else:
    # Loaded by the first reply that needs them (each loads its generated models).
    _base = lazy_module("wandb_inference._types._base")
    _completion = lazy_module("wandb_inference._types._completion")
    _parse = lazy_module("wandb_inference._types._parse")

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_RESPONSE_BODY",
    "attempt_error",
    "decode_json",
    "finish_chat",
    "finish_embeddings",
    "finish_models",
    "log_attempt",
    "logger",
    "status_error",
    "stream_reply_not_sse",
]

logger = logging.getLogger("wandb_inference")


# Bodies a hostile or broken server could make huge are read up to these sizes.
MAX_ERROR_BODY = 1 << 20  # 1 MiB: error pages


MAX_RESPONSE_BODY = 100 << 20  # 100 MiB: a JSON reply (embeddings of long batches are big)


def slot_wait(capped: Mapping[str, float | None] | None, spec: RequestSpec) -> float | None:
    """How long an attempt may wait for a concurrency slot: its pool timeout (cut to the
    time left of `total_timeout`)."""
    timeouts = capped if capped is not None else spec.timeouts
    return None if not timeouts else timeouts.get("pool")


def free_window(spec: RequestSpec) -> float:
    """How long a call's concurrency 429s the gate absorbs stay free of `max_retries`: the
    request's pool timeout (the bound of a wait for a slot; none set: no bound but
    `total_timeout`)."""
    timeouts = spec.timeouts
    pool = timeouts.get("pool", FREE_RETRY_WINDOW) if timeouts else FREE_RETRY_WINDOW
    return math.inf if pool is None else pool


def slot_timeout(describe: str, waited: float | None, spec: RequestSpec, state: RetryState) -> APIError:
    """The error for an attempt that waited too long for a concurrency slot."""
    if state.expired(slack=0.05):
        return state.deadline_error("waiting for a concurrency slot", spec.request)
    from ._exceptions import APITimeoutError

    model = f" for {spec.model}" if spec.model else ""
    return APITimeoutError(
        f"Waited {waited or 0:g}s for a free concurrency slot{model} ({describe}): the "
        "client's other requests hold every slot (an open stream holds its slot until it is "
        "closed or read to the end). Close streams you are done with, lower your "
        "parallelism, or raise the pool part of `timeout=`.",
        request=spec.request,
    )


def attempt_error(exc: Exception, spec: RequestSpec, state: RetryState, base_url: str) -> APIError:
    """The typed error for an httpx error raised while sending a request or reading its reply.

    A timeout at the call's deadline says so; a transport failure after the request was
    sent says it may have been processed (POST); a body that cannot be decoded (corrupt
    gzip) is an invalid response; anything else from httpx is a connection error. The
    httpx error's request is redacted: it stays reachable as `__cause__`.
    """
    from ._exceptions import APIConnectionError
    from ._policy._errors_map import connection_error_from, redact_transport_error
    from ._policy._retry import may_have_been_processed

    request = spec.request
    if isinstance(exc, httpx.TimeoutException) and state.expired(slack=0.05):
        redact_transport_error(exc)
        sent = not spec.idempotent and may_have_been_processed(exc)
        return state.deadline_error(f"({type(exc).__name__})", request, processed=sent)
    if isinstance(exc, httpx.TransportError):
        processed = not spec.idempotent and may_have_been_processed(exc)
        return connection_error_from(exc, request, base_url=base_url, retried=state.retries, processed=processed)
    if isinstance(exc, httpx.RequestError):
        redact_transport_error(exc)
    if isinstance(exc, httpx.DecodingError):
        return APIResponseValidationError(
            f"The reply from {request.url} could not be decoded ({exc}): its compressed body "
            "(Content-Encoding) is corrupt. A broken server or proxy; the request was processed.",
            request=request,
        )
    return APIConnectionError(
        f"The request to {request.url} failed in httpx ({type(exc).__name__}: {exc}).",
        request=request,
    )


def gate_paces_retry(error: APIStatusError, limiter: _Limits | None, model: str | None) -> bool:
    """Whether the retry of `error` skips its backoff: the gate will pace it instead.

    A concurrency 429 without `Retry-After` is retried at once when the adaptive gate
    will hold the retry anyway (the limit was just lowered to what is in flight, or a
    pause began because others hold the whole limit): it waits there for a slot or for
    the pause to end, the pacing the backoff would have given, without sleeping past the
    moment one frees up. Such a retry is absorbed (`RetryState.decide(free=True)`).
    """
    return (
        limiter is not None and error.retry_after is None and isinstance(error, RateLimitError) and limiter.holds(model)
    )


def gave_up(error: APIStatusError, decision: RetryDecision) -> APIStatusError:
    """The final status error, saying why a retryable one was not retried."""
    reason = decision.reason
    if reason.startswith(("total_timeout", "server asked")):
        error.message += f" Not retried: {reason}."
        error.args = (error.message,)
    return error


def log_attempt(
    spec: RequestSpec,
    attempt: int,
    outcome: str,
    decision: RetryDecision | None,
    error: BaseException | None = None,
) -> None:
    """One DEBUG line per attempt: method, URL, outcome, attempt, delay. Never the key.

    A traced call also gets an event per attempt on its span (status, wait, 429 kind).
    """
    if spec.trace is not None:
        spec.trace.attempt(attempt, outcome, decision, error)
    if not logger.isEnabledFor(logging.DEBUG):
        return
    request = spec.request
    if decision is None:
        logger.debug("%s %s -> %s (attempt %d)", request.method, request.url, outcome, attempt)
    elif decision.retry:
        logger.debug(
            "%s %s -> %s (attempt %d, retrying in %.2fs)",
            request.method,
            request.url,
            outcome,
            attempt,
            decision.delay,
        )
    else:
        logger.debug(
            "%s %s -> %s (attempt %d, not retried: %s)",
            request.method,
            request.url,
            outcome,
            attempt,
            decision.reason,
        )


def redact_response(response: httpx.Response) -> None:
    """Make a response safe to keep on a result or an error: nothing leads to the key.

    Its request (and the next one of a redirect, and those of the redirects a user's
    client followed, in `history`) become copies without credentials; the transport's
    stream and connection, which still hold the request as sent, go when the response
    is closed (now, if it already is).
    """
    response.request = redact_request(response.request)  # type: ignore[assignment]
    if response.next_request is not None:
        response.next_request = redact_request(response.next_request)
    for earlier in response.history:
        redact_response(earlier)
    forget_transport(response)


def keep_error_body(response: httpx.Response, content: bytes) -> None:
    """Record an error body read (size-capped) from the stream as the response's content.

    Reading with `aiter_bytes()` under a cap, as the clients do, does not set what
    `Response.read()` sets; without this `response.content` (which classifies the error,
    and which users read on `error.response`) raises `httpx.ResponseNotRead` for every
    real, streamed error reply. `b""` when the body was over the cap or broke off.
    """
    response._content = content  # what `httpx.Response.read()` itself assigns


def too_large(limit: int, what: str, request: httpx.Request | None) -> APIResponseValidationError:
    """The error for a body over its size limit."""
    return APIResponseValidationError(
        f"The {what} exceeds {limit // (1 << 20)} MiB; refusing to read more (a broken "
        "server or proxy, or a decompression bomb?).",
        request=request,
    )


def decode_json(content: bytes, response: httpx.Response) -> object:
    """Decode a successful JSON reply, or raise the SDK's error showing what came instead.

    Raises:
        APIResponseValidationError: not JSON (an HTML page from a proxy, plain text...).
    """
    try:
        return json.loads(content)
    except ValueError as exc:
        ctype = response.headers.get("content-type", "?")
        snippet = content[:200].decode("utf-8", errors="replace")
        raise APIResponseValidationError(
            f"Expected JSON from {response.request.url} but got {ctype!r}: {snippet!r}. Is the "
            "base URL an OpenAI-compatible API (ending in /v1)?",
            request=response.request,
            response=response,
            body=snippet,
        ) from exc


def is_event_stream(response: httpx.Response) -> bool:
    """Whether a reply to a `stream=True` call is an event stream (`text/event-stream`)."""
    ctype: str = response.headers.get("content-type", "")
    return ctype[:17].lower() == "text/event-stream"


def stream_reply_not_sse(content: bytes, response: httpx.Response) -> Exception:
    """The error for a `stream=True` call answered with something other than events.

    JSON may be the server's error payload (raised as such) or one whole completion (the
    server does not stream); anything else, such as a proxy's HTML login page, is named
    by its content type.
    """
    ctype = response.headers.get("content-type", "")
    if "json" not in ctype.lower():
        snippet = content[:200].decode("utf-8", errors="replace")
        shown = repr(ctype) if ctype else "no content type"
        return APIResponseValidationError(
            f"Asked for a stream (stream=True) but {response.request.url} answered with "
            f"{shown}, not 'text/event-stream': {snippet!r}. Is the base URL an "
            "OpenAI-compatible API (ending in /v1), or is a proxy answering instead?",
            request=response.request,
            response=response,
            body=snippet,
        )
    data = decode_json(content, response)
    if isinstance(data, Mapping) and "error" in data:
        message, code = error_payload_message(data["error"])
        return StreamEventError(
            f"The server answered the stream with an error: {message}",
            error=data["error"],
            code=code,
            request=response.request,
        )
    return APIResponseValidationError(
        "Asked for a stream (stream=True) but the server answered with one JSON document; "
        "the server may not support streaming.",
        request=response.request,
        response=response,
        body=data,
    )


def status_error(response: httpx.Response, spec: RequestSpec, retried: int) -> APIStatusError:
    """The typed error for a non-2xx reply, with the catalog's hint for retired models."""
    error = make_status_error(response, endpoint=spec.endpoint, model=spec.model, retried=retried)
    if isinstance(error, NotFoundError) and spec.model:
        from ._catalog._lookup import get_model_info

        info = get_model_info(spec.model)
        if info is not None and info.lifecycle.stage == "retired":
            hint = f" {info.name} was retired"
            if info.lifecycle.retired_on is not None:
                hint += f" on {info.lifecycle.retired_on.isoformat()}"
            if info.lifecycle.replacement:
                replacement = get_model_info(info.lifecycle.replacement)
                ctor = f" (client.{replacement.constructor}())" if replacement else ""
                hint += f"; use {info.lifecycle.replacement!r}{ctor} instead"
            error.message += hint + "."
            error.args = (error.message,)
    return error


def finish_chat(data: object, response: httpx.Response, trace: Operation | None = None) -> ChatCompletion:
    """The typed completion for a decoded reply (ending the call's span, if traced)."""
    result = _parse.parse_model(_completion.ChatCompletion, data, response)  # `parse_completion`, or the SDK's error
    _base.set_response(result, response)
    if trace is not None:
        trace.finish(data, response)
    return result


def finish_models(data: object, response: httpx.Response) -> ModelList:
    """The typed model list for a decoded reply."""
    from ._types._base import set_response
    from ._types._model_list import parse_model_list

    result = parse_model_list(data, response)
    set_response(result, response)
    return result


def finish_embeddings(data: object, response: httpx.Response, trace: Operation | None = None) -> EmbeddingResponse:
    """The typed embeddings for a decoded reply (base64 vectors decoded; the call's span
    ended, if traced)."""
    from ._types._embeddings import parse_embeddings

    result = parse_embeddings(data, response)
    if trace is not None:
        trace.finish(data, response)
    return result


def finish_operation(operation_id: str, data: object, response: httpx.Response) -> object:
    """The reply of `call()`: the generated model of the operation's 200 reply, else the JSON."""
    from ._spec._params import OPERATIONS
    from ._types._parse import parse_model

    name = OPERATIONS[operation_id].response_model
    if name is None:
        return data
    import wandb_inference_generated.models as models

    return parse_model(getattr(models, name), data, response)
