"""One traced call: its span, its attempts, its end (exactly once), and its metrics.

`start_operation` opens a CLIENT span named `{operation} {model}` with the attributes
known up front, and makes it current while the client sends (so an httpx
instrumentation's spans nest under it). Each HTTP attempt adds an event. The call ends it
with `finish` (the reply) or `fail` (the error); a stream instead takes it over
(`streaming`), marks its first chunk, and ends it with `end_stream` however the stream
ends. `_end` runs once; the later calls are no-ops.

Stream ends (`wandb_inference.stream.end`), and the span's status:

| end | how | status, `error.type` |
|---|---|---|
| `done` | `data: [DONE]` arrived | unset |
| `error` | a `StreamError` (cut, error event, bad data) or another exception while reading | ERROR, the class |
| `cancelled` | the task was cancelled (or interrupted) while reading | ERROR, the class |
| `closed` | `close()` / `aclose()` / the end of `with` before `[DONE]` | unset |
| `left` | a loop over the stream left early (`break`, `return`, an exception in its body) | unset |
| `abandoned` | the stream was garbage-collected unclosed, never left nor closed | ERROR, `_OTHER` |

Whatever the end, the usage received so far, the finish reasons (`error` for a choice
that had none yet), the chunk count and the text length are recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wandb_inference._version import __version__

from . import _attributes as attributes
from ._metrics import instruments
from ._providers import tracer_provider_set

if TYPE_CHECKING:
    import httpx
    from opentelemetry.trace import Span, Tracer

    from wandb_inference._options import ClientOptions

    from ._providers import SpecLike

__all__ = ["Operation", "start_operation"]

logger = logging.getLogger("wandb_inference.tracing")
_SCOPE = "wandb_inference"
_ATTEMPT_EVENT = "wandb_inference.attempt"
_tracer_cache: list[Any] = [None, None]  # [provider, tracer]
_servers: dict[str, tuple[str, int]] = {}
_DEFAULT_PORTS = {"https": 443, "http": 80}
# The attributes metrics carry (low cardinality), when the span has them.
_METRIC_KEYS = (
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
)


def _tracer() -> Tracer | None:
    if not tracer_provider_set():
        return None
    provider = trace.get_tracer_provider()
    if _tracer_cache[0] is not provider:
        _tracer_cache[1] = provider.get_tracer(_SCOPE, __version__)
        _tracer_cache[0] = provider
    tracer: Tracer = _tracer_cache[1]
    return tracer


def _server(url: httpx.URL) -> tuple[str, int]:
    key = str(url.scheme) + "://" + str(url.netloc)
    found = _servers.get(key)
    if found is None:
        if len(_servers) > 256:
            _servers.clear()
        found = _servers[key] = (url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 443))
    return found


def start_operation(
    options: ClientOptions, spec: SpecLike, inputs: object, params: Mapping[str, Any]
) -> Operation | None:
    """Start tracing a call, or None if OpenTelemetry fails (the call goes on untraced)."""
    try:
        return Operation(options, spec, inputs, params)
    except Exception:  # tracing must never break a call
        logger.warning("wandb_inference: could not start a span; this call is not traced", exc_info=True)
        return None


class Operation:
    """A traced call (see the module docstring)."""

    __slots__ = (
        "_capture",
        "_ended",
        "_endpoint",
        "_expected",
        "_first_chunk",
        "_metric_attrs",
        "_span",
        "_start",
        "_start_ns",
        "_token",
    )

    def __init__(self, options: ClientOptions, spec: SpecLike, inputs: object, params: Mapping[str, Any]) -> None:
        # One clock for the span's times, the duration metric and the time to first chunk:
        # the span's end is its start plus the monotonic duration, so they always agree.
        self._start = time.perf_counter()
        self._start_ns = time.time_ns()
        self._ended = False
        self._first_chunk: float | None = None
        self._endpoint = endpoint = spec.endpoint
        host, port = _server(spec.request.url)
        attrs = attributes.request_attributes(endpoint, spec.model, spec.stream, params, host, port, options.project)
        self._metric_attrs = {k: attrs[k] for k in _METRIC_KEYS if k in attrs}
        n = attrs.get("gen_ai.request.choice.count", 1)
        self._expected: int = n
        self._capture = attributes.capture_enabled(options.capture_message_content)
        self._token: object | None = None
        tracer = _tracer()
        if tracer is None:  # a meter provider only: metrics without a span
            self._span: Span = trace.INVALID_SPAN
            return
        if self._capture:
            if endpoint == "embeddings":
                attrs.update(attributes.embeddings_input_attributes(inputs))
            else:
                attrs.update(attributes.content_attributes(inputs))
        name = f"{attrs['gen_ai.operation.name']} {spec.model}" if spec.model else str(attrs["gen_ai.operation.name"])
        self._span = span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=self._start_ns)
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def _detach(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            otel_context.detach(token)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ the call's life

    def attempt(self, attempt: int, outcome: str, decision: Any, error: BaseException | None) -> None:
        """Record one HTTP attempt (an event on the span)."""
        try:
            span = self._span
            if span.is_recording():
                span.add_event(_ATTEMPT_EVENT, attributes.attempt_attributes(attempt, outcome, decision, error))
                span.set_attribute("wandb_inference.attempts", attempt)
        except Exception:
            logger.debug("wandb_inference: tracing an attempt failed", exc_info=True)

    def finish(self, data: object, response: httpx.Response) -> None:
        """The call returned `data` (the decoded reply): end the span."""
        if self._ended:
            return
        try:
            attrs = attributes.result_attributes(self._endpoint, data)
            _request_id(attrs, response)
            if self._capture and self._endpoint == "chat":
                attrs.update(attributes.output_messages(data))
            self._end(attrs)
        except Exception:
            logger.debug("wandb_inference: ending a span failed", exc_info=True)

    def fail(self, error: BaseException) -> None:
        """The call raised `error`: end the span with it."""
        if self._ended:
            return
        try:
            attrs: dict[str, Any] = {"error.type": attributes.error_type(error)}
            request_id = getattr(error, "request_id", None)
            if isinstance(request_id, str) and request_id:
                attrs["wandb_inference.request_id"] = request_id
            self._end(attrs, str(error) or type(error).__name__)
        except Exception:
            logger.debug("wandb_inference: ending a span failed", exc_info=True)

    # ------------------------------------------------------------------ streams

    def streaming(self, response: httpx.Response) -> None:
        """A stream takes the span over: the caller's context no longer holds it."""
        self._detach()
        try:
            attrs: dict[str, Any] = {}
            _request_id(attrs, response)
            if attrs and self._span.is_recording():
                self._span.set_attributes(attrs)
        except Exception:
            logger.debug("wandb_inference: tracing a stream failed", exc_info=True)

    def first_chunk(self) -> None:
        """The stream delivered its first chunk: record the time to it (once)."""
        if self._first_chunk is not None:
            return
        self._first_chunk = elapsed = time.perf_counter() - self._start
        try:
            if self._span.is_recording():
                self._span.set_attribute("gen_ai.response.time_to_first_chunk", elapsed)
            meters = instruments()
            if meters is not None:
                meters.time_to_first_chunk.record(elapsed, self._metric_attrs)
        except Exception:
            logger.debug("wandb_inference: tracing the first chunk failed", exc_info=True)

    def end_stream(self, processor: Any, how: str, error: BaseException | None) -> None:
        """The stream ended (see the table in the module docstring)."""
        if self._ended:
            return
        try:
            done = processor.finished()
            end = "done" if done else _end_of(how, error)
            acc = processor.accumulator
            data = acc.to_dict()
            attrs = attributes.result_attributes("chat", data, complete=done, expected=self._expected)
            attrs.update(attributes.stream_attributes(acc, end))
            if self._capture:
                attrs.update(attributes.output_messages(data, complete=done))
            description: str | None = None
            if end in ("error", "cancelled") and error is not None:
                attrs["error.type"] = attributes.error_type(error)
                description = str(error) or type(error).__name__
            elif end == "abandoned":
                attrs["error.type"] = "_OTHER"
                description = "abandoned stream: garbage-collected before it was read to the end or closed"
            self._end(attrs, description)
        except Exception:
            logger.debug("wandb_inference: ending a stream's span failed", exc_info=True)

    # ------------------------------------------------------------------ the end

    def _end(self, attrs: dict[str, Any], error: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._detach()
        duration = time.perf_counter() - self._start
        span = self._span
        if span.is_recording():
            span.set_attributes(attrs)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error[:1000]))
            span.end(end_time=self._start_ns + int(duration * 1e9))
        meters = instruments()
        if meters is None:
            return
        metric_attrs = self._metric_attrs
        for key in ("gen_ai.response.model", "error.type"):
            if key in attrs:
                metric_attrs = {**metric_attrs, key: attrs[key]}
        meters.duration.record(duration, metric_attrs)
        for key, token_type in (("gen_ai.usage.input_tokens", "input"), ("gen_ai.usage.output_tokens", "output")):
            if key in attrs:
                meters.tokens.record(attrs[key], {**metric_attrs, "gen_ai.token.type": token_type})


def _end_of(how: str, error: BaseException | None) -> str:
    if error is None:
        return how
    if isinstance(error, GeneratorExit):
        return "left"
    if isinstance(error, Exception):
        return "error"
    return "cancelled"  # CancelledError, trio.Cancelled, KeyboardInterrupt


def _request_id(attrs: dict[str, Any], response: httpx.Response) -> None:
    from wandb_inference._headers import request_id_of

    request_id = request_id_of(response.headers)
    if request_id:
        attrs["wandb_inference.request_id"] = request_id
