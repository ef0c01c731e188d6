"""What a call sends, shared by both clients: validation, capability checks, the request.

`prepare_chat` / `prepare_embeddings` / `prepare_models` check a call's arguments (the
checks themselves are in `_request`), refuse what the catalog says the model cannot do,
and build the `httpx.Request` (headers, body, per-call timeout) wrapped in a
`RequestSpec`, which the send loops re-send on retry. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from ._catalog._constructors import NO_CHAT_KEYS
from ._exceptions import CapabilityError, InvalidRequestError
from ._request import TimeoutTypes, build_chat_body, build_embeddings_body, build_options
from ._tracing._hooks import begin as begin_trace

if TYPE_CHECKING:
    from ._catalog._table import ModelInfo
    from ._options import ClientOptions
    from ._policy._errors_map import Endpoint
    from ._policy._retry import RetryState
    from ._tracing._operation import Operation

__all__ = ["RequestSpec", "build_request", "check_capabilities", "prepare_chat", "prepare_embeddings", "prepare_models"]


class RequestSpec:
    """One logical request, ready to send (and re-send on retry)."""

    __slots__ = ("endpoint", "model", "request", "retry", "stream", "timeouts", "trace")

    def __init__(self, *, request: httpx.Request, endpoint: Endpoint, model: str | None, stream: bool) -> None:
        self.request = request
        self.endpoint = endpoint
        self.model = model
        self.stream = stream
        # Set by the client's send loop: the call's retry state, and the request's own
        # timeouts (each attempt gets them cut to what remains of `total_timeout`).
        self.retry: RetryState | None = None
        self.timeouts: dict[str, float | None] | None = request.extensions.get("timeout")
        # The call's span when it is traced (`_tracing`): ended by the client or its stream.
        self.trace: Operation | None = None

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

    def failed(self, error: BaseException) -> None:
        """The call raised `error`: end its span with it, if it is traced."""
        if self.trace is not None:
            self.trace.fail(error)

    def restore_timeouts(self) -> None:
        """Give a stream's body its own timeouts back (it is not bound by `total_timeout`).

        httpcore reads the read timeout when the body is first iterated, from this dict.
        """
        if self.timeouts is not None:
            self.request.extensions["timeout"] = self.timeouts


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
    url = _url(options.base_url, path)
    if query or http.cookies or http.params or url.is_relative_url:
        # What the client adds (its cookies, query parameters, base URL): its own merge.
        request = http.build_request(
            method, url, headers=headers, params=query or None, content=content, timeout=request_timeout
        )
    else:
        request = _plain_request(method, url, _merged_headers(http.headers, headers), content, request_timeout)
    return RequestSpec(request=request, endpoint=endpoint, model=model, stream=stream)


def _merged_headers(defaults: httpx.Headers, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """The client's headers with `headers` merged in, as `http.build_request` merges them.

    httpx's merge (`Headers.update`) scans the list for each name (~40 us a call); this is
    one pass: the client's headers not named in `headers` (case-insensitively), then
    `headers` in order, encoded as httpx encodes them (ASCII: the SDK checked them).
    """
    ours = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    named = {name.lower() for name, _ in ours}
    merged = [item for item in defaults.raw if item[0].lower() not in named]
    merged += ours
    return merged


def _plain_request(
    method: str, url: httpx.URL, headers: list[tuple[bytes, bytes]], content: bytes | None, timeout: TimeoutTypes
) -> httpx.Request:
    """The request `http.build_request` makes from merged headers, for a client with no
    cookies, query parameters or base URL of its own, built in one pass.

    `httpx.Request(content=...)` adds `Content-Length` (unless given) at the end and `Host`
    (unless given) in front, then copies the headers again (~15 us); the same headers are
    given here at once, with the body as its stream (`tests/test_prepare.py` holds the two
    equal).
    """
    names = {name.lower() for name, _ in headers}
    if content and b"content-length" not in names:
        headers.append((b"Content-Length", str(len(content)).encode("ascii")))
        names.add(b"content-length")
    auto: list[tuple[bytes, bytes]] = []
    if b"host" not in names and url.host:
        auto.append((b"Host", url.netloc))
    if b"content-length" not in names and b"transfer-encoding" not in names and method in ("POST", "PUT", "PATCH"):
        auto.append((b"Content-Length", b"0"))
    request = httpx.Request(
        method,
        url,
        headers=auto + headers if auto else headers,
        stream=httpx.ByteStream(content or b""),
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    request.read()  # what `httpx.Request(content=...)` does: `request.content` is the body
    return request


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
    from ._catalog._lookup import get_model_info

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
    from ._catalog._table import CATALOG

    return [m.id for m in CATALOG if m.capabilities.vision and m.lifecycle.stage != "retired"]


def prepare_chat(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    model: str,
    messages: object,
    stream: bool,
    params: Mapping[str, Any],
) -> RequestSpec:
    """Validate a chat call and build its request (shared by both clients); start its
    span when calls are traced (the client ends it)."""
    body = build_chat_body(model, messages, stream, params)
    check_capabilities(options, "chat", model, body)
    spec = build_request(
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
    begin_trace(options, spec, messages, params)
    return spec


def prepare_embeddings(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    model: str,
    input: object,
    params: Mapping[str, Any],
) -> RequestSpec:
    """Validate an embeddings call and build its request (shared by both clients); start
    its span when calls are traced (the client ends it)."""
    body = build_embeddings_body(model, input, params)
    check_capabilities(options, "embeddings", model, body)
    spec = build_request(
        http,
        options,
        "POST",
        "/embeddings",
        body=body,
        params=params,
        endpoint="embeddings",
        model=model,
    )
    begin_trace(options, spec, input, params)
    return spec


def prepare_models(
    http: httpx.Client | httpx.AsyncClient, options: ClientOptions, params: Mapping[str, Any]
) -> RequestSpec:
    """Build the `GET /models` request."""
    return build_request(http, options, "GET", "/models", body=None, params=params, endpoint="models")


def prepare_operation(
    http: httpx.Client | httpx.AsyncClient,
    options: ClientOptions,
    operation_id: object,
    body: object,
    params: Mapping[str, Any],
) -> RequestSpec:
    """Validate a call of any operation of the API document and build its request.

    The operation comes from the generated table (`_spec/_params.OPERATIONS`), its body is
    checked against the document's request schema, as `create()`'s parameters are.

    Raises:
        InvalidRequestError: an unknown operation, a missing, unexpected or invalid body.
    """
    from ._request import check_body, json_form
    from ._spec._params import OPERATIONS

    op = OPERATIONS.get(operation_id) if isinstance(operation_id, str) else None
    if op is None:
        known = ", ".join(sorted(OPERATIONS))
        raise InvalidRequestError(f"Unknown operation {operation_id!r}: the API document has {known}.")
    sent: dict[str, Any] | None = None
    if op.request_schema is not None:
        if body is None:
            raise InvalidRequestError(f"{op.operation_id} needs a body (a dict matching {op.request_schema}).")
        sent = check_body(op.request_schema, body)
        if sent.get("stream") is True:
            raise InvalidRequestError(
                f"call() does not stream; use the client's own method for streamed {op.operation_id}."
            )
        extra = params.get("extra_body")
        if extra is not None:
            sent.update(json_form(extra, "extra_body"))
    elif body is not None:
        raise InvalidRequestError(f"{op.operation_id} ({op.method} {op.path}) takes no body.")
    model = sent.get("model") if sent is not None else None
    return build_request(
        http,
        options,
        op.method,
        op.path,
        body=sent,
        params=params,
        endpoint="other",
        model=model if isinstance(model, str) else None,
    )
