"""What the async and sync clients share: options, request building, response decoding.

Everything here is pure or CPU-only; the clients add just their thin I/O loops.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ._config import (
    DEFAULT_TIMEOUT,
    Secret,
    resolve_api_key,
    resolve_base_url,
    resolve_project,
    validate_header_value,
)
from ._exceptions import (
    APIResponseValidationError,
    APIStatusError,
    CapabilityError,
    ConfigurationError,
    Endpoint,
    InvalidRequestError,
    NotFoundError,
    StreamEventError,
    error_payload_message,
    make_status_error,
    redact_request,
)
from ._request import (
    TimeoutTypes,
    build_chat_body,
    build_embeddings_body,
    build_options,
    check_timeout,
)
from ._retry import RetryDecision, RetryPolicy
from ._version import __version__

if TYPE_CHECKING:
    from ._catalog import ModelInfo
    from ._types import ChatCompletion, EmbeddingResponse, ModelList

__all__ = ["ClientOptions", "RequestSpec", "logger", "resolve_options", "status_error"]

logger = logging.getLogger("wandb_inference")

T = TypeVar("T")

# Bodies a hostile or broken server could make huge are read up to these sizes.
DEFAULT_MAX_EVENT_SIZE = 16 << 20  # 16 MiB: one SSE line or event (see _sse.py)
MAX_ERROR_BODY = 1 << 20  # 1 MiB: error pages
MAX_RESPONSE_BODY = 100 << 20  # 100 MiB: a JSON reply (embeddings of long batches are big)
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30)


def user_agent() -> str:
    """`wandb-inference/<version> (Python <version>; httpx <version>)`."""
    python = platform.python_version()
    return f"wandb-inference/{__version__} (Python {python}; httpx {httpx.__version__})"


_USER_AGENT = user_agent()


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False, slots=True)
class ClientOptions:
    """A client's resolved, validated options (the key wrapped so it never shows)."""

    api_key: Secret
    base_url: str
    project: str | None
    timeout: httpx.Timeout
    retry: RetryPolicy
    default_headers: Mapping[str, str]
    check_capabilities: bool
    max_concurrency: int | None
    adaptive_concurrency: bool
    max_event_size: int

    def __repr__(self) -> str:
        return (
            f"ClientOptions(base_url={self.base_url!r}, project={self.project!r}, "
            f"timeout={self.timeout!r}, retry={self.retry!r}, api_key=Secret('***'))"
        )

    def headers(self) -> dict[str, str]:
        """The headers every request carries."""
        headers = {
            "Authorization": f"Bearer {self.api_key.get()}",
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
        }
        if self.project is not None:
            headers["OpenAI-Project"] = self.project
        headers.update(self.default_headers)
        return headers


def _timeout(value: object) -> httpx.Timeout:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        checked = check_timeout(value)
    except InvalidRequestError as exc:
        raise ConfigurationError(str(exc)) from exc
    return checked if isinstance(checked, httpx.Timeout) else httpx.Timeout(checked)


def resolve_options(
    *,
    api_key: str | None,
    project: str | None,
    base_url: str | httpx.URL | None,
    timeout: float | httpx.Timeout | None,
    max_retries: int | None,
    retry_policy: RetryPolicy | None,
    default_headers: Mapping[str, str] | None,
    check_capabilities: bool,
    max_concurrency: int | None,
    adaptive_concurrency: bool,
    max_event_size: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientOptions:
    """Resolve and validate a client's options.

    Raises:
        ConfigurationError: any option that is missing or invalid.
    """
    policy = retry_policy if retry_policy is not None else RetryPolicy()
    if not isinstance(policy, RetryPolicy):
        raise ConfigurationError("retry_policy must be a wandb_inference.RetryPolicy")
    if max_retries is not None:
        try:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    headers: dict[str, str] = {}
    if default_headers is not None:
        if not isinstance(default_headers, Mapping):
            raise ConfigurationError("default_headers must be a dict of str -> str")
        try:
            for name, value in default_headers.items():
                headers[name] = validate_header_value(name, value)
        except InvalidRequestError as exc:
            raise ConfigurationError(str(exc)) from exc
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1
    ):
        raise ConfigurationError(f"max_concurrency must be None or an int >= 1, got {max_concurrency!r}")
    event_size = DEFAULT_MAX_EVENT_SIZE if max_event_size is None else max_event_size
    if isinstance(event_size, bool) or not isinstance(event_size, int) or event_size < 1024:
        raise ConfigurationError(f"max_event_size must be an int >= 1024 (bytes), got {max_event_size!r}")
    return ClientOptions(
        api_key=resolve_api_key(api_key, environ),
        base_url=resolve_base_url(base_url, environ),
        project=resolve_project(project, environ),
        timeout=_timeout(timeout),
        retry=policy,
        default_headers=headers,
        check_capabilities=bool(check_capabilities),
        max_concurrency=max_concurrency,
        adaptive_concurrency=bool(adaptive_concurrency),
        max_event_size=event_size,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RequestSpec:
    """One logical request, ready to send (and re-send on retry)."""

    request: httpx.Request
    endpoint: Endpoint
    model: str | None
    stream: bool


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
        options.base_url + path,
        headers=headers,
        params=query or None,
        content=content,
        timeout=request_timeout,
    )
    return RequestSpec(request=request, endpoint=endpoint, model=model, stream=stream)


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
    """Replace the response's request by a copy without credentials (kept on results)."""
    response.request = redact_request(response.request)  # type: ignore[assignment]


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


def stream_reply_not_sse(content: bytes, response: httpx.Response) -> Exception:
    """The error for a `stream=True` call answered with JSON instead of events."""
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
    from ._fastparse import parse_completion
    from ._types import ChatCompletion, parse_model, set_response

    result: ChatCompletion
    try:
        result = parse_completion(data)  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError, AttributeError):
        result = parse_model(ChatCompletion, data, response)  # raises the SDK's error
    set_response(result, response)
    return result


def finish_models(data: object, response: httpx.Response) -> ModelList:
    """The typed model list for a decoded reply."""
    from ._types import parse_model_list, set_response

    result = parse_model_list(data, response)
    set_response(result, response)
    return result


def finish_embeddings(data: object, response: httpx.Response) -> EmbeddingResponse:
    """The typed embeddings for a decoded reply (base64 vectors decoded)."""
    from ._embeddings import parse_embeddings

    return parse_embeddings(data, response)


def derive_options(old: ClientOptions, changes: Mapping[str, Any]) -> ClientOptions:
    """Options for `with_options()`: the old ones with `changes` (None = keep) applied."""
    headers = dict(old.default_headers)
    if changes.get("default_headers"):
        headers.update(changes["default_headers"])

    def pick(name: str, current: Any) -> Any:
        value = changes.get(name)
        return current if value is None else value

    return resolve_options(
        api_key=pick("api_key", old.api_key.get()),
        project=pick("project", old.project),
        base_url=pick("base_url", old.base_url),
        timeout=pick("timeout", old.timeout),
        max_retries=changes.get("max_retries"),
        retry_policy=pick("retry_policy", old.retry),
        default_headers=headers,
        check_capabilities=pick("check_capabilities", old.check_capabilities),
        max_concurrency=old.max_concurrency,
        adaptive_concurrency=old.adaptive_concurrency,
        max_event_size=old.max_event_size,
        environ={},
    )


class ClientOptionsMixin:
    """Read-only views of a client's options (both clients)."""

    __slots__ = ()
    _options: ClientOptions

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._options.base_url

    @property
    def project(self) -> str | None:
        """The `team/project` sent as `OpenAI-Project`, or None."""
        return self._options.project

    @property
    def timeout(self) -> httpx.Timeout:
        """The default timeout of each attempt."""
        return self._options.timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy."""
        return self._options.retry

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt."""
        return self._options.retry.max_retries
