"""The chunk accumulator: content, reasoning, tool calls, choices, usage, odd input."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from _helpers import written
from hypothesis import given, settings
from hypothesis import strategies as st
from wandb_inference_generated.models.chat_completion import ChatCompletion as GeneratedCompletion
from wandb_inference_generated.models.function_call import FunctionCall
from wandb_inference_generated.models.usage import Usage

from wandb_inference._streaming._accumulate import ChatCompletionAccumulator
from wandb_inference._types._completion import ChatCompletion

USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def chunk(*choices: Any, **top: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "m",
        "choices": list(choices),
    }
    base.update(top)
    return base


def choice(index: int = 0, finish_reason: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish_reason}


def accumulate(*chunks: Any) -> ChatCompletionAccumulator:
    acc = ChatCompletionAccumulator()
    for item in chunks:
        acc.add(item)
    return acc


def message(acc: ChatCompletionAccumulator, index: int = 0) -> dict[str, Any]:
    choices = acc.to_dict()["choices"]
    found = [c for c in choices if c["index"] == index]
    assert len(found) == 1, choices
    return cast(dict[str, Any], found[0]["message"])


def tool_delta(index: int | None, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {} if index is None else {"index": index}
    function = {k: fields.pop(k) for k in ("name", "arguments") if k in fields}
    if function:
        item["function"] = function
    item.update(fields)
    return item


# --------------------------------------------------------------------------- content


def test_content_is_joined_in_order() -> None:
    acc = accumulate(
        chunk(choice(role="assistant", content="")),
        chunk(choice(content="Hel")),
        chunk(choice(content="lo")),
        chunk(choice(content=" world", finish_reason="stop")),
    )
    assert acc.text == "Hello world"
    assert acc.chunks == 4
    assert acc.has_data
    completion = acc.completion()
    assert isinstance(completion, GeneratedCompletion)
    assert completion.id == "chatcmpl-1"
    assert completion.object_ == "chat.completion"
    assert completion.created == 1_760_000_000
    assert completion.model == "m"
    [only] = completion.choices
    assert only.index == 0
    assert only.finish_reason == "stop"
    assert only.message.role == "assistant"
    assert only.message.content == "Hello world"
    assert only.message.tool_calls is None
    assert only.message.reasoning is None
    assert only.message.reasoning_content is None
    assert only.logprobs is None


def test_text_so_far_then_more() -> None:
    # Reading `text` compacts the pieces; later pieces must still be appended.
    acc = accumulate(chunk(choice(content="a")), chunk(choice(content="b")))
    assert acc.text == "ab"
    acc.add(chunk(choice(content="c")))
    assert acc.text == "abc"
    assert acc.completion().choices[0].message.content == "abc"
    acc.add(chunk(choice(content="d")))
    assert acc.completion().choices[0].message.content == "abcd"


def test_role_defaults_to_assistant_and_content_to_none() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, id="call_1", name="f", arguments="{}")])),
        chunk(choice(finish_reason="tool_calls")),
    )
    msg = message(acc)
    assert msg["role"] == "assistant"
    assert msg["content"] is None
    assert acc.text == ""
    assert acc.completion().choices[0].message.content is None


def test_first_role_wins() -> None:
    acc = accumulate(chunk(choice(role="tool", content="x")), chunk(choice(role="assistant")))
    assert message(acc)["role"] == "tool"


def test_refusal_pieces() -> None:
    acc = accumulate(chunk(choice(refusal="I can")), chunk(choice(refusal="not.", content=None)))
    msg = message(acc)
    assert msg["refusal"] == "I cannot."
    assert msg["content"] is None


def test_finish_reason_is_the_last_non_null() -> None:
    acc = accumulate(
        chunk(choice(content="a")),
        chunk(choice(finish_reason="length")),
        chunk(choice(finish_reason="stop")),
        chunk(choice(content="")),  # null finish_reason does not erase it
    )
    assert acc.completion().choices[0].finish_reason == "stop"


def test_chunks_without_finish_reason_key() -> None:
    # LiteLLM omits finish_reason and logprobs entirely on content chunks.
    acc = accumulate(chunk({"index": 0, "delta": {"content": "hi"}}))
    completion = acc.completion()
    assert completion.choices[0].message.content == "hi"
    assert completion.choices[0].finish_reason is None


# --------------------------------------------------------------------------- reasoning


def test_reasoning_field() -> None:
    acc = accumulate(
        chunk(choice(role="assistant", reasoning="Let me ")),
        chunk(choice(reasoning="think.", content=None)),
        chunk(choice(content="42")),
    )
    assert acc.reasoning == "Let me think."
    msg = message(acc)
    assert msg["reasoning"] == "Let me think."
    assert "reasoning_content" not in msg
    assert msg["content"] == "42"


def test_legacy_reasoning_content_field() -> None:
    acc = accumulate(
        chunk(choice(reasoning_content="Hmm", reasoning=None)),
        chunk(choice(reasoning_content=", yes.")),
        chunk(choice(content="Yes")),
    )
    assert acc.reasoning == "Hmm, yes."
    msg = message(acc)
    assert msg["reasoning_content"] == "Hmm, yes."
    assert "reasoning" not in msg
    completion = ChatCompletion.from_dict(acc.completion().to_dict())
    assert completion.reasoning == "Hmm, yes."
    assert completion.text == "Yes"


def test_both_reasoning_fields_are_kept_and_reasoning_wins() -> None:
    # Some servers sent the same text in both fields while renaming it.
    acc = accumulate(
        chunk(choice(reasoning="a", reasoning_content="a")),
        chunk(choice(reasoning="b", reasoning_content="b")),
    )
    msg = message(acc)
    assert (msg["reasoning"], msg["reasoning_content"]) == ("ab", "ab")
    assert acc.reasoning == "ab"
    acc = accumulate(chunk(choice(reasoning="", reasoning_content="only here")))
    assert acc.reasoning == "only here"


def test_reasoning_empty_when_none() -> None:
    acc = accumulate(chunk(choice(content="x", reasoning=None, reasoning_content=None)))
    assert acc.reasoning == ""
    assert "reasoning" not in message(acc)
    assert "reasoning_content" not in message(acc)
    assert ChatCompletionAccumulator().reasoning == ""


# --------------------------------------------------------------------------- tool calls


def test_tool_call_in_pieces_with_repeated_id_and_name() -> None:
    acc = accumulate(
        chunk(choice(role="assistant", content=None)),
        chunk(choice(tool_calls=[tool_delta(0, id="call_a", type="function", name="get_weather", arguments="")])),
        chunk(choice(tool_calls=[tool_delta(0, id="call_a", type="function", name="get_weather", arguments='{"ci')])),
        chunk(choice(tool_calls=[tool_delta(0, id="call_a", name="get_weather", arguments='ty": "Par')])),
        chunk(choice(tool_calls=[tool_delta(0, arguments='is"}')])),
        chunk(choice(finish_reason="tool_calls")),
    )
    calls = message(acc)["tool_calls"]
    assert calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    typed = acc.completion().choices[0].message.tool_calls
    assert isinstance(typed, list)
    assert typed[0].function.name == "get_weather"
    assert acc.completion().choices[0].finish_reason == "tool_calls"


def test_type_defaults_to_function_only_when_there_are_calls() -> None:
    acc = accumulate(chunk(choice(tool_calls=[tool_delta(0, id="c", name="f", arguments="{}")])))
    assert message(acc)["tool_calls"][0]["type"] == "function"
    assert "tool_calls" not in message(accumulate(chunk(choice(content="x", tool_calls=[]))))
    assert "tool_calls" not in message(accumulate(chunk(choice(content="x", tool_calls=None))))


def test_several_tool_calls_interleaved() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, id="c0", type="function", name="a", arguments="")])),
        chunk(choice(tool_calls=[tool_delta(1, id="c1", type="function", name="b", arguments="")])),
        chunk(choice(tool_calls=[tool_delta(0, arguments='{"x":')])),
        chunk(choice(tool_calls=[tool_delta(1, arguments='{"y":')])),
        chunk(choice(tool_calls=[tool_delta(1, arguments="2}"), tool_delta(0, arguments="1}")])),
    )
    calls = message(acc)["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("c0", "a", '{"x":1}'),
        ("c1", "b", '{"y":2}'),
    ]


def test_tool_calls_are_ordered_by_index() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(1, id="second", name="b", arguments="{}")])),
        chunk(choice(tool_calls=[tool_delta(0, id="first", name="a", arguments="{}")])),
    )
    assert [c["id"] for c in message(acc)["tool_calls"]] == ["first", "second"]


def test_a_new_id_at_a_used_index_is_a_new_call() -> None:
    # Some servers send every parallel call at index 0, each whole or with its id first.
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, id="c1", name="a", arguments='{"n":')])),
        chunk(choice(tool_calls=[tool_delta(0, arguments="1}")])),
        chunk(choice(tool_calls=[tool_delta(0, id="c2", name="b", arguments='{"n":')])),
        chunk(choice(tool_calls=[tool_delta(0, arguments="2}")])),
    )
    calls = message(acc)["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("c1", "a", '{"n":1}'),
        ("c2", "b", '{"n":2}'),
    ]


def test_tool_deltas_without_index() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(None, id="x", name="a", arguments="{")])),
        chunk(choice(tool_calls=[tool_delta(None, arguments="}")])),  # joins the last call
        chunk(choice(tool_calls=[tool_delta(None, id="y", name="b", arguments="[")])),  # new id
        chunk(choice(tool_calls=[tool_delta(None, id="x", arguments=" ")])),  # back to x by id
        chunk(choice(tool_calls=[tool_delta(None, arguments="]")])),
    )
    calls = message(acc)["tool_calls"]
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [("x", "{} "), ("y", "[]")]
    acc = accumulate(chunk(choice(tool_calls=[tool_delta(None, arguments="{}")])))
    assert message(acc)["tool_calls"] == [{"id": "", "type": "function", "function": {"name": "", "arguments": "{}"}}]


def test_tool_call_name_pieces_and_cumulative_repeats() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, id="c", name="get_")])),
        chunk(choice(tool_calls=[tool_delta(0, name="weather")])),
        chunk(choice(tool_calls=[tool_delta(0, name="get_weather", arguments="{}")])),
    )
    assert message(acc)["tool_calls"][0]["function"]["name"] == "get_weather"
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, name="get")])),
        chunk(choice(tool_calls=[tool_delta(0, name="get_time")])),
    )
    assert message(acc)["tool_calls"][0]["function"]["name"] == "get_time"


def test_first_type_is_kept() -> None:
    acc = accumulate(
        chunk(choice(tool_calls=[tool_delta(0, id="c", type="custom", name="f")])),
        chunk(choice(tool_calls=[tool_delta(0, type="function", arguments="{}")])),
    )
    assert message(acc)["tool_calls"][0]["type"] == "custom"


def test_parsed_arguments_become_json_text() -> None:
    acc = accumulate(chunk(choice(tool_calls=[tool_delta(0, id="c", name="f", arguments={"a": 1})])))
    assert json.loads(message(acc)["tool_calls"][0]["function"]["arguments"]) == {"a": 1}
    # Not JSON-able (never from json.loads, but add() takes any mapping): skipped.
    acc = accumulate(chunk(choice(tool_calls=[tool_delta(0, id="c", arguments={"a": {1, 2}})])))
    assert message(acc)["tool_calls"][0]["function"]["arguments"] == ""


def test_legacy_function_call() -> None:
    acc = accumulate(
        chunk(choice(role="assistant", function_call={"name": "lookup", "arguments": ""})),
        chunk(choice(function_call={"arguments": '{"q": '})),
        chunk(choice(function_call={"name": "lookup", "arguments": '"x"}'})),
        chunk(choice(function_call={"name": "lookup"})),
        chunk(choice(finish_reason="function_call")),
    )
    msg = message(acc)
    assert msg["function_call"] == {"name": "lookup", "arguments": '{"q": "x"}'}
    assert "tool_calls" not in msg
    fc = acc.completion().choices[0].message.function_call
    assert isinstance(fc, FunctionCall)
    assert fc.arguments == '{"q": "x"}'


# --------------------------------------------------------------------------- choices, usage


def test_several_choices() -> None:
    acc = accumulate(
        chunk(choice(0, role="assistant", content=""), choice(1, role="assistant", content="")),
        chunk(choice(1, content="B1")),
        chunk(choice(0, content="A1")),
        chunk(choice(0, content="A2"), choice(1, content="B2")),
        chunk(choice(1, finish_reason="length")),
        chunk(choice(0, finish_reason="stop")),
    )
    completion = acc.completion()
    assert [(c.index, c.message.content, c.finish_reason) for c in completion.choices] == [
        (0, "A1A2", "stop"),
        (1, "B1B2", "length"),
    ]
    assert acc.text == "A1A2"


def test_choices_are_ordered_by_index() -> None:
    acc = accumulate(chunk(choice(2, content="c")), chunk(choice(0, content="a")))
    assert [c.index for c in acc.completion().choices] == [0, 2]


def test_missing_or_null_choice_index_means_zero() -> None:
    acc = accumulate(
        chunk({"delta": {"content": "a"}}),
        chunk({"index": None, "delta": {"content": "b"}}),
        chunk(choice(0, content="c")),
    )
    assert [(c.index, c.message.content) for c in acc.completion().choices] == [(0, "abc")]


def test_usage_only_final_chunk() -> None:
    acc = accumulate(
        chunk(choice(content="hi", finish_reason="stop")),
        chunk(usage=USAGE),  # choices: []
    )
    completion = acc.completion()
    assert isinstance(completion.usage, Usage)
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (7, 10)
    assert len(completion.choices) == 1
    assert acc.chunks == 2


def test_litellm_usage_chunk_with_one_empty_choice() -> None:
    litellm_usage = chunk({"index": 0, "delta": {}, "finish_reason": None}, usage=USAGE)
    acc = accumulate(chunk(choice(content="hi", finish_reason="stop")), litellm_usage)
    completion = acc.completion()
    assert [(c.message.content, c.finish_reason) for c in completion.choices] == [("hi", "stop")]
    assert isinstance(completion.usage, Usage)
    assert completion.usage.completion_tokens == 3
    # An otherwise empty stream gets no phantom choice from it.
    acc = accumulate(litellm_usage)
    assert acc.completion().choices == []
    assert isinstance(acc.completion().usage, Usage)


def test_usage_last_non_null_wins() -> None:
    later = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
    acc = accumulate(
        chunk(choice(content="a"), usage=USAGE),
        chunk(choice(content="b"), usage=None),
        chunk(usage=later),
        chunk(choice(content="c"), usage=None),
    )
    assert acc.to_dict()["usage"] == later


def test_no_usage_means_no_usage_key() -> None:
    acc = accumulate(chunk(choice(content="a")))
    assert "usage" not in acc.to_dict()
    assert acc.completion().usage is None


def test_stream_fields_first_seen() -> None:
    acc = accumulate(
        chunk(id=None, model=None, created=None, system_fingerprint=None),
        chunk(choice(content="a"), id="first", model="alias", created="soon", system_fingerprint="fp1"),
        chunk(choice(content="b"), id="second", model="other", created=5, system_fingerprint="fp2"),
        chunk(choice(content="c"), created=6),
    )
    out = acc.to_dict()
    assert (out["id"], out["model"], out["created"], out["system_fingerprint"]) == (
        "first",
        "alias",
        5,
        "fp1",
    )


def test_created_is_kept_while_model_is_still_missing() -> None:
    acc = accumulate(chunk(model=None, created=1), chunk(model="late", created=2))
    assert (acc.to_dict()["model"], acc.to_dict()["created"]) == ("late", 1)


def test_empty_accumulator() -> None:
    acc = ChatCompletionAccumulator()
    assert not acc.has_data
    assert acc.chunks == 0
    assert acc.text == ""
    completion = acc.completion()
    assert (completion.id, completion.model, completion.created, completion.choices) == (
        "",
        "",
        0,
        [],
    )
    assert completion.system_fingerprint is None


# --------------------------------------------------------------------------- unknown fields


def test_unknown_fields_survive_the_round_trip() -> None:
    acc = accumulate(
        chunk(
            {"index": 0, "delta": {"role": "assistant", "x_note": "a"}, "token_ids": [1]},
            service_tier="default",
            prompt_token_ids=None,
        ),
        chunk(
            {
                "index": 0,
                "delta": {"content": "hi", "x_note": "b", "x_ids": [1]},
                "stop_reason": None,
            },
            service_tier="other",
        ),
        chunk(
            {
                "index": 0,
                "delta": {"x_ids": [2], "x_obj": {"k": 1}},
                "finish_reason": "stop",
                "stop_reason": "</s>",
                "token_ids": [2],
            }
        ),
    )
    completion = acc.completion()
    assert completion["service_tier"] == "default"  # chunk level: first non-null
    assert "prompt_token_ids" not in completion
    first = completion.choices[0]
    assert first["stop_reason"] == "</s>"  # choice level: last non-null
    assert first["token_ids"] == [2]
    msg = first.message
    assert msg["x_note"] == "ab"  # delta level: strings are pieces
    assert msg["x_ids"] == [1, 2]  # lists are extended
    assert msg["x_obj"] == {"k": 1}
    # The generated models keep them through to_dict / from_dict.
    data = completion.to_dict()
    assert data == acc.to_dict()
    again = GeneratedCompletion.from_dict(data)
    assert again == completion
    assert again.to_dict() == data
    facade = ChatCompletion.from_dict(data)
    assert facade.text == "hi"
    assert facade.choices[0].message["x_note"] == "ab"


def test_completion_round_trips_with_everything() -> None:
    acc = accumulate(
        chunk(choice(role="assistant", reasoning="r"), system_fingerprint="fp"),
        chunk(choice(content="c", refusal="no")),
        chunk(choice(tool_calls=[tool_delta(0, id="t", name="f", arguments="{}")])),
        chunk(choice(1, content="other", finish_reason="stop")),
        chunk(usage={**USAGE, "prompt_tokens_details": {"cached_tokens": 2}}),
    )
    # Written out by hand: what a non-streamed reply with the same content would be.
    expected: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_760_000_000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "c",
                    "reasoning": "r",
                    "refusal": "no",
                    "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": None,
            },
            {"index": 1, "message": {"role": "assistant", "content": "other"}, "finish_reason": "stop"},
        ],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
        "system_fingerprint": "fp",
    }
    assert acc.to_dict() == expected
    completion = acc.completion()
    del expected["choices"][0]["finish_reason"]  # None: to_dict leaves it out, as absent
    assert completion.to_dict() == expected
    assert completion == GeneratedCompletion.from_dict(expected)
    assert isinstance(completion.usage, Usage)
    assert completion.usage.to_dict()["prompt_tokens_details"] == {"cached_tokens": 2}


# --------------------------------------------------------------------------- odd input


def test_garbage_is_skipped_and_good_data_kept() -> None:
    acc = ChatCompletionAccumulator()
    garbage: list[Any] = [
        None,
        "data",
        42,
        [1, 2],
        {},
        {"choices": None},
        {"choices": "abc"},
        {"choices": {"index": 0}},
        {"choices": [None, 1, "x", [], {"delta": None}, {"index": 0}]},
        {"choices": [{"index": "0", "delta": {"content": "bad index"}}]},
        {"choices": [{"index": True, "delta": {"content": "bool index"}}]},
        {"choices": [{"index": 0, "delta": "not a dict", "finish_reason": 3}]},
        {"choices": [{"index": 0, "delta": {"content": 5, "reasoning": 1, "refusal": []}}]},
        {"choices": [{"index": 0, "delta": {"role": 1, "tool_calls": "x", "function_call": "y"}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [None, 3, {"index": 0, "function": "x"}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": [0], "id": 5, "type": 1}]}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"name": 1, "arguments": 2}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {"function_call": {"name": None, "arguments": None}}}]},
        {"usage": "lots"},
        {"usage": {"prompt_tokens": "x"}},
        {"id": 5, "model": [], "created": "now", "system_fingerprint": 1, "object": None},
    ]
    acc.add(chunk(choice(content="kept ")))
    for item in garbage:
        acc.add(item)
    acc.add(chunk(choice(content="too", finish_reason="stop")))
    assert acc.text == "kept too"
    assert acc.chunks == 2 + sum(isinstance(g, Mapping) for g in garbage)
    completion = acc.completion()  # must not raise
    assert completion.choices[0].message.content == "kept too"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.id == "chatcmpl-1"
    assert completion.to_dict() == acc.to_dict()
    assert [c.index for c in completion.choices] == [0]
    assert "tool_calls" not in message(acc)  # no call had anything usable


def test_non_object_chunks_are_not_counted() -> None:
    acc = ChatCompletionAccumulator()
    acc.add(cast(Mapping[str, Any], ["not", "a", "chunk"]))
    acc.add(cast(Mapping[str, Any], None))
    assert acc.chunks == 0
    assert not acc.has_data


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "index",
                    "delta",
                    "content",
                    "reasoning",
                    "reasoning_content",
                    "refusal",
                    "role",
                    "tool_calls",
                    "function",
                    "function_call",
                    "name",
                    "arguments",
                    "id",
                    "type",
                    "choices",
                    "usage",
                    "finish_reason",
                    "message",
                    "logprobs",
                    "model",
                    "created",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(chunks=st.lists(_JSON, max_size=8))
def test_any_json_never_crashes(chunks: list[Any]) -> None:
    acc = ChatCompletionAccumulator()
    for item in chunks:
        acc.add(item)
    assert isinstance(acc.text, str)
    assert isinstance(acc.reasoning, str)
    completion = acc.completion()
    assert completion.to_dict() == written(acc.to_dict(), "ChatCompletion")  # its nulls left out


@settings(max_examples=200)
@given(pieces=st.lists(st.tuples(st.integers(0, 2), st.text(max_size=5)), max_size=30))
def test_content_per_choice_equals_the_concatenation(pieces: list[tuple[int, str]]) -> None:
    acc = ChatCompletionAccumulator()
    for i, (index, text) in enumerate(pieces):
        acc.add(chunk(choice(index, content=text)))
        if i % 3 == 0:
            _ = acc.text  # reading mid-stream must not disturb what follows
    got = {c.index: c.message.content for c in acc.completion().choices}
    expected: dict[int, str] = {}
    for index, text in pieces:
        expected[index] = expected.get(index, "") + text
    assert got == expected
    assert acc.text == expected.get(0, "")
