"""Tool calling helpers: definitions from functions, arguments, results, running calls."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import enum
import functools
import gc
import json
from collections.abc import Callable
from typing import Any, Literal

import attrs
import httpx
import pytest
from _helpers import API_KEY, BASE_URL, completion_body, json_response
from wandb_inference_generated.models.chat_completion_message import ChatCompletionMessage
from wandb_inference_generated.models.tool_call import ToolCall

import wandb_inference as wi
from wandb_inference._helpers import (
    ToolCallLike,
    arun_tool_calls,
    function_tool,
    parse_tool_arguments,
    run_tool_calls,
    tool_result_message,
)
from wandb_inference._request import build_chat_body


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclasses.dataclass
class Place:
    city: str
    country: str = "FR"


@attrs.frozen
class Report:
    place: Place
    degrees: float
    unit: Unit


def get_weather(place: Place, unit: Unit = Unit.C, days: int = 1, note: str | None = None) -> Report:
    """The current weather somewhere.

    Looks it up in a table.

    Args:
        place: where to look,
            a city and its country.
        unit: the temperature unit.
        days (int): how many days ahead.

    Returns:
        The report.
    """
    return Report(place=place, degrees=21.5 if unit is Unit.C else 70.7, unit=unit)


def no_args() -> str:
    return "pong"


def explode(reason: str) -> None:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


def add(a: int, b: int) -> int:
    return a + b


async def slow_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def async_explode() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("async boom")


def _call(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _content(message: dict[str, Any]) -> Any:
    return json.loads(message["content"])


# --------------------------------------------------------------------------- definitions


def test_function_tool_from_a_documented_function() -> None:
    tool = function_tool(get_weather)
    assert tool["type"] == "function"
    function = tool["function"]
    assert function["name"] == "get_weather"
    assert function["description"] == "The current weather somewhere.\n\nLooks it up in a table."
    params = function["parameters"]
    assert params["type"] == "object" and params["additionalProperties"] is False
    assert params["required"] == ["place"]
    assert params["properties"] == {
        "place": {"$ref": "#/$defs/Place"},
        "unit": {
            "type": "string",
            "enum": ["celsius", "fahrenheit"],
            "description": "the temperature unit.",
            "default": "celsius",
        },
        "days": {"type": "integer", "description": "how many days ahead.", "default": 1},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    }
    assert params["$defs"]["Place"]["required"] == ["city"]


def test_function_tool_shapes() -> None:
    assert function_tool(no_args) == {
        "type": "function",
        "function": {
            "name": "no_args",
            "parameters": {"type": "object", "properties": {}, "required": [], "additionalProperties": False},
        },
    }

    def kw(*args: int, a: int, **rest: str) -> None:
        pass

    params = function_tool(kw)["function"]["parameters"]
    assert params["properties"] == {"a": {"type": "integer"}}
    assert params["additionalProperties"] is True  # **kwargs accepts more

    def untyped(x, y=2):  # type: ignore[no-untyped-def]
        pass

    assert function_tool(untyped)["function"]["parameters"]["properties"] == {"x": {}, "y": {"default": 2}}

    def pos(a: int, /, b: int = 1) -> None:
        pass

    with pytest.raises(wi.InvalidRequestError, match="positional-only parameter 'a'"):
        function_tool(pos)

    def pos_default(a: int = 0, /, b: int = 1) -> None:
        pass

    assert list(function_tool(pos_default)["function"]["parameters"]["properties"]) == ["b"]


def odd_docstring(x: int, y: int = 0) -> None:
    """Does things.

    Args:
        see the notes below, which are not an entry
        x: the x.
        y: the y,
            continued.

    Example:
        odd_docstring(1)
    """


def test_docstring_sections() -> None:
    function = function_tool(odd_docstring)["function"]
    assert function["description"] == "Does things."
    props = function["parameters"]["properties"]
    assert props["x"]["description"] == "the x."
    assert props["y"]["description"] == "the y, continued."


def test_function_tool_options_and_names() -> None:
    tool = function_tool(add, name="adder", description="Adds.", strict=True)
    assert tool["function"]["name"] == "adder"
    assert tool["function"]["description"] == "Adds."
    assert tool["function"]["strict"] is True
    with pytest.raises(wi.InvalidRequestError, match="pass name="):
        function_tool(lambda x: x)
    assert function_tool(lambda x: x, name="identity")["function"]["name"] == "identity"
    with pytest.raises(wi.InvalidRequestError, match="1-64 letters"):
        function_tool(add, name="has space")


def test_function_tool_from_methods_partials_callables_and_classes() -> None:
    class Calculator:
        def mul(self, a: int, b: int = 2) -> int:
            """Multiplies."""
            return a * b

        def __call__(self, text: str) -> str:
            return text

    calc = Calculator()
    method = function_tool(calc.mul)["function"]
    assert method["name"] == "mul" and method["description"] == "Multiplies."
    assert method["parameters"]["required"] == ["a"]
    partial = function_tool(functools.partial(add, 1), name="inc")["function"]["parameters"]
    assert partial["properties"] == {"b": {"type": "integer"}}
    call = function_tool(calc, name="echo")["function"]["parameters"]
    assert call["properties"] == {"text": {"type": "string"}}
    record = function_tool(Place)["function"]
    assert record["name"] == "Place" and "description" not in record
    assert record["parameters"]["required"] == ["city"]
    assert function_tool(Report)["function"]["parameters"]["$defs"].keys() == {"Place"}


def test_function_tool_from_schemas() -> None:
    params = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert function_tool(params, name="search", description="Searches.") == {
        "type": "function",
        "function": {"name": "search", "parameters": params, "description": "Searches."},
    }
    with pytest.raises(wi.InvalidRequestError, match="needs name="):
        function_tool(params)
    definition = {"name": "search", "description": "Searches.", "parameters": params}
    assert function_tool(definition) == {"type": "function", "function": definition}
    whole = {"type": "function", "function": definition}
    copied = function_tool(whole, name="find")
    assert copied["function"]["name"] == "find" and definition["name"] == "search"  # a copy
    copied["function"]["parameters"]["required"].append("x")
    assert params["required"] == ["q"]
    with pytest.raises(wi.InvalidRequestError, match="not JSON-serializable"):
        function_tool({"name": "f", "parameters": {"default": object()}})
    with pytest.raises(wi.InvalidRequestError, match="takes a function, a class or a schema dict"):
        function_tool(42)  # type: ignore[arg-type]
    with pytest.raises(wi.InvalidRequestError, match="1-64 letters"):
        function_tool({"description": "no name", "parameters": {}})


def test_unsupported_annotations_are_refused() -> None:
    def when(day: dt.date) -> None:
        pass

    with pytest.raises(wi.InvalidRequestError, match=r"when\(day\): no JSON schema"):
        function_tool(when)


def test_tools_pass_the_request_validation() -> None:
    tools = [function_tool(get_weather), function_tool(no_args)]
    body = build_chat_body("m", [{"role": "user", "content": "hi"}], False, {"tools": tools})
    assert body["tools"] == tools


# --------------------------------------------------------------------------- results and arguments


def test_tool_result_message_encodes_results() -> None:
    assert tool_result_message("c1", "plain text") == {"role": "tool", "tool_call_id": "c1", "content": "plain text"}
    assert _content(tool_result_message("c1", {"a": [1, 2], "é": None})) == {"a": [1, 2], "é": None}
    assert "é" in tool_result_message("c1", {"é": 1})["content"]  # not escaped
    report = Report(place=Place("Paris"), degrees=1.5, unit=Unit.F)
    assert _content(tool_result_message("c1", report)) == {
        "place": {"city": "Paris", "country": "FR"},
        "degrees": 1.5,
        "unit": "fahrenheit",
    }
    assert _content(tool_result_message("c1", {3})) == [3]
    assert _content(tool_result_message("c1", dt.date(2026, 1, 2))) == "2026-01-02"
    assert _content(tool_result_message("c1", ToolCall.from_dict(_call("f", "{}")))) == _call("f", "{}")
    assert _content(tool_result_message("c1", None)) is None
    with pytest.raises(wi.InvalidRequestError, match="cannot send the tool result as JSON"):
        tool_result_message("c1", object())
    with pytest.raises(wi.InvalidRequestError, match="tool_call_id must be a str"):
        tool_result_message(1, "x")  # type: ignore[arg-type]


def test_parse_tool_arguments_of_dicts_and_generated_calls() -> None:
    assert parse_tool_arguments(_call("f", '{"a": 1}')) == {"a": 1}
    assert parse_tool_arguments(ToolCall.from_dict(_call("f", '{"a": [1]}'))) == {"a": [1]}
    assert parse_tool_arguments({"name": "f", "arguments": '{"b": 2}'}) == {"b": 2}  # legacy function_call
    for empty in ("", "  ", "null", None):
        assert parse_tool_arguments(_call("f", empty)) == {}
    assert parse_tool_arguments(_call("f", {"already": "parsed"})) == {"already": "parsed"}
    assert parse_tool_arguments(_call("f", json.dumps('{"twice": true}'))) == {"twice": True}


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ('{"a": ', r"tool call 'call_1' \(f\) are not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"just text"', "not valid JSON"),
        (42, "are int, not JSON text"),
    ],
)
def test_parse_tool_arguments_errors_keep_the_text(arguments: Any, match: str) -> None:
    with pytest.raises(wi.APIResponseValidationError, match=match) as info:
        parse_tool_arguments(_call("f", arguments))
    assert info.value.body == arguments


def test_parse_tool_arguments_refuses_non_calls() -> None:
    for bad in ({"id": "x"}, {"function": {"arguments": "{}"}}, object(), "f"):
        with pytest.raises(wi.InvalidRequestError, match="not a tool call"):
            parse_tool_arguments(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- running calls


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "get_weather": get_weather,
    "no_args": no_args,
    "explode": explode,
    "add": add,
}


def test_run_tool_calls_answers_each_call_in_order() -> None:
    calls: list[ToolCallLike] = [
        _call("get_weather", '{"place": {"city": "Paris"}, "unit": "fahrenheit"}', "c1"),
        ToolCall.from_dict(_call("no_args", "", "c2")),
        _call("add", '{"a": 2, "b": 3.0}', "c3"),
    ]
    messages = run_tool_calls(calls, FUNCTIONS)
    assert [m["tool_call_id"] for m in messages] == ["c1", "c2", "c3"]
    assert all(m["role"] == "tool" for m in messages)
    # Arguments were converted to the annotated types: a Place, a Unit, an int.
    assert _content(messages[0]) == {"place": {"city": "Paris", "country": "FR"}, "degrees": 70.7, "unit": "fahrenheit"}
    assert messages[1]["content"] == "pong"
    assert messages[2]["content"] == "5"
    assert run_tool_calls(None, FUNCTIONS) == []
    no_calls = ChatCompletionMessage.from_dict({"role": "assistant", "content": "hi"}).tool_calls
    assert run_tool_calls(no_calls, FUNCTIONS) == []  # `message.tool_calls` of a reply without calls
    assert run_tool_calls([], FUNCTIONS) == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (_call("nope", "{}"), "unknown function 'nope'; the functions are: add, explode, get_weather, no_args"),
        (
            _call("add", '{"a": 1'),
            "invalid arguments for add: the arguments of tool call 'call_1' (add) are not valid JSON",
        ),
        (_call("add", '{"a": 1}'), "invalid arguments for add: missing a required argument: 'b'"),
        (_call("add", '{"a": 1, "b": 2, "c": 3}'), "invalid arguments for add: got an unexpected keyword argument 'c'"),
        (_call("add", '{"a": "one", "b": 2}'), 'invalid arguments for add: at a: expected an integer, got "one"'),
        (_call("get_weather", '{"place": {"country": "FR"}}'), "at place: missing required key 'city' of Place"),
        (_call("get_weather", '{"place": {"city": "x"}, "unit": "kelvin"}'), "at unit: expected one of"),
        (_call("explode", '{"reason": "why"}'), "explode failed: ValueError: boom: why"),
    ],
)
def test_problems_become_error_messages_for_the_model(call: dict[str, Any], error: str) -> None:
    (message,) = run_tool_calls([call], FUNCTIONS)
    assert message["role"] == "tool" and message["tool_call_id"] == "call_1"
    content = _content(message)
    assert list(content) == ["error"]
    assert content["error"].startswith(error) or error in content["error"]
    assert "Traceback" not in message["content"]


def test_raise_errors_reraises_the_functions_own_exceptions() -> None:
    with pytest.raises(ValueError, match="boom: now"):
        run_tool_calls([_call("explode", '{"reason": "now"}')], FUNCTIONS, raise_errors=True)
    # The model's own mistakes still become messages.
    (message,) = run_tool_calls([_call("nope", "{}")], FUNCTIONS, raise_errors=True)
    assert "unknown function" in message["content"]


def test_unencodable_results() -> None:
    def bad() -> object:
        return object()

    (message,) = run_tool_calls([_call("bad", "{}")], {"bad": bad})
    assert "bad failed: InvalidRequestError: cannot send the tool result as JSON" in _content(message)["error"]
    with pytest.raises(wi.InvalidRequestError, match="cannot send the tool result"):
        run_tool_calls([_call("bad", "{}")], {"bad": bad}, raise_errors=True)


def test_async_function_in_the_sync_runner_is_refused_without_leaking_a_coroutine() -> None:
    with pytest.raises(wi.InvalidRequestError, match=r"slow_add\(\) is async: use `await arun_tool_calls"):
        run_tool_calls([_call("slow_add", '{"a": 1, "b": 2}')], {"slow_add": slow_add})
    gc.collect()  # an unawaited coroutine would warn here (warnings are errors)


def test_annotations_the_sdk_cannot_check_pass_through() -> None:
    def stamp(day: dt.date, raw: Any, n: int = 0) -> str:
        return f"{day!r} {raw!r} {n}"

    (message,) = run_tool_calls([_call("stamp", '{"day": "2026-01-01", "raw": [1], "n": 3}')], {"stamp": stamp})
    assert message["content"] == "'2026-01-01' [1] 3"
    # Builtins without a signature: the call itself decides.
    (message,) = run_tool_calls([_call("max", '{"obj": [1, 2]}')], {"max": max})
    assert "max failed: TypeError" in message["content"]
    (message,) = run_tool_calls([_call("dict", '{"a": 1}')], {"dict": dict})
    assert _content(message) == {"a": 1}


async def test_arun_tool_calls_awaits_coroutines_and_runs_sync_functions() -> None:
    calls: list[ToolCallLike] = [
        _call("slow_add", '{"a": 1, "b": 2}', "c1"),
        _call("add", '{"a": 3, "b": 4}', "c2"),
        _call("async_explode", "{}", "c3"),
        _call("nope", "{}", "c4"),
        ToolCall.from_dict(_call("explode", '{"reason": "sync"}', "c5")),
    ]
    functions: dict[str, Callable[..., Any]] = {
        "slow_add": slow_add,
        "add": add,
        "async_explode": async_explode,
        "explode": explode,
    }
    messages = await arun_tool_calls(calls, functions)
    assert [m["tool_call_id"] for m in messages] == ["c1", "c2", "c3", "c4", "c5"]
    assert messages[0]["content"] == "3" and messages[1]["content"] == "7"
    assert _content(messages[2]) == {"error": "async_explode failed: RuntimeError: async boom"}
    assert "unknown function 'nope'" in _content(messages[3])["error"]
    assert _content(messages[4]) == {"error": "explode failed: ValueError: boom: sync"}
    assert await arun_tool_calls(None, functions) == []
    with pytest.raises(RuntimeError, match="async boom"):
        await arun_tool_calls([_call("async_explode", "{}")], functions, raise_errors=True)

    async def unencodable() -> object:
        return object()

    (message,) = await arun_tool_calls([_call("u", "{}")], {"u": unencodable})
    assert "cannot send the tool result as JSON" in message["content"]


async def test_arun_tool_calls_lets_cancellation_through() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await arun_tool_calls([_call("cancelled", "{}")], {"cancelled": cancelled})


def test_round_trip_through_the_client() -> None:
    """A reply asking for tools, the calls run, the answers sent back and accepted."""
    sent: list[dict[str, Any]] = []
    tool_calls = [
        _call("get_weather", '{"place": {"city": "Oslo", "country": "NO"}}', "call_a"),
        _call("add", '{"a": 1, "b": 1}', "call_b"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        body = completion_body("")
        if len(sent) == 1:
            body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": tool_calls}
            body["choices"][0]["finish_reason"] = "tool_calls"
        else:
            body["choices"][0]["message"]["content"] = "It is 21.5 C in Oslo."
        return json_response(200, body)

    tools = [function_tool(get_weather), function_tool(add)]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Oslo?"}]
    with wi.Client(
        API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    ) as client:
        reply = client.chat.create(model="m", messages=messages, tools=tools)
        message = reply.choices[0].message
        assert isinstance(message.tool_calls, list)
        messages.append({"role": "assistant", "content": None, "tool_calls": [c.to_dict() for c in message.tool_calls]})
        messages += run_tool_calls(message.tool_calls, FUNCTIONS)
        final = client.chat.create(model="m", messages=messages, tools=tools)
    assert final.text == "It is 21.5 C in Oslo."
    assert sent[0]["tools"] == tools
    answers = sent[1]["messages"][2:]
    assert [a["tool_call_id"] for a in answers] == ["call_a", "call_b"]
    assert json.loads(answers[0]["content"])["place"] == {"city": "Oslo", "country": "NO"}
    assert answers[1]["content"] == "2"


def test_literal_and_nested_list_arguments_are_converted() -> None:
    def plan(stops: list[Place], mode: Literal["car", "bike"] = "car") -> str:
        return ",".join(f"{p.city}/{p.country}" for p in stops) + f" by {mode}"

    calls = [_call("plan", '{"stops": [{"city": "A"}, {"city": "B", "country": "DE"}], "mode": "bike"}')]
    assert run_tool_calls(calls, {"plan": plan})[0]["content"] == "A/FR,B/DE by bike"
    (message,) = run_tool_calls([_call("plan", '{"stops": [], "mode": "boat"}')], {"plan": plan})
    assert "at mode: expected one of ['car', 'bike']" in message["content"]
