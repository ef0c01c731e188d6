"""The official `openai` SDK as a foreign client of the local server: if it is happy, the
server speaks the OpenAI wire format, not just what our own SDK expects."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from wandb_inference._catalog._table import Capabilities, ModelInfo
from wandb_inference.server import Fault, LocalServer

KEY = "sk-local-test"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
EMBED = "test/embed"
MESSAGES: Any = [{"role": "user", "content": "Write about harbors and maps."}]
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "find_route",
        "parameters": {
            "type": "object",
            "properties": {
                "origin": {"type": "string"},
                "stops": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
                "avoid_tolls": {"type": "boolean"},
            },
            "required": ["origin", "stops", "avoid_tolls"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    embedder = ModelInfo(
        id=EMBED,
        name="embed",
        family="test",
        context_window=512,
        capabilities=Capabilities(chat=False, embeddings=True),
        constructor="",
        embedding_dimensions=256,
    )
    with LocalServer(api_key=KEY, models=[embedder]) as srv:
        yield srv


@pytest.fixture
def client(server: LocalServer) -> Iterator[openai.OpenAI]:
    server.faults.clear()
    with openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=10) as sdk:
        yield sdk


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and EMBED in ids


def test_chat_json_and_stream_agree(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=9, max_tokens=30)
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.completion_tokens <= 30
    pieces: list[str] = []
    usage = None
    with client.chat.completions.create(
        model=MODEL, messages=MESSAGES, seed=9, max_tokens=30, stream=True, stream_options={"include_usage": True}
    ) as stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None and usage.total_tokens == whole.usage.total_tokens


def test_embeddings_default_base64_and_float(client: openai.OpenAI) -> None:
    texts = ["the harbor at dawn", "a map of the harbor"]
    default = client.embeddings.create(model=EMBED, input=texts)  # the SDK asks for base64
    floats = client.embeddings.create(model=EMBED, input=texts, encoding_format="float")
    for a, b in zip(default.data, floats.data, strict=True):
        assert len(a.embedding) == 256
        assert a.embedding == pytest.approx(b.embedding, abs=1e-7)
        assert math.isclose(math.fsum(v * v for v in b.embedding), 1.0)
    short = client.embeddings.create(model=EMBED, input="x", dimensions=32, encoding_format="float")
    assert len(short.data[0].embedding) == 32


def test_forced_tool_call_and_streamed_arguments(client: openai.OpenAI) -> None:
    forced: Any = {"type": "function", "function": {"name": "find_route"}}
    whole = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[TOOL], tool_choice=forced)
    calls = whole.choices[0].message.tool_calls
    assert calls is not None and whole.choices[0].finish_reason == "tool_calls"
    call: Any = calls[0]
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, TOOL["function"]["parameters"])
    merged: dict[int, dict[str, str]] = {}
    with client.chat.completions.create(
        model=MODEL, messages=MESSAGES, tools=[TOOL], tool_choice=forced, stream=True
    ) as stream:
        for chunk in stream:
            for delta in chunk.choices[0].delta.tool_calls or []:
                entry = merged.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += delta.id or ""
                if delta.function is not None:
                    entry["name"] += delta.function.name or ""
                    entry["arguments"] += delta.function.arguments or ""
    assert merged[0]["id"] == call.id and merged[0]["name"] == "find_route"
    assert json.loads(merged[0]["arguments"]) == arguments


def test_json_schema_response_format(client: openai.OpenAI) -> None:
    schema = TOOL["function"]["parameters"]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        response_format={"type": "json_schema", "json_schema": {"name": "route", "schema": schema, "strict": True}},
    )
    content = reply.choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), schema)


def test_reasoning_field_survives_as_an_extra(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="openai/gpt-oss-20b", messages=MESSAGES, extra_body={"reasoning_effort": "low"}
    )
    extra = reply.choices[0].message.model_extra or {}
    assert extra.get("reasoning")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(429, kind="concurrency"), openai.RateLimitError),
        (Fault.status(500), openai.InternalServerError),
        (Fault.status(503, retry_after=1), openai.InternalServerError),
        (Fault.status(402), openai.APIStatusError),
        (Fault.status(403), openai.PermissionDeniedError),
        (Fault.html(502), openai.InternalServerError),
        (Fault.reset(), openai.APIConnectionError),
        (Fault.close(), openai.APIConnectionError),
    ],
)
def test_faults_map_to_openai_errors(
    server: LocalServer, client: openai.OpenAI, fault: Fault, error: type[Exception]
) -> None:
    server.faults.push(fault)
    with pytest.raises(error):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)


def test_server_errors_map_to_openai_errors(server: LocalServer, client: openai.OpenAI) -> None:
    with (
        openai.OpenAI(api_key="wrong", base_url=server.base_url, max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError, match="Authentication failed"),
    ):
        wrong.models.list()
    with pytest.raises(openai.NotFoundError, match="model not found"):
        client.chat.completions.create(model="no/such-model", messages=MESSAGES)
    with pytest.raises(openai.UnprocessableEntityError, match="temperature"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=5)
    with pytest.raises(openai.BadRequestError, match="not an embedding model"):
        client.embeddings.create(model=MODEL, input="x")


def test_stream_error_event_raises_in_the_openai_sdk(server: LocalServer, client: openai.OpenAI) -> None:
    server.faults.push(Fault.stream_error(after=2, message="backend failure"))
    with (
        pytest.raises(openai.APIError, match="backend failure"),
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream,
    ):
        for _ in stream:
            pass


def test_cut_stream_raises_a_connection_error_in_the_openai_sdk(server: LocalServer, client: openai.OpenAI) -> None:
    server.faults.push(Fault.cut_stream(after=2))
    received: list[object] = []

    def consume() -> None:
        with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
            received.extend(stream)

    with pytest.raises(openai.APIConnectionError):
        consume()
    assert len(received) == 2  # the chunks before the cut were delivered
