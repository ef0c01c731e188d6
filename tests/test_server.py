"""The local server over real sockets on 127.0.0.1: models, chat (JSON and SSE), embeddings,
the service's errors, validated against the OpenAPI document's schemas."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import math
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import jsonschema
import pytest
from _helpers import load_spec, sse_events

from wandb_inference._catalog._table import CATALOG, Capabilities, Lifecycle, ModelInfo
from wandb_inference.server import LocalServer

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.yaml"
KEY = "test-key-0123"


def _model(model_id: str, **capabilities: Any) -> ModelInfo:
    dimensions = capabilities.pop("dimensions", None)
    lifecycle = capabilities.pop("lifecycle", Lifecycle())
    return ModelInfo(
        id=model_id,
        name=model_id,
        family="test",
        context_window=8192,
        capabilities=Capabilities(**capabilities),
        lifecycle=lifecycle,
        constructor="",
        embedding_dimensions=dimensions,
    )


# Test-only models, so these tests do not depend on the catalog's current rows.
TEXT = "test/chat"
THINK_ON = "test/think-on"
THINK_ALWAYS = "test/think-always"
THINK_OPTIONAL = "test/think-optional"
VISION = "test/vision"
EMBED = "test/embed-384"
EMBED_DEFAULT = "test/embed-default"
RETIRED = "test/retired"
MODELS: list[str | ModelInfo] = [
    _model(TEXT, tools=True),
    _model(THINK_ON, reasoning="on"),
    _model(THINK_ALWAYS, reasoning="always"),
    _model(THINK_OPTIONAL, reasoning="optional"),
    _model(VISION, vision=True),
    _model(EMBED, chat=False, embeddings=True, dimensions=384),
    _model(EMBED_DEFAULT, chat=False, embeddings=True),
    _model(RETIRED, lifecycle=Lifecycle(stage="retired", retired_on=dt.date(2026, 3, 4), replacement=TEXT)),
    "plain/extra-id",
]
ASK = [{"role": "user", "content": "Tell me about rivers, gardens and lanterns."}]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": False,
        },
    },
}
CLOCK_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


# ---------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def openapi() -> Callable[[str, Any], None]:
    """Validate an instance against a `components/schemas` entry of openapi.yaml."""
    doc = load_spec()
    validators: dict[str, jsonschema.Draft202012Validator] = {}

    def check(name: str, instance: Any) -> None:
        if name not in validators:
            schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
            validators[name] = jsonschema.Draft202012Validator(schema)
        validators[name].validate(instance)

    return check


def chunk_bodies(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(data) for _, data in sse_events(raw) if data not in ("", "[DONE]")]


def stream_text(chunks: list[dict[str, Any]], field: str = "content", index: int = 0) -> str:
    return "".join(
        c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"] and c["choices"][0]["index"] == index
    )


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY, models=MODELS) as srv:
        yield srv


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    server.faults.clear()
    server.requests.clear()
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
        yield client


def chat(http: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("model", TEXT)
    body.setdefault("messages", ASK)
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stream(http: httpx.Client, **body: Any) -> tuple[list[dict[str, Any]], bytes]:
    body.setdefault("model", TEXT)
    body.setdefault("messages", ASK)
    response = http.post("/chat/completions", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return chunk_bodies(response.content), response.content


# ---------------------------------------------------------------------- models
def test_models_lists_the_catalog_without_retired_plus_extras(
    http: httpx.Client, openapi: Callable[[str, Any], None]
) -> None:
    response = http.get("/models")
    assert response.status_code == 200
    body = response.json()
    openapi("ModelList", body)
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    expected = [m.id for m in CATALOG if m.lifecycle.stage != "retired"]
    assert ids[: len(expected)] == expected or set(expected) <= set(ids)
    assert {TEXT, EMBED, "plain/extra-id"} <= set(ids)
    assert RETIRED not in ids
    for retired in (m.id for m in CATALOG if m.lifecycle.stage == "retired"):
        assert retired not in ids
    first = body["data"][0]
    assert set(first) == {"id", "object", "created", "owned_by", "root"}
    assert first["object"] == "model" and first["root"] == first["id"]


# ---------------------------------------------------------------------- chat: text
def test_completion_validates_and_is_deterministic(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    first = chat(http, seed=7)
    openapi("ChatCompletion", first)
    again = chat(http, seed=7)
    other_seed = chat(http, seed=8)
    other_prompt = chat(http, seed=7, messages=[{"role": "user", "content": "Something else entirely."}])
    text = first["choices"][0]["message"]["content"]
    assert text == again["choices"][0]["message"]["content"]
    assert text != other_seed["choices"][0]["message"]["content"]
    assert text != other_prompt["choices"][0]["message"]["content"]
    assert re.fullmatch(r"[A-Z][\w ,.'-]+\.", text), text  # sentences of words
    assert first["object"] == "chat.completion" and first["model"] == TEXT
    assert first["choices"][0]["finish_reason"] == "stop"
    assert first["choices"][0]["message"]["role"] == "assistant"
    assert first["choices"][0]["message"]["reasoning"] is None  # a non-reasoning model
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(text.split())  # one token per word
    assert "completion_tokens_details" not in usage


def test_prompt_tokens_grow_with_the_prompt(http: httpx.Client) -> None:
    short = chat(http, messages=[{"role": "user", "content": "Hi"}])["usage"]["prompt_tokens"]
    long = chat(http, messages=[{"role": "user", "content": "Hi " * 400}])["usage"]["prompt_tokens"]
    assert 0 < short < long
    assert long >= 300  # about four characters a token


def test_stream_carries_the_same_text_and_every_chunk_validates(
    http: httpx.Client, openapi: Callable[[str, Any], None]
) -> None:
    whole = chat(http, seed=3)
    chunks, raw = stream(http, seed=3, stream_options={"include_usage": True})
    for chunk in chunks:
        openapi("ChatCompletionChunk", chunk)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert raw.count(b"[DONE]") == 1
    assert stream_text(chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    words = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(words) == whole["usage"]["completion_tokens"]  # token by token
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == whole["usage"]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_stream_without_include_usage_has_no_usage_chunk(http: httpx.Client) -> None:
    chunks, _ = stream(http)
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


def test_max_tokens_cuts_the_same_text_with_length(http: httpx.Client) -> None:
    full = chat(http, seed=11)["choices"][0]["message"]["content"]
    cut = chat(http, seed=11, max_tokens=5)
    text = cut["choices"][0]["message"]["content"]
    assert full.startswith(text) and len(text.split()) == 5
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 5
    chunks, _ = stream(http, seed=11, max_tokens=5)
    assert stream_text(chunks) == text
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"


def test_vllm_length_extensions(http: httpx.Client) -> None:
    forced = chat(http, ignore_eos=True, max_tokens=300)
    assert forced["usage"]["completion_tokens"] == 300 and forced["choices"][0]["finish_reason"] == "length"
    at_least = chat(http, min_tokens=100)
    assert at_least["usage"]["completion_tokens"] >= 100 and at_least["choices"][0]["finish_reason"] == "stop"


def test_stop_ends_before_the_first_stop_string(http: httpx.Client) -> None:
    full = chat(http, seed=5)["choices"][0]["message"]["content"]
    words = full.split()
    word = words[len(words) // 2].strip(",.")
    cut = chat(http, seed=5, stop=word)
    text = cut["choices"][0]["message"]["content"]
    assert text == full[: full.index(word)]
    assert cut["choices"][0]["finish_reason"] == "stop"
    both = chat(http, seed=5, stop=[" zzz-never", word, words[2]])
    earliest = min(full.index(word), full.index(words[2]))
    assert both["choices"][0]["message"]["content"] == full[:earliest]
    chunks, _ = stream(http, seed=5, stop=word)
    assert stream_text(chunks) == text


def test_n_choices_differ_and_stream_interleaved(http: httpx.Client) -> None:
    body = chat(http, n=3, seed=2)
    choices = body["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2]
    texts = [c["message"]["content"] for c in choices]
    assert len(set(texts)) == 3
    assert body["usage"]["completion_tokens"] == sum(len(t.split()) for t in texts)
    chunks, _ = stream(http, n=3, seed=2)
    for index, text in enumerate(texts):
        assert stream_text(chunks, index=index) == text
    indexes = [c["choices"][0]["index"] for c in chunks[:6]]
    assert indexes == [0, 1, 2, 0, 1, 2]  # delta by delta, not choice by choice
    assert sum(1 for c in chunks if c["choices"][0]["finish_reason"]) == 3


def test_pace_spaces_streamed_tokens() -> None:
    with (
        LocalServer(pace=0.02, models=MODELS) as srv,
        httpx.Client(base_url=srv.base_url) as client,
        client.stream(
            "POST", "/chat/completions", json={"model": TEXT, "messages": ASK, "max_tokens": 10, "stream": True}
        ) as response,
    ):
        arrivals = []
        start = time.monotonic()
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.monotonic() - start)
    # role chunk, 10 tokens, finish chunk: 11 gaps of 20 ms, arriving one by one.
    assert len(arrivals) == 12
    assert arrivals[-1] - arrivals[0] >= 0.18
    assert arrivals[5] - arrivals[0] >= 0.08


def test_pace_also_delays_a_json_reply() -> None:
    with LocalServer(pace=0.02, models=MODELS) as srv, httpx.Client(base_url=srv.base_url) as client:
        start = time.monotonic()
        response = client.post("/chat/completions", json={"model": TEXT, "messages": ASK, "max_tokens": 10})
        assert response.status_code == 200
        assert time.monotonic() - start >= 0.18


# ---------------------------------------------------------------------- structured output
NESTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "rating": {"type": "integer", "minimum": 1, "maximum": 5},
        "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "public": {"type": "boolean"},
        "genre": {"enum": ["drama", "comedy", "horror"]},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4, "uniqueItems": True},
        "author": {"$ref": "#/$defs/person"},
        "reviews": {"type": "array", "items": {"$ref": "#/$defs/review"}, "minItems": 1},
        "note": {"type": ["string", "null"]},
        "created": {"type": "string", "format": "date-time"},
    },
    "required": ["title", "rating", "score", "public", "genre", "tags", "author", "reviews"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string", "format": "email"}},
            "required": ["name", "email"],
        },
        "review": {
            "type": "object",
            "properties": {"by": {"$ref": "#/$defs/person"}, "stars": {"type": "integer", "multipleOf": 2}},
            "required": ["by", "stars"],
        },
    },
}


def test_json_object_gives_a_json_object(http: httpx.Client) -> None:
    for seed in range(5):
        content = chat(http, seed=seed, response_format={"type": "json_object"})["choices"][0]["message"]["content"]
        assert isinstance(json.loads(content), dict)


@pytest.mark.parametrize("seed", range(12))
def test_json_schema_gives_a_conforming_instance(http: httpx.Client, seed: int) -> None:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "review", "strict": True, "schema": NESTED_SCHEMA},
    }
    content = chat(http, seed=seed, response_format=response_format)["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(content), NESTED_SCHEMA, format_checker=jsonschema.FormatChecker())
    chunks, _ = stream(http, seed=seed, response_format=response_format)
    assert stream_text(chunks) == content
    assert sum(1 for c in chunks if c["choices"][0]["delta"].get("content")) >= 3  # in pieces


# ---------------------------------------------------------------------- tools
def _arguments(call: dict[str, Any]) -> Any:
    return json.loads(call["function"]["arguments"])


def test_named_tool_choice_forces_a_conforming_call(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    for seed in range(6):
        body = chat(
            http,
            seed=seed,
            tools=[CLOCK_TOOL, WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        )
        openapi("ChatCompletion", body)
        choice = body["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] is None
        (call,) = choice["message"]["tool_calls"]
        assert call["id"].startswith("call_") and call["type"] == "function"
        assert call["function"]["name"] == "get_weather"
        jsonschema.validate(_arguments(call), WEATHER_TOOL["function"]["parameters"])


def test_required_tool_choice_calls_some_tool(http: httpx.Client) -> None:
    body = chat(http, tools=[CLOCK_TOOL, WEATHER_TOOL], tool_choice="required")
    (call,) = body["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] in ("get_weather", "get_time")
    if call["function"]["name"] == "get_time":
        assert _arguments(call) == {}  # no parameters: called with {}


def test_auto_calls_the_tools_the_user_names_else_answers(http: httpx.Client) -> None:
    tools = [CLOCK_TOOL, WEATHER_TOOL]
    plain = chat(http, tools=tools)["choices"][0]
    assert plain["finish_reason"] == "stop" and plain["message"]["content"]
    asked = [{"role": "user", "content": "Use get weather for Paris, then get_time please."}]
    both = chat(http, tools=tools, tool_choice="auto", messages=asked)["choices"][0]
    assert [c["function"]["name"] for c in both["message"]["tool_calls"]] == ["get_weather", "get_time"]
    one = chat(http, tools=tools, messages=asked, parallel_tool_calls=False)["choices"][0]
    assert len(one["message"]["tool_calls"]) == 1
    call = both["message"]["tool_calls"][0]
    after_tool = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 21}'},
    ]
    answer = chat(http, tools=tools, messages=after_tool)["choices"][0]
    assert answer["finish_reason"] == "stop" and answer["message"]["content"]
    none = chat(http, tools=tools, messages=asked, tool_choice="none")["choices"][0]
    assert "tool_calls" not in none["message"]


def test_streamed_tool_call_arguments_arrive_in_pieces_keyed_by_index(
    http: httpx.Client, openapi: Callable[[str, Any], None]
) -> None:
    asked = [{"role": "user", "content": "get_weather in Oslo and get_time there"}]
    whole = chat(http, tools=[CLOCK_TOOL, WEATHER_TOOL], messages=asked, seed=4)
    chunks, _ = stream(http, tools=[CLOCK_TOOL, WEATHER_TOOL], messages=asked, seed=4)
    calls: dict[int, dict[str, Any]] = {}
    pieces: dict[int, int] = {}
    for chunk in chunks:
        openapi("ChatCompletionChunk", chunk)
        for delta in chunk["choices"][0]["delta"].get("tool_calls") or []:
            index = delta["index"]
            if index not in calls:
                assert delta["id"].startswith("call_") and delta["function"]["name"]  # first delta: id + name
                calls[index] = {"id": delta["id"], "name": delta["function"]["name"], "arguments": ""}
            else:
                assert "id" not in delta and "name" not in delta["function"]
                pieces[index] = pieces.get(index, 0) + 1
            calls[index]["arguments"] += delta["function"]["arguments"]
    assert sorted(calls) == [0, 1]
    assert pieces[0] >= 2  # the weather arguments come in several pieces
    for index, call in calls.items():
        expected = whole["choices"][0]["message"]["tool_calls"][index]
        assert call["id"] == expected["id"] and call["name"] == expected["function"]["name"]
        assert json.loads(call["arguments"]) == json.loads(expected["function"]["arguments"])
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER_TOOL["function"]["parameters"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_max_tokens_can_cut_tool_arguments(http: httpx.Client) -> None:
    forced = {"type": "function", "function": {"name": "get_weather"}}
    body = chat(http, tools=[WEATHER_TOOL], tool_choice=forced, max_tokens=2)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    arguments = choice["message"]["tool_calls"][0]["function"]["arguments"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(arguments)  # as a real model cut mid-call: invalid JSON


def test_legacy_functions_and_function_call(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    functions = [WEATHER_TOOL["function"]]
    body = chat(http, functions=functions, function_call={"name": "get_weather"})
    openapi("ChatCompletion", body)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    assert choice["message"]["function_call"]["name"] == "get_weather"
    jsonschema.validate(json.loads(choice["message"]["function_call"]["arguments"]), functions[0]["parameters"])
    assert "tool_calls" not in choice["message"]
    chunks, _ = stream(http, functions=functions, function_call={"name": "get_weather"})
    deltas = [
        c["choices"][0]["delta"]["function_call"] for c in chunks if c["choices"][0]["delta"].get("function_call")
    ]
    assert deltas[0]["name"] == "get_weather"
    assert "".join(d["arguments"] for d in deltas) == choice["message"]["function_call"]["arguments"]
    text = chat(http, functions=functions, function_call="none")["choices"][0]
    assert text["finish_reason"] == "stop"


# ---------------------------------------------------------------------- reasoning, vision
def test_reasoning_models_think_before_answering(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    body = chat(http, model=THINK_ON, seed=1)
    openapi("ChatCompletion", body)
    message = body["choices"][0]["message"]
    assert message["reasoning"].startswith("Okay, let me think.")
    assert message["content"]
    reasoning_tokens = body["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning_tokens == len(message["reasoning"].split())
    assert body["usage"]["completion_tokens"] == reasoning_tokens + len(message["content"].split())
    chunks, _ = stream(http, model=THINK_ON, seed=1)
    assert stream_text(chunks, "reasoning") == message["reasoning"]
    assert stream_text(chunks) == message["content"]
    kinds = [next(k for k in ("reasoning", "content") if c["choices"][0]["delta"].get(k)) for c in chunks[1:-1]]
    assert kinds == sorted(kinds, key=lambda k: k == "content")  # all reasoning, then all content


def test_reasoning_switches(http: httpx.Client) -> None:
    off = {"enable_thinking": False}
    assert chat(http, model=THINK_ON, chat_template_kwargs=off)["choices"][0]["message"]["reasoning"] is None
    assert chat(http, model=THINK_ALWAYS, chat_template_kwargs=off)["choices"][0]["message"]["reasoning"]
    assert chat(http, model=THINK_OPTIONAL)["choices"][0]["message"]["reasoning"] is None
    on = {"enable_thinking": True}
    assert chat(http, model=THINK_OPTIONAL, chat_template_kwargs=on)["choices"][0]["message"]["reasoning"]
    low = chat(http, model=THINK_ALWAYS, reasoning_effort="low")["usage"]["completion_tokens_details"]
    high = chat(http, model=THINK_ALWAYS, reasoning_effort="high")["usage"]["completion_tokens_details"]
    assert low["reasoning_tokens"] < high["reasoning_tokens"]


def test_reasoning_can_use_up_max_tokens(http: httpx.Client) -> None:
    body = chat(http, model=THINK_ALWAYS, max_tokens=3)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] is None
    assert len(choice["message"]["reasoning"].split()) == 3


def test_legacy_reasoning_content_field() -> None:
    with (
        LocalServer(models=MODELS, reasoning_field="reasoning_content") as srv,
        httpx.Client(base_url=srv.base_url) as client,
    ):
        body = client.post("/chat/completions", json={"model": THINK_ON, "messages": ASK}).json()
        message = body["choices"][0]["message"]
        assert message["reasoning_content"] and "reasoning" not in message
        raw = client.post("/chat/completions", json={"model": THINK_ON, "messages": ASK, "stream": True}).content
        assert stream_text(chunk_bodies(raw), "reasoning_content") == message["reasoning_content"]


def test_image_parts_are_accepted_by_every_chat_model(http: httpx.Client) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}]
    seen = chat(http, model=VISION, messages=messages)
    assert seen["choices"][0]["message"]["content"].startswith("I see the image.")
    text_only = chat(http, model=TEXT, messages=messages)  # the SDK checks capabilities, not the server
    assert text_only["choices"][0]["message"]["content"]
    assert seen["usage"]["prompt_tokens"] >= 85


def test_lora_artifact_ids_are_served(http: httpx.Client) -> None:
    body = chat(http, model="wandb-artifact:///team/project/my-lora:v3")
    assert body["model"] == "wandb-artifact:///team/project/my-lora:v3"


# ---------------------------------------------------------------------- embeddings
def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (_norm(a) * _norm(b))


def test_embeddings_are_deterministic_unit_vectors(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    texts = ["a cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew"]
    response = http.post("/embeddings", json={"model": EMBED, "input": texts})
    assert response.status_code == 200
    body = response.json()
    openapi("EmbeddingResponse", body)
    vectors = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(len(v) == 384 and abs(_norm(v) - 1) < 1e-9 for v in vectors)
    assert _cosine(vectors[0], vectors[1]) > 0.5 > abs(_cosine(vectors[0], vectors[2]))
    again = http.post("/embeddings", json={"model": EMBED, "input": texts[0]}).json()
    assert again["data"][0]["embedding"] == vectors[0]  # a single string, the same vector
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    default = http.post("/embeddings", json={"model": EMBED_DEFAULT, "input": "x"}).json()
    assert len(default["data"][0]["embedding"]) == 1024  # no catalog dimension: 1024


def test_embedding_dimensions_truncate_and_renormalise(http: httpx.Client) -> None:
    full = http.post("/embeddings", json={"model": EMBED, "input": "hello"}).json()["data"][0]["embedding"]
    short = http.post("/embeddings", json={"model": EMBED, "input": "hello", "dimensions": 64}).json()
    vector = short["data"][0]["embedding"]
    assert len(vector) == 64 and abs(_norm(vector) - 1) < 1e-9
    head = full[:64]
    assert vector == pytest.approx([v / _norm(head) for v in head])
    too_many = http.post("/embeddings", json={"model": EMBED, "input": "hello", "dimensions": 385})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "dimensions"


def test_embeddings_base64_is_little_endian_float32(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    floats = http.post("/embeddings", json={"model": EMBED, "input": ["one", "two"]}).json()
    encoded = http.post(
        "/embeddings", json={"model": EMBED, "input": ["one", "two"], "encoding_format": "base64"}
    ).json()
    openapi("EmbeddingResponse", encoded)
    for plain, packed in zip(floats["data"], encoded["data"], strict=True):
        raw = base64.b64decode(packed["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert len(decoded) == 384
        assert list(decoded) == pytest.approx(plain["embedding"], abs=1e-7)


def test_models_refuse_the_other_endpoint(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    chat_with_embedder = http.post("/chat/completions", json={"model": EMBED, "messages": ASK})
    assert chat_with_embedder.status_code == 400
    openapi("ErrorResponse", chat_with_embedder.json())
    assert "embedding model" in chat_with_embedder.json()["error"]["message"]
    embed_with_chat = http.post("/embeddings", json={"model": TEXT, "input": "x"})
    assert embed_with_chat.status_code == 400
    assert "not an embedding model" in embed_with_chat.json()["error"]["message"]


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong", "not-bearer", "empty"],
)
def test_authentication_failures(
    server: LocalServer, headers: dict[str, str], openapi: Callable[[str, Any], None]
) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        response = client.post("/chat/completions", json={"model": TEXT, "messages": ASK}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "message": "Authentication failed",
            "type": "authentication_error",
            "code": "invalid_api_key",
            "param": None,
        }
    }
    openapi("ErrorResponse", response.json())


def test_unknown_and_retired_models_are_404(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    unknown = http.post("/chat/completions", json={"model": "no/such-model", "messages": ASK})
    assert unknown.status_code == 404
    openapi("ErrorResponse", unknown.json())
    assert unknown.json()["error"]["message"].startswith("model not found")
    retired = http.post("/chat/completions", json={"model": RETIRED, "messages": ASK})
    assert retired.status_code == 404
    message = retired.json()["error"]["message"]
    assert message.startswith("model not found") and "retired on 2026-03-04" in message and TEXT in message
    embeddings = http.post("/embeddings", json={"model": "no/such-model", "input": "x"})
    assert embeddings.status_code == 404


def test_invalid_json_is_400(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    for content in (b"{not json", b"", b'{"temperature": NaN}', b"\xff\xfe"):
        response = http.post("/chat/completions", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400, content
        openapi("ErrorResponse", response.json())
        assert response.json()["error"]["message"].startswith("Invalid JSON body")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": TEXT}, "messages"),
        ({"messages": ASK}, "model"),
        ({"model": TEXT, "messages": []}, "messages"),
        ({"model": TEXT, "messages": "hi"}, "messages"),
        ({"model": TEXT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": TEXT, "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": TEXT, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": TEXT, "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {"model": TEXT, "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {"model": TEXT, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0].image_url",
        ),
        ({"model": TEXT, "messages": ASK, "temperature": 3}, "temperature"),
        ({"model": TEXT, "messages": ASK, "temperature": "hot"}, "temperature"),
        ({"model": TEXT, "messages": ASK, "top_p": -0.1}, "top_p"),
        ({"model": TEXT, "messages": ASK, "n": 0}, "n"),
        ({"model": TEXT, "messages": ASK, "max_tokens": 0}, "max_tokens"),
        ({"model": TEXT, "messages": ASK, "max_tokens": True}, "max_tokens"),
        ({"model": TEXT, "messages": ASK, "max_tokens": 1.5}, "max_tokens"),
        ({"model": TEXT, "messages": ASK, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": TEXT, "messages": ASK, "stop": 5}, "stop"),
        ({"model": TEXT, "messages": ASK, "stream": "yes"}, "stream"),
        ({"model": TEXT, "messages": ASK, "tool_choice": "always"}, "tool_choice"),
        ({"model": TEXT, "messages": ASK, "response_format": {"type": "yaml"}}, "response_format.type"),
        ({"model": TEXT, "messages": ASK, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
        ({"model": TEXT, "messages": ASK, "logit_bias": {"50256": "x"}}, "logit_bias.50256"),
        ({"model": TEXT, "messages": ASK, "reasoning_effort": "max"}, "reasoning_effort"),
        ({"model": TEXT, "messages": ASK, "tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ],
)
def test_schema_invalid_chat_bodies_are_422(
    http: httpx.Client, body: dict[str, Any], param: str, openapi: Callable[[str, Any], None]
) -> None:
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    openapi("ErrorResponse", error)
    assert error["error"]["param"] == param
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(f"Invalid request: {param} ")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": EMBED}, "input"),
        ({"model": EMBED, "input": []}, "input"),
        ({"model": EMBED, "input": [1, 2]}, "input[0]"),
        ({"model": EMBED, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": EMBED, "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_schema_invalid_embedding_bodies_are_422(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    response = http.post("/embeddings", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param


def test_body_that_is_not_an_object_is_422(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "Invalid request: the request body must be an object (got array)"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}, "tools": [WEATHER_TOOL]}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"function_call": {"name": "nope"}, "functions": [WEATHER_TOOL["function"]]}, "function_call"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
def test_inconsistent_requests_are_400(http: httpx.Client, extra: dict[str, Any], param: str) -> None:
    response = http.post("/chat/completions", json={"model": TEXT, "messages": ASK, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_wrong_paths_and_methods(http: httpx.Client, openapi: Callable[[str, Any], None]) -> None:
    missing_v1 = http.post(http.base_url.copy_with(path="/chat/completions"), json={"model": TEXT, "messages": ASK})
    assert missing_v1.status_code == 404
    openapi("ErrorResponse", missing_v1.json())
    assert "base URL end in /v1" in missing_v1.json()["error"]["message"]
    assert http.get("/nowhere").status_code == 404
    wrong_method = http.get("/chat/completions")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    openapi("ErrorResponse", wrong_method.json())


# ---------------------------------------------------------------------- limits, projects, log
async def test_concurrency_limit_answers_the_services_429() -> None:
    with LocalServer(models=MODELS, pace=0.02, concurrency_limits={TEXT: 1}) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url) as client:
            body = {"model": TEXT, "messages": ASK, "max_tokens": 10, "stream": True}
            async with client.stream("POST", "/chat/completions", json=body) as first:
                assert first.status_code == 200
                refused = await client.post("/chat/completions", json={**body, "stream": False})
                other_model = await client.post("/chat/completions", json={**body, "model": VISION, "stream": False})
                await first.aread()
            assert refused.status_code == 429
            assert refused.json() == {
                "error": {
                    "message": f"Concurrency limit reached for requests: {TEXT}-project limit reached",
                    "type": "rate_limit_error",
                    "code": "rate_limit_exceeded",
                    "param": None,
                }
            }
            assert other_model.status_code == 200  # the limit is per model
            again = await client.post("/chat/completions", json={**body, "stream": False})
            assert again.status_code == 200  # the slot was released


async def test_concurrency_limit_changes_while_serving_and_service_time_holds_the_slot() -> None:
    with LocalServer(models=MODELS, concurrency_limits={TEXT: 1}, service_time=0.3) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url) as client:
            body = {"model": TEXT, "messages": ASK, "max_tokens": 2}
            started = time.monotonic()
            first = asyncio.ensure_future(client.post("/chat/completions", json=body))
            for _ in range(2000):  # until the server holds it (polled: another thread's state)
                if srv.in_flight(TEXT):
                    break
                await asyncio.sleep(0.005)
            assert (await client.post("/chat/completions", json=body)).status_code == 429
            srv.set_concurrency_limit(TEXT, 2)  # raised while the first is in flight
            second = await client.post("/chat/completions", json=body)
            assert second.status_code == 200
            assert (await first).status_code == 200
            assert time.monotonic() - started >= 0.3  # each held its slot the service time
            # The server frees a slot just after the reply's last byte is sent: the client
            # can read the reply first (a fresh-clone CI run saw 1 here). Freed soon.
            for _ in range(200):
                if srv.in_flight(TEXT) == 0:
                    break
                await asyncio.sleep(0.005)
            assert srv.in_flight(TEXT) == 0
            srv.set_concurrency_limit(TEXT, None)  # unlimited
            replies = await asyncio.gather(*(client.post("/chat/completions", json=body) for _ in range(3)))
            assert [r.status_code for r in replies] == [200] * 3
    with pytest.raises(ValueError, match="concurrency limit"):
        srv.set_concurrency_limit(TEXT, 0)
    with pytest.raises(ValueError, match="service_time"):
        LocalServer(service_time=-1)


def test_projects_option(openapi: Callable[[str, Any], None]) -> None:
    with LocalServer(models=MODELS, projects=["team/proj"]) as srv, httpx.Client(base_url=srv.base_url) as client:
        body = {"model": TEXT, "messages": ASK}
        missing = client.post("/chat/completions", json=body)
        assert missing.status_code == 429 and "personal accounts" in missing.json()["error"]["message"]
        openapi("ErrorResponse", missing.json())
        wrong = client.post("/chat/completions", json=body, headers={"OpenAI-Project": "team/other"})
        assert wrong.status_code == 401
        right = client.post("/chat/completions", json=body, headers={"OpenAI-Project": "team/proj"})
        assert right.status_code == 200


def test_requests_are_recorded_as_received(server: LocalServer, http: httpx.Client) -> None:
    response = http.post("/chat/completions", json={"model": TEXT, "messages": ASK}, headers={"X-Custom": "1"})
    http.get("/models")
    first, second = server.requests
    assert (first.method, first.path, first.status) == ("POST", "/v1/chat/completions", 200)
    assert first.header("authorization") == f"Bearer {KEY}"
    assert first.header("x-custom") == "1"
    assert first.body == {"model": TEXT, "messages": ASK}
    assert first.model == TEXT
    assert json.loads(first.content) == first.body
    assert first.request_id == response.headers["x-request-id"]
    assert first.fault is None
    assert (second.method, second.path, second.body) == ("GET", "/v1/models", None)
    assert server.requests.last == second and server.requests[-1] == second
    assert len(server.requests) == 2
    server.requests.clear()
    assert len(server.requests) == 0
    with pytest.raises(IndexError):
        _ = server.requests.last


def test_request_log_is_thread_safe(server: LocalServer) -> None:
    def hammer() -> None:
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {KEY}"}) as client:
            for _ in range(10):
                client.get("/models")

    server.requests.clear()
    threads = [threading.Thread(target=hammer) for _ in range(5)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        list(server.requests)  # reading while the server writes
    for thread in threads:
        thread.join()
    assert len(server.requests) == 50
    assert all(r.status == 200 for r in server.requests)


async def test_two_hundred_concurrent_streams_complete() -> None:
    with LocalServer(models=MODELS, pace=0.005) as srv:
        limits = httpx.Limits(max_connections=250, max_keepalive_connections=250)
        async with httpx.AsyncClient(base_url=srv.base_url, limits=limits, timeout=30) as client:

            async def one(i: int, results: list[bytes]) -> None:
                body = {"model": TEXT, "messages": ASK, "seed": i, "max_tokens": 20, "stream": True}
                async with client.stream("POST", "/chat/completions", json=body) as response:
                    assert response.status_code == 200
                    results.append(await response.aread())

            results: list[bytes] = []
            start = time.monotonic()
            async with anyio.create_task_group() as group:
                for i in range(200):
                    group.start_soon(one, i, results)
            elapsed = time.monotonic() - start
        assert len(results) == 200
        assert all(r.endswith(b"data: [DONE]\n\n") for r in results)
        assert len({stream_text(chunk_bodies(r)) for r in results}) > 150  # different seeds, different texts
        # 22 chunks at 5 ms each take ~0.11 s alone: queued one by one, 200 would take 22 s.
        # They overlap (about 2 s on an idle 2-core machine; the bound leaves a loaded one room).
        assert elapsed < 18
