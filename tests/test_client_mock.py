"""Both clients against `httpx.MockTransport`: requests, results, errors, retries."""

from __future__ import annotations

import base64
import json
import logging
import struct
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _helpers import (
    API_KEY,
    MESSAGES,
    MODEL,
    chunk,
    completion_body,
    error_body,
    json_response,
    sse,
)
from conftest import Either, Sleeps

import wandb_inference as wi

MakeClient = Callable[..., Either]


class Recorder:
    """A MockTransport handler replaying scripted responses and recording requests."""

    def __init__(self, *responses: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            return item(request)
        return item

    @property
    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


# --------------------------------------------------------------------------- requests


async def test_chat_sends_documented_request(make_client: MakeClient) -> None:
    rec = Recorder(json_response(200, completion_body()))
    client = make_client(rec, project="team/proj", default_headers={"X-Extra": "1"})
    reply = await client.call(
        "chat.create",
        model=MODEL,
        messages=MESSAGES,
        max_tokens=5,
        temperature=0.2,
        stop=["\n"],
        seed=7,
        reasoning_effort="low",
        chat_template_kwargs={"enable_thinking": False},
        extra_body={"top_k": 3},
        extra_headers={"X-Call": "yes"},
        extra_query={"debug": "1"},
    )
    assert reply.text == "Hello there"
    (request,) = rec.requests
    assert request.url == "https://inference.test/v1/chat/completions?debug=1"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["openai-project"] == "team/proj"
    assert request.headers["x-extra"] == "1"
    assert request.headers["x-call"] == "yes"
    assert request.headers["user-agent"].startswith(f"wandb-inference/{wi.__version__} ")
    assert rec.bodies[0] == {
        "model": MODEL,
        "messages": MESSAGES,
        "max_tokens": 5,
        "temperature": 0.2,
        "stop": ["\n"],
        "seed": 7,
        "reasoning_effort": "low",
        "chat_template_kwargs": {"enable_thinking": False},
        "top_k": 3,
    }


async def test_project_header_absent_when_unset(make_client: MakeClient) -> None:
    rec = Recorder(json_response(200, completion_body()))
    client = make_client(rec)
    await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert "openai-project" not in rec.requests[0].headers


async def test_result_exposes_http_response(make_client: MakeClient) -> None:
    body = completion_body(unknown_top="kept")
    body["choices"][0]["message"]["reasoning"] = "thinking"
    rec = Recorder(json_response(200, body, **{"x-request-id": "req-42"}))
    client = make_client(rec)
    reply = await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert isinstance(reply, wi.ChatCompletion)
    assert reply.http_response is not None and reply.http_response.status_code == 200
    assert reply.request_id == "req-42"
    assert reply.reasoning == "thinking"
    assert reply["unknown_top"] == "kept"
    # The response kept on the result carries no credentials.
    assert API_KEY not in str(reply.http_response.request.headers.raw)


async def test_models_list_is_iterable(make_client: MakeClient) -> None:
    body = {"object": "list", "data": [{"id": MODEL, "object": "model"}, {"id": "new/model"}]}
    client = make_client(Recorder(json_response(200, body)))
    models = await client.call("models.list")
    assert [m.id for m in models] == [MODEL, "new/model"]
    assert models.ids == [MODEL, "new/model"]
    assert len(models) == 2
    assert models.data[0].info is not None and models.data[1].info is None


async def test_empty_model_list_is_returned_not_raised(make_client: MakeClient) -> None:
    client = make_client(Recorder(json_response(200, {"object": "list", "data": []})))
    models = await client.call("models.list")
    assert len(models) == 0 and bool(models)


async def test_embeddings_base64_decoded(make_client: MakeClient) -> None:
    vec = [0.5, -0.25, 1.0]
    b64 = base64.b64encode(struct.pack("<3f", *vec)).decode()
    body = {
        "object": "list",
        "model": "BAAI/bge-m3",
        "data": [{"object": "embedding", "index": 0, "embedding": b64}],
        "usage": {"prompt_tokens": 1, "total_tokens": 1},
    }
    rec = Recorder(json_response(200, body))
    client = make_client(rec)
    result = await client.call("embeddings.create", model="BAAI/bge-m3", input="hello")
    assert rec.bodies[0]["encoding_format"] == "base64"
    assert result.data[0].embedding == vec
    assert result.embeddings == [vec]


async def test_embeddings_float_format_kept(make_client: MakeClient) -> None:
    body = {"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}], "model": "m"}
    rec = Recorder(json_response(200, body))
    client = make_client(rec)
    result = await client.call("embeddings.create", model="m", input=["a", "b"], encoding_format="float")
    assert rec.bodies[0]["encoding_format"] == "float"
    assert result.embeddings == [[1.0, 0.0], [0.0, 1.0]]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"messages": []}, "must not be empty"),
        ({"messages": "hi"}, "list of messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": True}, "n must be an int"),
        ({"stop": ""}, "stop"),
        ({"stop": ["a"] * 5}, "stop"),
        ({"tools": [{"type": "function"}]}, "tools[0]"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"reasoning_effort": "max"}, "reasoning_effort"),
        ({"logit_bias": {"abc": 1}}, "logit_bias"),
        ({"stream_options": {"include_usage": True}}, "only valid with stream=True"),
        ({"bogus_param": 1}, "extra_body"),
        ({"extra_headers": {"X-Evil": "a\r\nInjected: 1"}}, "control character"),
        ({"timeout": -1}, "timeout"),
        ({"model": ""}, "model"),
    ],
)
async def test_invalid_chat_arguments_rejected_before_sending(
    make_client: MakeClient, kwargs: dict[str, Any], needle: str
) -> None:
    rec = Recorder(json_response(200, completion_body()))
    client = make_client(rec)
    call: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, **kwargs}
    with pytest.raises(wi.InvalidRequestError, match=None) as info:
        await client.call("chat.create", **call)
    assert needle in str(info.value)
    assert rec.requests == []


async def test_image_to_text_only_model_is_a_capability_error(make_client: MakeClient) -> None:
    rec = Recorder(json_response(200, completion_body()))
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
            ],
        }
    ]
    client = make_client(rec)
    with pytest.raises(wi.CapabilityError, match="does not accept images"):
        await client.call("chat.create", model=MODEL, messages=messages)
    assert rec.requests == []
    # Switched off, it is sent as is.
    lenient = make_client(rec, check_capabilities=False)
    await lenient.call("chat.create", model=MODEL, messages=messages)
    assert len(rec.requests) == 1


@pytest.mark.parametrize("model", ["BAAI/bge-m3", "baai/BGE-M3", "cw_BAAI_bge-m3", "CW_baai_BGE-M3"])
async def test_chat_with_an_embeddings_model_is_a_capability_error(make_client: MakeClient, model: str) -> None:
    rec = Recorder(json_response(200, completion_body()))
    client = make_client(rec)
    with pytest.raises(wi.CapabilityError, match="is an embeddings model"):
        await client.call("chat.create", model=model, messages=MESSAGES)
    assert rec.requests == []


async def test_embeddings_from_chat_model_is_a_capability_error(make_client: MakeClient) -> None:
    rec = Recorder(json_response(200, {}))
    client = make_client(rec)
    with pytest.raises(wi.CapabilityError, match="serves no embeddings"):
        await client.call("embeddings.create", model=MODEL, input="x")
    assert rec.requests == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "body", "cls", "needle"),
    [
        (400, error_body("invalid temperature"), wi.BadRequestError, "invalid temperature"),
        (
            422,
            {"detail": [{"loc": ["body", "messages"], "msg": "field required"}]},
            wi.BadRequestError,
            "field required",
        ),
        (401, error_body("Authentication failed"), wi.AuthenticationError, "project"),
        (402, error_body("You exceeded your current quota"), wi.QuotaExceededError, "billing"),
        (403, error_body("Country, region, or territory not supported"), wi.PermissionDeniedError, "region"),
        (404, error_body("model not found"), wi.NotFoundError, "models.list()"),
        (
            429,
            error_body("You exceeded your current quota, please check your plan", "insufficient_quota"),
            wi.QuotaExceededError,
            "credits",
        ),
        (
            429,
            error_body("W&B Inference isn't available for personal accounts."),
            wi.PersonalAccountError,
            "team/project",
        ),
        (500, error_body("The server had an error while processing your request"), wi.InternalServerError, "30-60"),
        (503, error_body("The engine is currently overloaded"), wi.ServiceUnavailableError, "overloaded"),
        (502, "<html><head><title>502 Bad Gateway</title></head></html>", wi.InternalServerError, "502 Bad Gateway"),
        (520, "", wi.InternalServerError, "520"),
        (529, "overloaded", wi.ServiceUnavailableError, "overloaded"),
        (418, "I'm a teapot", wi.APIStatusError, "teapot"),
    ],
)
async def test_status_errors_are_typed(
    make_client: MakeClient, status: int, body: Any, cls: type[wi.APIStatusError], needle: str
) -> None:
    if isinstance(body, str):
        ctype = "text/html" if body.startswith("<") else "text/plain"
        response = httpx.Response(status, content=body.encode(), headers={"content-type": ctype, "x-request-id": "r1"})
    else:
        response = json_response(status, body, **{"x-request-id": "r1"})
    client = make_client(Recorder(response), max_retries=0)
    with pytest.raises(cls) as info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.request_id == "r1"
    assert needle in str(error)
    assert API_KEY not in repr(error) and API_KEY not in str(error)
    assert error.request is not None and API_KEY not in str(error.request.headers.raw)
    assert error.response.request is not None
    assert API_KEY not in str(error.response.request.headers.raw)


async def test_retired_model_404_names_replacement(make_client: MakeClient) -> None:
    client = make_client(Recorder(json_response(404, error_body("model not found"))))
    with pytest.raises(wi.NotFoundError) as info:
        await client.call("chat.create", model="deepseek-ai/DeepSeek-R1-0528", messages=MESSAGES)
    assert "retired" in str(info.value) and "2026-03-04" in str(info.value)


async def test_embeddings_404_explains_no_embeddings(make_client: MakeClient) -> None:
    client = make_client(Recorder(json_response(404, error_body("Not Found"))))
    with pytest.raises(wi.NotFoundError, match="serves no embeddings"):
        await client.call("embeddings.create", model="BAAI/bge-m3", input="x")


async def test_non_json_success_is_a_validation_error(make_client: MakeClient) -> None:
    html = httpx.Response(200, content=b"<html>login</html>", headers={"content-type": "text/html"})
    client = make_client(Recorder(html))
    with pytest.raises(wi.APIResponseValidationError, match="Expected JSON"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


async def test_wrong_shape_success_is_a_validation_error(make_client: MakeClient) -> None:
    client = make_client(Recorder(json_response(200, {"hello": "world"})))
    with pytest.raises(wi.APIResponseValidationError, match="not a valid ChatCompletion"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


async def test_connect_error_is_typed_after_retries(make_client: MakeClient, sleeps: Sleeps) -> None:
    rec = Recorder(httpx.ConnectError("connection refused"))
    client = make_client(rec, max_retries=2)
    with pytest.raises(wi.APIConnectionError, match="Could not reach") as info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert not isinstance(info.value, wi.APITimeoutError)
    assert len(rec.requests) == 3 and len(sleeps.delays) == 2


async def test_read_timeout_is_not_retried(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ReadTimeout("slow"))
    client = make_client(rec)
    with pytest.raises(wi.APITimeoutError, match="waiting for the response"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert len(rec.requests) == 1


# --------------------------------------------------------------------------- retries


async def test_retry_after_is_honoured(make_client: MakeClient, sleeps: Sleeps) -> None:
    limited = json_response(429, error_body("Concurrency limit reached", "rate_limit_exceeded"), **{"retry-after": "1"})
    rec = Recorder(limited, limited, json_response(200, completion_body()))
    client = make_client(rec)
    reply = await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert reply.text == "Hello there"
    assert len(rec.requests) == 3
    assert sleeps.delays == [1.0, 1.0]
    assert rec.bodies[0] == rec.bodies[2]


async def test_retry_after_ms_wins(make_client: MakeClient, sleeps: Sleeps) -> None:
    limited = json_response(503, error_body("overloaded"), **{"retry-after-ms": "250", "retry-after": "9"})
    client = make_client(Recorder(limited, json_response(200, completion_body())))
    await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert sleeps.delays == [0.25]


async def test_retry_after_over_cap_gives_up_at_once(make_client: MakeClient, sleeps: Sleeps) -> None:
    limited = json_response(429, error_body("Concurrency limit reached"), **{"retry-after": "3600"})
    rec = Recorder(limited, json_response(200, completion_body()))
    client = make_client(rec)
    with pytest.raises(wi.RateLimitError) as info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert info.value.retry_after == 3600
    assert len(rec.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    "make_response",
    [
        lambda: json_response(402, error_body("You exceeded your current quota")),
        lambda: json_response(429, error_body("You exceeded your current quota", "insufficient_quota")),
        lambda: json_response(429, error_body("W&B Inference isn't available for personal accounts.")),
        lambda: json_response(400, error_body("bad")),
        lambda: json_response(401, error_body("Authentication failed")),
    ],
)
async def test_never_retried(
    make_client: MakeClient, sleeps: Sleeps, make_response: Callable[[], httpx.Response]
) -> None:
    rec = Recorder(make_response(), json_response(200, completion_body()))
    client = make_client(rec)
    with pytest.raises(wi.APIStatusError):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert len(rec.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_retried_up_to_max(make_client: MakeClient, sleeps: Sleeps, status: int) -> None:
    rec = Recorder(json_response(status, error_body("boom")))
    client = make_client(rec, max_retries=3)
    with pytest.raises(wi.InternalServerError):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert len(rec.requests) == 4
    assert len(sleeps.delays) == 3
    assert all(0 <= d <= 8 for d in sleeps.delays)


async def test_concurrency_429_message_counts_retries(make_client: MakeClient) -> None:
    limited = json_response(
        429, error_body("concurrency limit reached for requests: llama-project limit reached", "rate_limit_exceeded")
    )
    client = make_client(Recorder(limited), max_retries=2)
    with pytest.raises(wi.RateLimitError, match="after 2 retries"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


# --------------------------------------------------------------------------- logging & secrets


async def test_debug_log_has_one_line_per_attempt_and_no_key(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    limited = json_response(429, error_body("Concurrency limit reached"), **{"retry-after": "0"})
    client = make_client(Recorder(limited, json_response(200, completion_body())))
    with caplog.at_level(logging.DEBUG, logger="wandb_inference"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    lines = [r.getMessage() for r in caplog.records if r.name == "wandb_inference"]
    assert len(lines) == 2
    assert "429" in lines[0] and "attempt 1" in lines[0] and "retrying in" in lines[0]
    assert "200" in lines[1] and "attempt 2" in lines[1]
    everything = caplog.text + repr(client.client)
    assert API_KEY not in everything


# --------------------------------------------------------------------------- streaming


async def test_stream_yields_typed_chunks_and_accumulates(make_client: MakeClient) -> None:
    usage = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    body = sse(chunk(role="assistant"), chunk("Hel"), chunk("lo"), usage)
    rec = Recorder(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"}))
    client = make_client(rec)
    stream = await client.call(
        "chat.create", model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = await client.collect(stream)
    assert [c.text for c in chunks] == ["", "Hel", "lo", ""]
    assert all(isinstance(c, wi.ChatCompletionChunk) for c in chunks)
    assert stream.closed
    final = stream.completion
    assert final.text == "Hello"
    assert final.usage.total_tokens == 5
    assert rec.requests[0].headers["accept"] == "text/event-stream"
    assert rec.bodies[0]["stream"] is True


async def test_stream_without_done_keeps_partial_text(make_client: MakeClient) -> None:
    body = sse(chunk("Hel"), chunk("lo wor"), done=False)
    client = make_client(Recorder(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamInterruptedError, match=r"without `data: \[DONE\]`") as info:
        await client.collect(stream)
    assert info.value.text == "Hello wor"
    assert info.value.partial is not None and info.value.partial.text == "Hello wor"
    assert stream.closed


async def test_stream_error_event_is_typed(make_client: MakeClient) -> None:
    body = sse(chunk("partial "), {"error": {"message": "backend died", "code": "internal"}})
    client = make_client(Recorder(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamEventError, match="backend died") as info:
        await client.collect(stream)
    assert info.value.code == "internal"
    assert info.value.text == "partial "


async def test_stream_answered_with_json_error(make_client: MakeClient) -> None:
    client = make_client(Recorder(json_response(200, error_body("no streaming here"))))
    with pytest.raises(wi.StreamEventError, match="no streaming here"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)


async def test_stream_status_errors_retried_before_first_event(make_client: MakeClient, sleeps: Sleeps) -> None:
    limited = json_response(503, error_body("overloaded"), **{"retry-after": "2"})
    ok = httpx.Response(200, content=sse(chunk("ok")), headers={"content-type": "text/event-stream"})
    rec = Recorder(limited, ok)
    client = make_client(rec)
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    assert [c.text for c in await client.collect(stream)] == ["ok"]
    assert sleeps.delays == [2.0]


async def test_redirect_is_not_followed_and_key_not_forwarded(make_client: MakeClient) -> None:
    seen_hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_hosts.append(request.url.host)
        return httpx.Response(307, headers={"location": "https://evil.test/v1/chat/completions"})

    client = make_client(handler)
    with pytest.raises(wi.APIStatusError, match="does not follow redirects") as info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert "evil.test" in str(info.value)
    assert seen_hosts == ["inference.test"]


async def test_oversized_error_body_still_classified(make_client: MakeClient) -> None:
    huge = b"x" * (3 << 20)
    client = make_client(Recorder(httpx.Response(500, content=huge)), max_retries=0)
    with pytest.raises(wi.InternalServerError):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


async def test_stream_cut_inside_an_event_is_an_interruption(make_client: MakeClient) -> None:
    body = sse(chunk("Hel"), done=False) + b'data: {"id": "c", "choi'
    client = make_client(Recorder(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})))
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamInterruptedError, match="middle of an event") as info:
        await client.collect(stream)
    assert info.value.text == "Hel"


async def test_max_event_size_is_a_client_option(make_client: MakeClient) -> None:
    body = b"data: " + b"a" * 5000 + b"\n\n"
    client = make_client(
        Recorder(httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})), max_event_size=4096
    )
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamError, match="max_event_size"):
        await client.collect(stream)
    with pytest.raises(wi.ConfigurationError):
        make_client(Recorder(json_response(200, {})), max_event_size=10)


def test_request_urls_are_parsed_once_per_endpoint() -> None:
    from wandb_inference import _prepare

    _prepare._URLS.clear()
    first = _prepare._url("https://api.example/v1", "/chat/completions")
    assert first is _prepare._url("https://api.example/v1", "/chat/completions")
    assert str(first) == "https://api.example/v1/chat/completions"
    other = _prepare._url("http://127.0.0.1:9/v1", "/chat/completions")
    assert str(other) == "http://127.0.0.1:9/v1/chat/completions"
    for i in range(300):  # many base URLs: the cache stays bounded
        _prepare._url(f"http://host{i}.example/v1", "/models")
    assert len(_prepare._URLS) <= 256
