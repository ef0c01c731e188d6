"""What the async and sync clients share: request building, response decoding.

Everything here is pure or CPU-only; the clients add just their thin I/O loops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._constructors import NO_CHAT_KEYS
from ._errors_map import Endpoint, error_payload_message, make_status_error
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    CapabilityError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    StreamEventError,
    redact_request,
)
from ._request import (
    TimeoutTypes,
    build_chat_body,
    build_embeddings_body,
    build_options,
)

if TYPE_CHECKING:
    from ._catalog import ModelInfo
    from ._completion import ChatCompletion
    from ._concurrency import _Limits
    from ._embeddings import EmbeddingResponse
    from ._exceptions import APIError
    from ._model_list import ModelList
    from ._options import ClientOptions
    from ._retry import RetryDecision, RetryState

__all__ = ["RequestSpec", "build_request", "logger", "prepare_chat", "status_error"]

logger = logging.getLogger("wandb_inference")

T = TypeVar("T")

# Bodies a hostile or broken server could make huge are read up to these sizes.
MAX_ERROR_BODY = 1 << 20  # 1 MiB: error pages
MAX_RESPONSE_BODY = 100 << 20  # 100 MiB: a JSON reply (embeddings of long batches are big)


class RequestSpec:
    """One logical request, ready to send (and re-send on retry)."""

    __slots__ = ("endpoint", "model", "request", "retry", "stream", "timeouts")

    def __init__(self, *, request: httpx.Request, endpoint: Endpoint, model: str | None, stream: bool) -> None:
        self.request = request
        self.endpoint = endpoint
        self.model = model
        self.stream = stream
        # Set by the client's send loop: the call's retry state, and the request's own
        # timeouts (each attempt gets them cut to what remains of `total_timeout`).
        self.retry: RetryState | None = None
        self.timeouts: dict[str, float | None] | None = request.extensions.get("timeout")

    @property
    def idempotent(self) -> bool:
        """Whether sending it twice is harmless (`GET /models`; never a chat or embeddings POST)."""
        return self.request.method == "GET"

    def start_attempt(self, state: RetryState) -> dict[str, float | None] | None:
        """Cut this attempt's timeouts to the time left; return them (None: no total bound).

        Raises:
            APITimeoutError: `total_timeout` has passed.
        """
        capped = state.attempt_timeouts(self.timeouts)
        if capped is not None:
            self.request.extensions["timeout"] = capped
        return capped

    def restore_timeouts(self) -> None:
        """Give a stream's body its own timeouts back (it is not bound by `total_timeout`).

        httpcore reads the read timeout when the body is first iterated, from this dict.
        """
        if self.timeouts is not None:
            self.request.extensions["timeout"] = self.timeouts


def slot_wait(capped: Mapping[str, float | None] | None, spec: RequestSpec) -> float | None:
    """How long an attempt may wait for a concurrency slot: its pool timeout (cut to the
    time left of `total_timeout`)."""
    timeouts = capped if capped is not None else spec.timeouts
    return None if not timeouts else timeouts.get("pool")


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
    from ._errors_map import connection_error_from, redact_transport_error
    from ._exceptions import APIConnectionError
    from ._retry import may_have_been_processed

    request = spec.request
    if isinstance(exc, httpx.TimeoutException) and state.expired(slack=0.05):
        redact_transport_error(exc)
        return state.deadline_error(f"({type(exc).__name__})", request)
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


_URLS: dict[tuple[str, str], httpx.URL] = {}


def _url(base_url: str, path: str) -> httpx.URL:
    """`base_url + path`, parsed once: httpx parses a string URL on every request (~11 us).

    `httpx.URL` is immutable, so one parsed URL serves every request to the endpoint.
    """
    key = (base_url, path)
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= 256:  # many clients with distinct base URLs: stay bounded
            _URLS.clear()
        url = _URLS[key] = httpx.URL(base_url + path)
    return url


def build_request(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    method: str,
    path: str,
    *,
    body: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    endpoint: Endpoint,
    model: str | None = None,
    stream: bool = False,
) -> RequestSpec:
    """Build the `httpx.Request` for a call (headers, query, body, timeout).

    Raises:
        InvalidRequestError: invalid per-call options, or a body that is not JSON-able.
    """
    extra_headers, query, timeout = build_options(params)
    headers = options.headers()
    if stream:
        headers["Accept"] = "text/event-stream"
    headers.update(extra_headers)
    content: bytes | None = None
    if body is not None:
        try:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"The request body is not valid JSON: {exc}") from exc
        headers["Content-Type"] = "application/json"
    request_timeout: TimeoutTypes = options.timeout if timeout is False else timeout
    request = http.build_request(
        method,
        _url(options.base_url, path),
        headers=headers,
        params=query or None,
        content=content,
        timeout=request_timeout,
    )
    return RequestSpec(request=request, endpoint=endpoint, model=model, stream=stream)


def gate_paces_retry(error: APIStatusError, limiter: _Limits | None, model: str | None) -> bool:
    """Whether the retry of `error` skips its backoff: the gate will pace it instead.

    A concurrency 429 without `Retry-After` is retried at once when the adaptive gate
    will hold the retry anyway (the limit was just lowered to what is in flight, or a
    pause began): it waits there for a slot, the pacing the backoff would have given,
    without sleeping past the moment one frees up.
    """
    return (
        limiter is not None
        and error.retry_after is None
        and isinstance(error, RateLimitError)
        and limiter.is_full(model)
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
) -> None:
    """One DEBUG line per attempt: method, URL, outcome, attempt, delay. Never the key."""
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
    from ._redact import forget_transport

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


def _has_image(messages: Sequence[Mapping[str, Any]]) -> bool:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "image_url":
                    return True
    return False


def check_capabilities(options: ClientOptions, endpoint: Endpoint, model: str, body: Mapping[str, Any]) -> None:
    """Refuse, before sending, what the catalog says the model cannot do.

    Unknown models pass (the catalog is not authoritative); `check_capabilities=False`
    on the client skips this.

    Raises:
        CapabilityError: images to a text-only model, chat with an embeddings model,
            embeddings from a chat model.
    """
    if not options.check_capabilities:
        return
    if endpoint == "chat" and model.casefold() not in NO_CHAT_KEYS and not _has_image(body["messages"]):
        return  # what the catalog could refuse needs an image or a model that serves no chat
    from ._catalog import get_model_info

    info: ModelInfo | None = get_model_info(model)
    if info is None:
        return
    caps = info.capabilities
    hint = " Pass check_capabilities=False to the client to send it anyway."
    if endpoint == "chat":
        if not caps.chat:
            raise CapabilityError(
                f"{info.name} ({model}) is an embeddings model: use client.embeddings.create()." + hint
            )
        if not caps.vision and _has_image(body["messages"]):
            vision = ", ".join(_vision_models()[:4])
            raise CapabilityError(f"{info.name} ({model}) does not accept images. Vision models: {vision}." + hint)
    elif endpoint == "embeddings" and not caps.embeddings:
        raise CapabilityError(
            f"{info.name} ({model}) is a chat model and serves no embeddings; use an embeddings "
            "model such as BAAI/bge-m3." + hint
        )


def _vision_models() -> list[str]:
    from ._catalog import CATALOG

    return [m.id for m in CATALOG if m.capabilities.vision and m.lifecycle.stage != "retired"]


def status_error(response: httpx.Response, spec: RequestSpec, retried: int) -> APIStatusError:
    """The typed error for a non-2xx reply, with the catalog's hint for retired models."""
    error = make_status_error(response, endpoint=spec.endpoint, model=spec.model, retried=retried)
    if isinstance(error, NotFoundError) and spec.model:
        from ._catalog import get_model_info

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


def prepare_chat(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    model: str,
    messages: object,
    stream: bool,
    params: Mapping[str, Any],
) -> RequestSpec:
    """Validate a chat call and build its request (shared by both clients)."""
    body = build_chat_body(model, messages, stream, params)
    check_capabilities(options, "chat", model, body)
    return build_request(
        http,
        options,
        "POST",
        "/chat/completions",
        body=body,
        params=params,
        endpoint="chat",
        model=model,
        stream=stream,
    )


def prepare_embeddings(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    model: str,
    input: object,
    params: Mapping[str, Any],
) -> RequestSpec:
    """Validate an embeddings call and build its request (shared by both clients)."""
    body = build_embeddings_body(model, input, params)
    check_capabilities(options, "embeddings", model, body)
    return build_request(
        http,
        options,
        "POST",
        "/embeddings",
        body=body,
        params=params,
        endpoint="embeddings",
        model=model,
    )


def prepare_models(
    http: httpx.Client | httpx.AsyncClient, options: ClientOptions, params: Mapping[str, Any]
) -> RequestSpec:
    """Build the `GET /models` request."""
    return build_request(http, options, "GET", "/models", body=None, params=params, endpoint="models")


def finish_chat(data: object, response: httpx.Response) -> ChatCompletion:
    """The typed completion for a decoded reply."""
    from ._completion import ChatCompletion, parse_completion
    from ._types import parse_model, set_response

    result: ChatCompletion
    try:
        result = parse_completion(data)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        result = parse_model(ChatCompletion, data, response)  # raises the SDK's error
    set_response(result, response)
    return result


def finish_models(data: object, response: httpx.Response) -> ModelList:
    """The typed model list for a decoded reply."""
    from ._model_list import parse_model_list
    from ._types import set_response

    result = parse_model_list(data, response)
    set_response(result, response)
    return result


def finish_embeddings(data: object, response: httpx.Response) -> EmbeddingResponse:
    """The typed embeddings for a decoded reply (base64 vectors decoded)."""
    from ._embeddings import parse_embeddings

    return parse_embeddings(data, response)
