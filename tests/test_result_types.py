"""Result types carry the values the API documents, never a sentinel (README "Typed results").

An optional field a reply leaves out reads as None, exactly like one sent as null; lists
are lists; `embedding` is a list of floats; the counts the API documents are ints. The
static side (the types mypy sees) is tests/typing/check_results.py.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import struct
from collections.abc import Callable
from typing import Any, cast

import attrs
import httpx
import pytest
from _helpers import MESSAGES, MODEL, json_response, sse
from conftest import Either
from wandb_inference_generated.models.token_logprob import TokenLogprob
from wandb_inference_generated.models.usage import Usage

import wandb_inference as wi
from wandb_inference._streaming._accumulate import ChatCompletionAccumulator
from wandb_inference._types._chunk import parse_chunk
from wandb_inference._types._completion import parse_completion

MakeClient = Callable[..., Either]

# The smallest replies the API allows: every optional field left out.
BARE_COMPLETION: dict[str, Any] = {
    "id": "c",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant"}}],
}
BARE_CHUNK: dict[str, Any] = {"id": "c", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {}}]}
BARE_MODELS: dict[str, Any] = {"data": [{"id": "a/b", "created": 5, "owned_by": "a"}]}
BARE_EMBEDDINGS: dict[str, Any] = {"model": "e", "data": [{"index": 0, "embedding": [0.5, 0.25]}]}

_JSON_VALUES = (str, int, float, bool, list, dict, type(None))


def sentinels(value: object, path: str = "result") -> list[str]:
    """Every place under `value` (attrs fields, lists, dicts) holding anything but a JSON
    value or an attrs model: where a sentinel such as the generator's `UNSET` would hide."""
    found: list[str] = []
    if attrs.has(type(value)):
        for field in attrs.fields(cast(Any, type(value))):
            if not field.name.startswith("_"):
                found += sentinels(getattr(value, field.name), f"{path}.{field.name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += sentinels(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += sentinels(item, f"{path}[{key!r}]")
    elif not isinstance(value, _JSON_VALUES):
        found.append(f"{path}: {type(value).__name__}")
    return found


def test_the_walk_finds_a_sentinel() -> None:
    """The check below can fail: a value that is not JSON is reported with its path."""
    reply = parse_completion(BARE_COMPLETION)
    reply.choices[0].message.content = object()  # type: ignore[assignment]
    assert sentinels(reply) == ["result.choices[0].message.content: object"]


def test_absent_optional_fields_of_a_completion_read_none() -> None:
    for reply in (parse_completion(BARE_COMPLETION), wi.ChatCompletion.from_dict(BARE_COMPLETION)):
        message = reply.choices[0].message
        assert (message.content, message.reasoning, message.reasoning_content, message.refusal) == (None,) * 4
        assert (message.tool_calls, message.function_call) == (None, None)
        assert (reply.choices[0].finish_reason, reply.choices[0].logprobs) == (None, None)
        assert (reply.usage, reply.system_fingerprint, reply.object_) == (None, None, None)
        assert sentinels(reply) == []
        assert (reply.text, reply.reasoning) == ("", None)


@pytest.mark.parametrize(
    "data",
    [
        BARE_CHUNK,  # the general path
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {"content": "x"}}]},  # the per-token fast path
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {"reasoning": "r"}}]},  # the text-delta fast path
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0}]}}]},
    ],
)
def test_absent_optional_fields_of_a_chunk_read_none(data: dict[str, Any]) -> None:
    for chunk in (parse_chunk(data), wi.ChatCompletionChunk.from_dict(data)):
        choice = chunk.choices[0]
        delta = choice.delta
        assert delta.role is None and delta.function_call is None and delta.refusal is None
        assert (choice.finish_reason, choice.logprobs, chunk.usage, chunk.system_fingerprint) == (None,) * 4
        assert sentinels(chunk) == []
        if delta.tool_calls:
            call = delta.tool_calls[0]
            assert (call.id, call.type_, call.function) == (None, None, None)


def test_null_and_absent_read_the_same_and_to_dict_leaves_both_out() -> None:
    nulls = {
        **BARE_COMPLETION,
        "usage": None,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "reasoning": None, "tool_calls": None},
                "finish_reason": None,
                "logprobs": None,
                "stop_reason": None,  # not in the document: kept as sent, null and all
            }
        ],
    }
    reply = parse_completion(nulls)
    bare = parse_completion(BARE_COMPLETION)
    bare.choices[0].additional_properties["stop_reason"] = None
    assert reply == bare
    assert reply.to_dict() == {
        "id": "c",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant"}, "stop_reason": None}],
    }
    assert wi.ChatCompletion.from_dict(reply.to_dict()) == reply


def test_a_stream_completion_has_no_sentinel() -> None:
    acc = ChatCompletionAccumulator()
    acc.add({**BARE_CHUNK, "choices": [{"index": 0, "delta": {"content": "x"}}]})
    completion = acc.completion()
    assert sentinels(completion) == []
    message = completion.choices[0].message
    assert (message.reasoning, message.tool_calls, completion.usage, completion.system_fingerprint) == (None,) * 4


def test_copies_and_pickles_of_results_stay_equal() -> None:
    """No sentinel identity to keep: a process pool's copy is the same result."""
    results: list[Any] = [
        parse_completion(BARE_COMPLETION),
        parse_chunk(BARE_CHUNK),
        wi.ModelList.from_dict(BARE_MODELS),
        wi.EmbeddingResponse.from_dict(BARE_EMBEDDINGS),
    ]
    for result in results:
        for clone in (pickle.loads(pickle.dumps(result)), copy.copy(result), copy.deepcopy(result)):
            assert clone == result and type(clone) is type(result)
            assert json.dumps(clone.to_dict()) == json.dumps(result.to_dict())


# --------------------------------------------------------------------------- the counts


def test_usage_without_completion_tokens_derives_them() -> None:
    """The API documents all three counts: `completion_tokens` left out (or null) is
    `total - prompt`, so it is an int in a completion, a chunk and a stream's completion."""
    usage = {"prompt_tokens": 7, "total_tokens": 10}
    reply = parse_completion({**BARE_COMPLETION, "usage": usage})
    chunk = parse_chunk({**BARE_CHUNK, "choices": [], "usage": {**usage, "completion_tokens": None}})
    acc = ChatCompletionAccumulator()
    acc.add({**BARE_CHUNK, "choices": [], "usage": usage})
    for got in (reply.usage, chunk.usage, acc.completion().usage):
        assert isinstance(got, Usage)
        assert (got.prompt_tokens, got.completion_tokens, got.total_tokens) == (7, 3, 10)
    sent = parse_completion({**BARE_COMPLETION, "usage": {**usage, "completion_tokens": 2}})
    assert sent.usage is not None and sent.usage.completion_tokens == 2  # as sent, even if odd


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},  # the short path
        {"total_tokens": 10, "prompt_tokens": 7, "completion_tokens": 3},  # keys in another order
        {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 2}},
        {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10, "billed": 1},  # unknown: kept
    ],
)
def test_a_parsed_usage_is_what_the_generated_model_makes(usage: dict[str, Any]) -> None:
    """The three counts alone are built without `Usage.from_dict` (a per-call saving);
    every shape gives the object `from_dict` gives, extra fields included."""
    reply = parse_completion({**BARE_COMPLETION, "usage": dict(usage)})
    assert reply.usage == Usage.from_dict(dict(usage))
    assert reply.usage is not None and reply.usage.to_dict() == usage


@pytest.mark.parametrize("usage", [{"total_tokens": 3}, "lots", [1, 2]])
async def test_a_usage_without_the_documented_counts_is_a_clear_error(make_client: MakeClient, usage: Any) -> None:
    """Not kept as the raw value the generated code would leave behind a typed attribute."""
    client = make_client(lambda request: json_response(200, {**BARE_COMPLETION, "usage": usage}))
    with pytest.raises(wi.APIResponseValidationError, match="not a valid ChatCompletion"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


async def test_a_chunk_with_a_usage_of_another_shape_is_a_stream_error(make_client: MakeClient) -> None:
    body = sse(
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {"content": "Hi"}}]},
        {**BARE_CHUNK, "choices": [], "usage": {"prompt_tokens": 1}},
    )
    client = make_client(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    with pytest.raises(wi.StreamError) as caught:
        await client.collect(stream)
    assert caught.value.text == "Hi"
    assert caught.value.partial is not None and caught.value.partial.usage is None  # the bad part is skipped


def test_models_without_created_or_owned_by_read_zero_and_empty() -> None:
    listed = wi.ModelList.from_dict({"data": [{"id": "x"}, {"id": "y", "created": None, "owned_by": "me"}]})
    assert [(m.id, m.created, m.owned_by) for m in listed] == [("x", 0, ""), ("y", 0, "me")]
    assert all(type(m) is wi.Model for m in listed.data)
    assert sentinels(listed) == []


async def test_models_list_items_are_typed(make_client: MakeClient) -> None:
    body = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "meta-llama"}]}
    client = make_client(lambda request: json_response(200, body))
    models = await client.call("models.list")
    assert [m.owned_by for m in models] == ["meta-llama"]
    assert type(models.data[0]) is wi.Model and models.data[0].info is not None
    assert models.data[0].root is None


# --------------------------------------------------------------------------- embeddings


async def test_embedding_is_a_list_of_floats(make_client: MakeClient) -> None:
    """The SDK asks for base64 and decodes it: `.embedding` is floats either way."""
    packed = base64.b64encode(struct.pack("<3f", 0.5, -0.25, 1.0)).decode()
    body = {"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0, "embedding": packed}]}
    client = make_client(lambda request: json_response(200, body))
    reply = await client.call("embeddings.create", model="BAAI/bge-m3", input="x")
    item = reply.data[0]
    assert type(item) is wi.EmbeddingData
    assert item.embedding == [0.5, -0.25, 1.0] and all(type(x) is float for x in item.embedding)
    assert reply.embeddings == [item.embedding]
    assert reply.usage is None  # a server that sends no usage
    # `from_dict` on a raw reply decodes too, and gives the same items.
    assert wi.EmbeddingResponse.from_dict(body).data == reply.data


@pytest.mark.parametrize("embedding", [None, 3, {"x": 1}])
async def test_an_embedding_that_is_not_a_vector_is_a_clear_error(make_client: MakeClient, embedding: Any) -> None:
    body = {"model": "e", "data": [{"index": 0, "embedding": embedding}]}
    client = make_client(lambda request: json_response(200, body))
    with pytest.raises(wi.APIResponseValidationError, match="not a valid EmbeddingResponse"):
        await client.call("embeddings.create", model="BAAI/bge-m3", input="x")


# --------------------------------------------------------------------------- logprobs


def test_logprobs_are_typed_and_top_logprobs_a_list() -> None:
    token = {"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}  # no top_logprobs: a few servers
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": {"content": [token]}}
    reply = parse_completion({**BARE_COMPLETION, "choices": [choice]})
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and logprobs.refusal is None
    [first] = logprobs.content
    assert type(first) is TokenLogprob
    assert (first.token, first.logprob, first.bytes_, first.top_logprobs) == ("Hi", -0.5, [72, 105], [])
    delta_choice = {"index": 0, "delta": {"content": "Hi"}, "logprobs": {"content": [{**token, "top_logprobs": None}]}}
    chunk = parse_chunk({**BARE_CHUNK, "choices": [delta_choice]})
    assert chunk.choices[0].logprobs is not None
    assert chunk.choices[0].logprobs.content is not None
    assert chunk.choices[0].logprobs.content[0].top_logprobs == []


@pytest.mark.parametrize(
    "logprobs",
    [
        {"content": [{"logprob": -1.0}]},
        {"content": "abc"},
        {"refusal": [{"token": "x", "logprob": -1, "top_logprobs": [{}]}]},
        "not an object",
    ],
)
async def test_logprobs_of_another_shape_are_a_clear_error(make_client: MakeClient, logprobs: Any) -> None:
    """Not kept as the raw dicts the generated code would leave behind a typed attribute."""
    choice = {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "logprobs": logprobs}
    client = make_client(lambda request: json_response(200, {**BARE_COMPLETION, "choices": [choice]}))
    with pytest.raises(wi.APIResponseValidationError, match=r"logprobs are (not of the documented shape|an object)"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)


async def test_a_streamed_reply_reads_the_same(make_client: MakeClient) -> None:
    body = sse(
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {**BARE_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**BARE_CHUNK, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
    )
    client = make_client(
        lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    )
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    chunks = await client.collect(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["Hi", None]
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, "stop"]
    assert all(sentinels(c) == [] for c in chunks)
    completion = stream.completion
    assert completion.choices[0].message.content == "Hi" and completion.choices[0].message.tool_calls is None
    assert completion.usage is not None and completion.usage.total_tokens == 2
