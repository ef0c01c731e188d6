"""Tracing: the spans and metrics every call produces once the application set providers.

OpenTelemetry's SDK with an in-memory span exporter and metric reader stands in for the
application's setup; calls go to the local server (real sockets, real SSE) or to a
`MockTransport`. The global providers are set for this module only and removed after it,
so the rest of the suite runs untraced.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _helpers import chunk, completion_body, sse
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once

import wandb_inference
from wandb_inference.server import Fault, LocalServer

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
KEY = "sk-tracing-secret-key-1234567890"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def one(self) -> ReadableSpan:
        spans = self.finished()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self, name: str) -> list[HistogramDataPoint]:
        data = self.reader.get_metrics_data()
        out: list[HistogramDataPoint] = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        out.extend(p for p in metric.data.data_points if isinstance(p, HistogramDataPoint))
        return out


def _reset_globals() -> None:
    # The API sets its providers once per process; OpenTelemetry's own test utilities
    # reset them the same way.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    from opentelemetry.metrics import _internal

    _internal._METER_PROVIDER_SET_ONCE = Once()
    _internal._METER_PROVIDER = None


@pytest.fixture(scope="module")
def otel_globals() -> Iterator[Otel]:
    otel = Otel()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otel.spans))
    _reset_globals()
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[otel.reader]))
    yield otel
    provider.shutdown()
    _reset_globals()


@pytest.fixture
def otel(otel_globals: Otel) -> Otel:
    otel_globals.spans.clear()
    return otel_globals


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as running:
        yield running


def _client(server: LocalServer, **options: Any) -> wandb_inference.Client:
    return wandb_inference.Client(
        api_key=KEY, base_url=server.base_url, project="team/proj", sleep=lambda s: None, **options
    )


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _no_key_anywhere(spans: list[ReadableSpan]) -> None:
    for span in spans:
        blob = json.dumps(
            [_attrs(span), [(e.name, dict(e.attributes or {})) for e in span.events], dict(span.resource.attributes)],
            default=str,
        )
        assert KEY not in blob


# ---------------------------------------------------------------------- chat


def test_chat_span_has_the_conventions_attributes(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client:
        reply = client.chat.create(
            model=MODEL, messages=MESSAGES, max_tokens=30, temperature=0.3, top_p=0.9, seed=7, stop="END"
        )
    span = otel.one()
    attrs = _attrs(span)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "wandb.inference"
    assert attrs["gen_ai.request.model"] == MODEL
    assert attrs["server.address"] == host
    assert attrs["server.port"] == int(port)
    assert attrs["gen_ai.request.max_tokens"] == 30
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.seed"] == 7
    assert attrs["gen_ai.request.stop_sequences"] == ("END",)
    assert "gen_ai.request.stream" not in attrs
    assert attrs["gen_ai.response.id"] == reply.id
    assert attrs["gen_ai.response.model"] == reply.model
    assert attrs["gen_ai.response.finish_reasons"] == (reply.choices[0].finish_reason,)
    usage: Any = reply.usage
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert attrs["wandb_inference.project"] == "team/proj"
    assert attrs["wandb_inference.request_id"] == reply.request_id
    assert attrs["openinference.span.kind"] == "LLM"
    # Content is opt-in: nothing of the messages without it.
    assert not {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions"} & set(attrs)
    assert [e.name for e in span.events] == ["wandb_inference.attempt"]
    assert dict(span.events[0].attributes or {})["http.response.status_code"] == 200
    _no_key_anywhere([span])


def test_the_sampling_attributes_are_there_when_the_span_starts(otel: Otel, server: LocalServer) -> None:
    seen: list[dict[str, Any]] = []

    class Recorder(SimpleSpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            seen.append(dict(span.attributes))

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(Recorder(InMemorySpanExporter()))
    with _client(server) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
    first = seen[-1]
    for key in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "server.address"):
        assert key in first


def test_content_capture_on_records_messages_as_json(otel: Otel, server: LocalServer) -> None:
    image = "data:image/png;base64," + "A" * 4000
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        },
    ]
    with _client(server, capture_message_content=True, check_capabilities=False) as client:
        reply = client.chat.create(model=MODEL, messages=messages)
    attrs = _attrs(otel.one())
    assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "Be brief."}]
    inputs = json.loads(attrs["gen_ai.input.messages"])
    assert inputs[0]["role"] == "user"
    parts = inputs[0]["parts"]
    assert parts[0] == {"type": "text", "content": "What is this?"}
    assert parts[1]["type"] == "image" and parts[1]["mime_type"] == "image/png"
    assert parts[2] == {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"}
    assert "AAAA" not in attrs["gen_ai.input.messages"]  # images are never inlined
    outputs = json.loads(attrs["gen_ai.output.messages"])
    assert outputs == [
        {"role": "assistant", "parts": [{"type": "text", "content": reply.text}], "finish_reason": "stop"}
    ]


def test_content_capture_follows_the_environment_variable(
    otel: Otel, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    with _client(server) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
    assert "gen_ai.input.messages" in _attrs(otel.one())
    otel.spans.clear()
    # The client's option wins over the variable.
    with _client(server, capture_message_content=False) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
    assert "gen_ai.input.messages" not in _attrs(otel.one())


def test_tracing_false_turns_spans_off(otel: Otel, server: LocalServer) -> None:
    with _client(server, tracing=False) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
        client.with_options(timeout=30).chat.create(model=MODEL, messages=MESSAGES)
    assert otel.finished() == []


def test_tool_calls_and_tool_results_are_recorded_as_parts(otel: Otel) -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
    body = completion_body("")
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    client = wandb_inference.Client(
        api_key=KEY, http_client=httpx.Client(transport=transport), capture_message_content=True
    )
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy"},
    ]
    client.chat.create(model=MODEL, messages=messages)
    attrs = _attrs(otel.one())
    inputs = json.loads(attrs["gen_ai.input.messages"])
    assert inputs[1]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}}
    ]
    assert inputs[2] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy"}]}
    outputs = json.loads(attrs["gen_ai.output.messages"])
    assert outputs[0]["finish_reason"] == "tool_calls"
    assert outputs[0]["parts"][0]["name"] == "weather"


# ---------------------------------------------------------------------- retries and errors


def test_retries_are_events_on_one_span(otel: Otel, server: LocalServer) -> None:
    server.faults.push(Fault.status(429, kind="concurrency", retry_after=0), times=2)
    with _client(server) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
    span = otel.one()  # one operation span covers every attempt
    events = [dict(e.attributes or {}) for e in span.events]
    assert [e["wandb_inference.attempt"] for e in events] == [1, 2, 3]
    assert [e["http.response.status_code"] for e in events] == [429, 429, 200]
    assert events[0]["wandb_inference.rate_limit.kind"] == "concurrency"
    assert events[0]["error.type"] == "RateLimitError"
    assert events[0]["wandb_inference.retry"] is True
    assert events[0]["wandb_inference.retry.wait"] == 0.0
    assert events[1]["http.request.resend_count"] == 1
    assert "wandb_inference.rate_limit.kind" not in events[2]
    assert _attrs(span)["wandb_inference.attempts"] == 3
    assert span.status.status_code is StatusCode.UNSET


def test_a_failed_call_sets_error_type_and_status(otel: Otel, server: LocalServer) -> None:
    server.faults.push(Fault.status(429, kind="quota"))
    with _client(server) as client, pytest.raises(wandb_inference.QuotaExceededError) as info:
        client.chat.create(model=MODEL, messages=MESSAGES)
    span = otel.one()
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["error.type"] == "QuotaExceededError"
    assert _attrs(span)["wandb_inference.request_id"] == info.value.request_id
    event = dict(span.events[0].attributes or {})
    assert event["wandb_inference.rate_limit.kind"] == "quota"
    assert event["wandb_inference.retry"] is False
    _no_key_anywhere([span])


def test_connection_failures_are_attempts_too(otel: Otel) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = wandb_inference.Client(
        api_key=KEY,
        http_client=httpx.Client(transport=httpx.MockTransport(refuse)),
        max_retries=1,
        sleep=lambda s: None,
    )
    with pytest.raises(wandb_inference.APIConnectionError):
        client.chat.create(model=MODEL, messages=MESSAGES)
    span = otel.one()
    assert _attrs(span)["error.type"] == "APIConnectionError"
    assert [dict(e.attributes or {})["error.type"] for e in span.events] == ["ConnectError", "ConnectError"]


def test_invalid_arguments_send_nothing_and_start_no_span(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client, pytest.raises(wandb_inference.InvalidRequestError):
        client.chat.create(model=MODEL, messages="not a list")
    assert otel.finished() == []


# ---------------------------------------------------------------------- streams


def test_stream_span_ends_at_done_with_usage_and_time_to_first_chunk(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True})
        for _ in stream:
            assert otel.finished() == []  # open while chunks flow
        text = stream.text_so_far
        stream.close()  # after [DONE]: still one end
    span = otel.one()
    attrs = _attrs(span)
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["wandb_inference.stream.end"] == "done"
    assert attrs["wandb_inference.stream.text_length"] == len(text)
    assert attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    ttfc = attrs["gen_ai.response.time_to_first_chunk"]
    duration = (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    assert 0 < ttfc <= duration
    assert span.status.status_code is StatusCode.UNSET


def test_stream_cut_mid_way_ends_with_the_error_and_what_was_received(otel: Otel, server: LocalServer) -> None:
    server.faults.push(Fault.cut_stream(after=3))
    with _client(server) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        with pytest.raises(wandb_inference.StreamInterruptedError) as info:
            for _ in stream:
                pass
    span = otel.one()
    attrs = _attrs(span)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "StreamInterruptedError"
    assert attrs["wandb_inference.stream.end"] == "error"
    assert attrs["wandb_inference.stream.chunks"] == info.value.chunks_received
    assert attrs["wandb_inference.stream.text_length"] == len(info.value.text)
    assert attrs["gen_ai.response.finish_reasons"] == ("error",)


def test_stream_error_event_ends_the_span_once(otel: Otel, server: LocalServer) -> None:
    server.faults.push(Fault.stream_error(after=2, event=True, message="backend died"))
    with _client(server) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        with pytest.raises(wandb_inference.StreamEventError):
            stream.until_done()
        with pytest.raises(wandb_inference.StreamInterruptedError):
            next(stream)  # reading again after the failure: no second end
        stream.close()
    span = otel.one()
    assert _attrs(span)["error.type"] == "StreamEventError"


def test_break_without_close_ends_the_span_at_once(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        for _ in stream:
            break
        span = otel.one()  # ended by the break, not later
        stream.close()
    assert otel.one() is not None
    attrs = _attrs(span)
    assert attrs["wandb_inference.stream.end"] == "left"
    assert attrs["gen_ai.response.finish_reasons"] == ("error",)
    assert span.status.status_code is StatusCode.UNSET


def test_explicit_close_before_done(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client, client.chat.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
        next(stream)
    assert _attrs(otel.one())["wandb_inference.stream.end"] == "closed"


def test_garbage_collected_stream_is_ended_as_abandoned(otel: Otel, server: LocalServer) -> None:
    with _client(server) as client:
        stream = client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        next(stream)
        del stream
        gc.collect()
        span = otel.one()
    assert span.status.status_code is StatusCode.ERROR
    assert _attrs(span)["wandb_inference.stream.end"] == "abandoned"
    assert _attrs(span)["error.type"] == "_OTHER"


async def test_async_stream_break_cancel_and_gc(otel: Otel, server: LocalServer) -> None:
    client = wandb_inference.AsyncClient(api_key=KEY, base_url=server.base_url)
    async with client:
        # break out of `async for` without closing: ended at once
        stream = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        assert _attrs(otel.one())["wandb_inference.stream.end"] == "left"
        otel.spans.clear()

        # the task reading the stream is cancelled
        server.faults.push(Fault.stall_stream(after=1, seconds=5))
        stalled = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)

        async def read() -> None:
            async for _ in stalled:
                pass

        task = asyncio.ensure_future(read())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        span = otel.one()
        assert _attrs(span)["wandb_inference.stream.end"] == "cancelled"
        assert _attrs(span)["error.type"] == "CancelledError"
        assert span.status.status_code is StatusCode.ERROR
        otel.spans.clear()

        # dropped after one chunk, never closed: garbage collection ends it
        stream = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        await stream.__anext__()
        del stream
        gc.collect()
        assert _attrs(otel.one())["wandb_inference.stream.end"] == "abandoned"
        await asyncio.sleep(0.05)  # the response's close, scheduled on the loop


async def test_async_chat_and_embeddings(otel: Otel, server: LocalServer) -> None:
    async with wandb_inference.AsyncClient(api_key=KEY, base_url=server.base_url) as client:
        await client.chat.create(model=MODEL, messages=MESSAGES)
        result = await client.embeddings.create(model="BAAI/bge-m3", input=["one", "two"])
    chat, embed = otel.finished()
    assert chat.name == f"chat {MODEL}"
    attrs = _attrs(embed)
    assert embed.name == "embeddings BAAI/bge-m3"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.encoding_formats"] == ("base64",)
    assert attrs["gen_ai.embeddings.dimension.count"] == len(result.data[0].embedding)
    usage: Any = result.usage
    assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attrs["openinference.span.kind"] == "EMBEDDING"


def test_a_stream_that_never_streamed_fails_its_span(otel: Otel) -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"error": {"message": "nope"}})

    client = wandb_inference.Client(api_key=KEY, http_client=httpx.Client(transport=httpx.MockTransport(reply)))
    with pytest.raises(wandb_inference.StreamEventError):
        client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
    assert _attrs(otel.one())["error.type"] == "StreamEventError"


def test_usage_only_final_chunk_and_reasoning_tokens(otel: Otel) -> None:
    usage = {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 5},
    }
    body = sse(chunk("Hi"), {**chunk(finish_reason="stop")}, {**chunk(), "choices": [], "usage": usage})
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    client = wandb_inference.Client(api_key=KEY, http_client=httpx.Client(transport=transport))
    client.chat.create(model=MODEL, messages=MESSAGES, stream=True).until_done()
    attrs = _attrs(otel.one())
    assert attrs["gen_ai.usage.input_tokens"] == 11
    assert attrs["gen_ai.usage.output_tokens"] == 7
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 4
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 5


# ---------------------------------------------------------------------- metrics


def test_metrics_have_the_conventions_names_and_buckets(otel: Otel, server: LocalServer) -> None:
    model = "Qwen/Qwen3-235B-A22B-Instruct-2507"  # only this test uses it: its points are its own
    with _client(server) as client:
        client.chat.create(model=model, messages=MESSAGES)
        client.chat.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ).until_done()
        stream = client.chat.create(model=model, messages=MESSAGES, stream=True)
        while next(stream, None) is not None:  # one `next()` per chunk: still one first chunk
            pass

    def mine(name: str) -> list[HistogramDataPoint]:
        return [p for p in otel.points(name) if dict(p.attributes or {}).get("gen_ai.request.model") == model]

    duration = mine("gen_ai.client.operation.duration")
    assert sum(p.count for p in duration) == 3
    assert list(duration[0].explicit_bounds) == [
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    ]
    point = dict(duration[0].attributes or {})
    assert point["gen_ai.operation.name"] == "chat"
    assert point["gen_ai.provider.name"] == "wandb.inference"
    assert isinstance(point["server.port"], int) and point["server.port"] > 0
    tokens = mine("gen_ai.client.token.usage")
    assert {dict(p.attributes or {})["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    assert list(tokens[0].explicit_bounds) == [4**i for i in range(14)]
    assert sum(p.count for p in tokens) == 4  # the third call asked for no usage
    ttfc = mine("gen_ai.client.operation.time_to_first_chunk")
    assert sum(p.count for p in ttfc) == 2  # streams only, once each
    assert list(ttfc[0].explicit_bounds) == list(duration[0].explicit_bounds)


def test_a_failed_call_is_in_the_duration_metric_with_its_error_type(otel: Otel, server: LocalServer) -> None:
    model = "deepseek-ai/DeepSeek-V3.1"
    server.faults.push(Fault.status(503), times=None, model=model)
    try:
        with _client(server, max_retries=0) as client, pytest.raises(wandb_inference.ServiceUnavailableError):
            client.chat.create(model=model, messages=MESSAGES)
    finally:
        server.faults.clear()
    errors = [
        dict(p.attributes or {}).get("error.type")
        for p in otel.points("gen_ai.client.operation.duration")
        if dict(p.attributes or {}).get("gen_ai.request.model") == model
    ]
    assert errors == ["ServiceUnavailableError"]


# ---------------------------------------------------------------------- robustness


def test_a_broken_exporter_never_breaks_a_call(otel: Otel, server: LocalServer) -> None:
    class Exploding(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("exporter bug")

    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(Exploding(InMemorySpanExporter()))
    try:
        with _client(server) as client:
            assert client.chat.create(model=MODEL, messages=MESSAGES).text
    finally:
        provider._active_span_processor._span_processors = provider._active_span_processor._span_processors[:-1]


def test_spans_nest_under_the_callers_span(otel: Otel, server: LocalServer) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("handler"), _client(server) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
        assert trace.get_current_span().name == "handler"  # type: ignore[attr-defined]
    chat, handler = otel.finished()
    assert chat.parent is not None and chat.parent.span_id == handler.context.span_id


def test_bad_tracing_options_are_configuration_errors() -> None:
    with pytest.raises(wandb_inference.ConfigurationError, match="tracing must be a bool"):
        wandb_inference.Client(api_key=KEY, tracing="yes")  # type: ignore[arg-type]
    with pytest.raises(wandb_inference.ConfigurationError, match="capture_message_content"):
        wandb_inference.AsyncClient(api_key=KEY, capture_message_content=1)  # type: ignore[arg-type]
