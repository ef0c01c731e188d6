"""The fast chunk parser builds exactly what the generated `from_dict` builds."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from _helpers import written
from hypothesis import given, settings
from hypothesis import strategies as st

from wandb_inference._types._chunk import ChatCompletionChunk, _token_chunk, parse_chunk
from wandb_inference._types._completion import ChatCompletion, parse_completion

text = st.text(max_size=20)
maybe_text = st.one_of(st.none(), text)
extra_keys = st.dictionaries(
    st.sampled_from(["x_vendor", "token_ids", "stop_reason", "meta"]),
    st.one_of(st.none(), st.integers(), text),
    max_size=2,
)


def generated_chunk(data: dict[str, Any]) -> ChatCompletionChunk:
    """What the generated `from_dict` builds (the facade's `from_dict` is `parse_chunk`)."""
    return super(ChatCompletionChunk, ChatCompletionChunk).from_dict(data)


def generated_completion(data: dict[str, Any]) -> ChatCompletion:
    """What the generated `from_dict` builds (the facade's `from_dict` is `parse_completion`)."""
    return super(ChatCompletion, ChatCompletion).from_dict(data)


def _optional(keys: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=keys)


# Logprobs: OpenAI's shape, `{"content": [{"token", "logprob", "bytes", "top_logprobs"}],
# "refusal": ...}`, at times with more keys (kept as sent). A token without `top_logprobs`
# is in test_result_types.py (the parsers fill in the documented empty list).
_logprob = st.floats(-100, 0, allow_nan=False)
_token_bytes = st.one_of(st.none(), st.lists(st.integers(0, 255), max_size=4))
top_logprob = st.fixed_dictionaries({"token": text, "logprob": _logprob, "bytes": _token_bytes})
token_logprob = st.fixed_dictionaries(
    {"token": text, "logprob": _logprob, "top_logprobs": st.lists(top_logprob, max_size=3)},
    optional={"bytes": _token_bytes},
)
logprobs = st.one_of(
    st.none(),
    st.builds(
        lambda base, extra: {**base, **extra},
        _optional(
            {
                "content": st.one_of(st.none(), st.lists(token_logprob, max_size=3)),
                "refusal": st.one_of(st.none(), st.lists(token_logprob, max_size=2)),
            }
        ),
        extra_keys,
    ),
)
function_delta = _optional({"name": maybe_text, "arguments": maybe_text})
tool_call_delta = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {"index": st.integers(0, 3)},
        optional={"id": maybe_text, "type": maybe_text, "function": st.one_of(st.none(), function_delta)},
    ),
    extra_keys,
)
delta = st.builds(
    lambda base, extra: {**base, **extra},
    _optional(
        {
            "role": maybe_text,
            "content": maybe_text,
            "reasoning": maybe_text,
            "reasoning_content": maybe_text,
            "refusal": maybe_text,
            "tool_calls": st.one_of(st.none(), st.lists(tool_call_delta, max_size=3)),
            "function_call": st.one_of(st.none(), function_delta),
        }
    ),
    extra_keys,
)
choice = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {"index": st.integers(0, 4), "delta": delta},
        optional={"finish_reason": maybe_text, "logprobs": logprobs},
    ),
    extra_keys,
)
_tokens = st.integers(0, 2**31)
_details_extra = st.dictionaries(st.sampled_from(["audio_tokens", "accepted_prediction_tokens"]), _tokens, max_size=2)


def _details(known: str) -> st.SearchStrategy[dict[str, Any] | None]:
    """`prompt_tokens_details` / `completion_tokens_details`: null, or the known count
    (null, or absent) with other counts servers add."""
    details = st.builds(
        lambda base, extra: {**base, **extra},
        _optional({known: st.one_of(st.none(), _tokens)}),
        _details_extra,
    )
    return st.one_of(st.none(), details)


usage = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        # A usage without `completion_tokens` is in test_result_types.py (it is derived).
        {"prompt_tokens": _tokens, "completion_tokens": _tokens, "total_tokens": _tokens},
        optional={
            "prompt_tokens_details": _details("cached_tokens"),
            "completion_tokens_details": _details("reasoning_tokens"),
        },
    ),
    st.dictionaries(st.sampled_from(["cost", "x_vendor"]), st.one_of(st.none(), _tokens, text), max_size=1),
)
chunk = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {"id": text, "created": st.integers(0, 2**40), "model": text, "choices": st.lists(choice, max_size=3)},
        optional={"object": text, "usage": st.one_of(st.none(), usage), "system_fingerprint": maybe_text},
    ),
    extra_keys,
)


@settings(max_examples=300)
@given(chunk)
def test_fast_parser_equals_generated_from_dict(data: dict[str, Any]) -> None:
    fast = parse_chunk(data)
    slow = generated_chunk(data)
    assert type(fast) is type(slow)
    assert fast == slow == ChatCompletionChunk.from_dict(data)
    assert fast.to_dict() == slow.to_dict() == written(data, "ChatCompletionChunk")


# The per-token shape `_token_chunk` builds without constructors, and its near misses.
token_delta = st.builds(
    lambda base, extra: {**base, **extra},
    _optional(
        {
            "role": maybe_text,
            "content": maybe_text,
            "reasoning": maybe_text,
            "reasoning_content": maybe_text,
            "refusal": maybe_text,
            "tool_calls": st.one_of(st.none(), st.just([])),
            "function_call": st.none(),
        }
    ),
    extra_keys,
)
token_chunk = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {
            "id": text,
            "created": st.integers(0, 2**40),
            "model": text,
            "choices": st.tuples(
                st.builds(
                    lambda base, extra: {**base, **extra},
                    st.fixed_dictionaries(
                        {"index": st.integers(0, 4), "delta": token_delta},
                        optional={"finish_reason": maybe_text, "logprobs": st.none()},
                    ),
                    extra_keys,
                )
            ).map(list),
        },
        optional={"object": text, "usage": st.none(), "system_fingerprint": maybe_text},
    ),
    extra_keys,
)


@settings(max_examples=300)
@given(token_chunk)
def test_token_fast_path_equals_generated_from_dict(data: dict[str, Any]) -> None:
    fast = _token_chunk(data)
    assert fast is not None  # the shape of nearly every chunk does take the fast path
    slow = generated_chunk(data)
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast.to_dict() == slow.to_dict() == written(data, "ChatCompletionChunk")
    assert fast.text == slow.text
    # Each object is complete: every slot set, as the constructor sets it.
    for made, built in (
        (fast, slow),
        (fast.choices[0], slow.choices[0]),
        (fast.choices[0].delta, slow.choices[0].delta),
    ):
        assert attrs.asdict(made, recurse=False) == attrs.asdict(built, recurse=False)


CHOICE: dict[str, Any] = {"index": 0, "delta": {"content": "x"}, "finish_reason": None}
BASE: dict[str, Any] = {
    "id": "c",
    "created": 1,
    "model": "m",
    "choices": [CHOICE],
}


@pytest.mark.parametrize(
    "change",
    [
        {"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}},
        {"choices": []},
        {"choices": [CHOICE, {**CHOICE, "index": 1}]},
        {"choices": [{**CHOICE, "logprobs": {"content": []}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "t"}]}}]},
        {"choices": [{"index": 0, "delta": {"function_call": {"name": "f"}}}]},
        {"choices": [{"delta": {"content": "x"}, "finish_reason": None}]},
        {"choices": ({"index": 0, "delta": {}},)},
        {"id": None, "created": None, "model": None},
    ],
)
def test_other_shapes_leave_the_fast_path(change: dict[str, Any]) -> None:
    data = {**BASE, **change}
    if change.get("id", "") is None:
        del data["id"], data["created"], data["model"]
    assert _token_chunk(data) is None
    choices = list(data["choices"])
    if choices and "index" not in choices[0]:
        with pytest.raises(KeyError):
            parse_chunk(data)
        return
    # The general path still builds what from_dict builds (with the missing-id defaults).
    expected = generated_chunk({"id": "", "created": 0, "model": "", **data, "choices": choices})
    assert parse_chunk({**data, "choices": choices}) == expected


@pytest.mark.parametrize(
    "delta",
    [
        {"content": "x", "tool_calls": "x"},
        {"tool_calls": [{"index": 0, "function": "f"}]},
        {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}], "function_call": "f"},
    ],
)
def test_parts_of_another_shape_are_refused(delta: dict[str, Any]) -> None:
    """Not kept as sent behind a typed attribute (the generated `from_dict` would)."""
    with pytest.raises(TypeError):
        parse_chunk({**BASE, "choices": [{"index": 0, "delta": delta}]})
    message = {"role": "assistant", **delta, "tool_calls": delta["tool_calls"]}
    if isinstance(message["tool_calls"], list):
        message["tool_calls"] = [{"id": "c", "type": "function", **call} for call in message["tool_calls"]]
    with pytest.raises((TypeError, ValueError, AttributeError)):
        parse_completion({**BASE, "choices": [{"index": 0, "message": message}]})


def test_missing_ids_are_tolerated() -> None:
    parsed = parse_chunk({"choices": [{"index": 0, "delta": {"content": "x"}}]})
    assert parsed.text == "x" and parsed.id == "" and parsed.created == 0


function_call = st.fixed_dictionaries({"name": text, "arguments": text})
tool_call = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries({"id": text, "type": text, "function": function_call}),
    extra_keys,
)
message = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {"role": text},
        optional={
            "content": maybe_text,
            "reasoning": maybe_text,
            "reasoning_content": maybe_text,
            "refusal": maybe_text,
            "tool_calls": st.one_of(st.none(), st.lists(tool_call, max_size=3)),
            "function_call": st.one_of(st.none(), function_call),
        },
    ),
    extra_keys,
)
completion_choice = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {"index": st.integers(0, 4), "message": message},
        optional={"finish_reason": maybe_text, "logprobs": logprobs},
    ),
    extra_keys,
)
completion = st.builds(
    lambda base, extra: {**base, **extra},
    st.fixed_dictionaries(
        {
            "id": text,
            "created": st.integers(0, 2**40),
            "model": text,
            "choices": st.lists(completion_choice, max_size=3),
        },
        optional={"object": text, "usage": st.one_of(st.none(), usage), "system_fingerprint": maybe_text},
    ),
    extra_keys,
)


@settings(max_examples=300)
@given(completion)
def test_fast_completion_parser_equals_generated_from_dict(data: dict[str, Any]) -> None:
    fast = parse_completion(data)
    slow = generated_completion(data)
    assert type(fast) is type(slow)
    assert fast == slow == ChatCompletion.from_dict(data)
    assert fast.to_dict() == slow.to_dict() == written(data, "ChatCompletion")
