"""Properties of request building: valid calls make spec-valid bodies; invalid ones one typed error.

For any valid parameter set, `build_chat_body` (and `build_embeddings_body`) must give a
body that (1) says what the caller asked, (2) validates against the OpenAPI schema and
(3) round-trips through the generated model unchanged. For any invalid value, the call
must raise `InvalidRequestError` (never a `TypeError`, `OverflowError`, `UnicodeError`...)
and send nothing; junk of any shape must not crash the validation either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import httpx
import jsonschema
import pytest
from _helpers import load_spec, written
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wandb_inference_generated.models.chat_completion_request import ChatCompletionRequest
from wandb_inference_generated.models.embedding_request import EmbeddingRequest

import wandb_inference as wi
from wandb_inference._request import build_chat_body, build_embeddings_body, build_options

# Not in the catalog: the capability check has nothing to say about it.
MODEL = "test-org/unlisted-model"


def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": load_spec()["components"]}
    return jsonschema.Draft202012Validator(schema)


CHAT_SCHEMA = _validator("ChatCompletionRequest")
EMBEDDING_SCHEMA = _validator("EmbeddingRequest")

# --------------------------------------------------------------------------- valid values

text = st.text(max_size=12)
name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
json_scalar = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False) | text
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_object = st.dictionaries(text, json_value, max_size=4)

text_part = st.builds(lambda t: {"type": "text", "text": t}, text)
image_url = st.fixed_dictionaries(
    {"url": st.sampled_from(["https://img.test/cat.png", "data:image/png;base64,iVBORw0KGgo="])},
    optional={"detail": st.sampled_from(["auto", "low", "high"])},
)
image_part = st.builds(lambda u: {"type": "image_url", "image_url": u}, image_url)
tool_call = st.builds(
    lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}}, text, name, text
)

system_message = st.fixed_dictionaries(
    {"role": st.just("system"), "content": text | st.lists(text_part, max_size=2)}, optional={"name": name}
)
user_message = st.fixed_dictionaries(
    {"role": st.just("user"), "content": text | st.lists(text_part | image_part, min_size=1, max_size=3)},
    optional={"name": name},
)
assistant_text = st.fixed_dictionaries(
    {"role": st.just("assistant"), "content": text | st.lists(text_part, max_size=2)},
    optional={"name": name, "reasoning": st.none() | text},
)
assistant_tool_calls = st.fixed_dictionaries(
    {
        "role": st.just("assistant"),
        "content": st.none() | text,
        "tool_calls": st.lists(tool_call, min_size=1, max_size=2),
    }
)
tool_message = st.fixed_dictionaries(
    {"role": st.just("tool"), "content": text | st.lists(text_part, max_size=2), "tool_call_id": text}
)
messages = st.lists(
    system_message | user_message | assistant_text | assistant_tool_calls | tool_message, min_size=1, max_size=5
)

function_definition = st.fixed_dictionaries(
    {"name": name},
    optional={
        "description": text,
        "parameters": st.just({"type": "object", "properties": {}}) | json_object,
        "strict": st.none() | st.booleans(),
    },
)
tool = st.builds(lambda f: {"type": "function", "function": f}, function_definition)
named_tool_choice = st.builds(lambda n: {"type": "function", "function": {"name": n}}, name)
response_format = (
    st.just({"type": "json_object"})
    | st.just({"type": "text"})
    | st.builds(
        lambda spec: {"type": "json_schema", "json_schema": spec},
        st.fixed_dictionaries(
            {"name": name},
            optional={"schema": json_object, "strict": st.none() | st.booleans(), "description": text},
        ),
    )
)


def number(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high) | st.integers(math.ceil(low), math.floor(high))


# logit_bias keys may be ints or digit strings; the body always has strings.
logit_bias = st.dictionaries(st.integers(0, 200_000), number(-100, 100), max_size=4).flatmap(
    lambda biases: st.tuples(*[st.sampled_from([k, str(k)]) for k in biases]).map(
        lambda keys: dict(zip(keys, biases.values(), strict=True))
    )
)

CHAT_PARAMS: dict[str, st.SearchStrategy[Any]] = {
    "max_tokens": st.integers(1, 2**31),
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "n": st.integers(1, 128),
    "stop": st.text(min_size=1, max_size=5) | st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4),
    "seed": st.integers(-(2**63), 2**64 - 1),
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "logit_bias": logit_bias,
    "response_format": response_format,
    "tools": st.lists(tool, max_size=3),
    "tool_choice": st.sampled_from(["none", "auto", "required"]) | named_tool_choice,
    "parallel_tool_calls": st.booleans(),
    "functions": st.lists(function_definition, max_size=3),
    "function_call": st.sampled_from(["none", "auto"]) | st.builds(lambda n: {"name": n}, name),
    "chat_template_kwargs": st.fixed_dictionaries(
        {}, optional={"enable_thinking": st.booleans(), "custom": json_value}
    ),
    "cache_salt": st.text(min_size=1, max_size=10),
    "reasoning_effort": st.sampled_from(["low", "medium", "high"]),
    "user": st.text(min_size=1, max_size=10),
}


@st.composite
def chat_calls(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]], bool, dict[str, Any]]:
    """A valid `chat.create` call: model, messages, stream and a random subset of parameters."""
    keys = draw(st.sets(st.sampled_from(sorted(CHAT_PARAMS))))
    params = {key: draw(CHAT_PARAMS[key]) for key in sorted(keys)}
    stream = draw(st.booleans())
    if stream and draw(st.booleans()):
        params["stream_options"] = draw(st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}))
    # A parameter given as None is "not sent".
    params.update(dict.fromkeys(draw(st.sets(st.sampled_from(sorted(CHAT_PARAMS)), max_size=2)) - keys))
    model = draw(st.sampled_from([MODEL, "wandb-artifact:///team/proj/lora:v3"]) | st.text(min_size=1))
    return model, draw(messages), stream, params


def expected_value(key: str, value: Any) -> Any:
    """What the body must hold for a parameter given as `value`."""
    if key == "logit_bias":
        return {str(k): v for k, v in value.items()}
    return value


@settings(max_examples=300, deadline=None)
@given(chat_calls())
def test_valid_chat_calls_build_spec_valid_bodies_that_round_trip(
    call: tuple[str, list[dict[str, Any]], bool, dict[str, Any]],
) -> None:
    model, msgs, stream, params = call
    body = build_chat_body(model, msgs, stream, params)
    # What was asked is what is sent: nothing dropped, renamed or defaulted.
    sent = {k: expected_value(k, v) for k, v in params.items() if v is not None}
    assert body == {"model": model, "messages": msgs, **sent, **({"stream": True} if stream else {})}
    errors = [e.message for e in CHAT_SCHEMA.iter_errors(body)]
    assert errors == []
    # A generated model's to_dict leaves out optional nulls (an assistant's `content: null`).
    assert ChatCompletionRequest.from_dict(body).to_dict() == written(body, "ChatCompletionRequest")


@settings(max_examples=150, deadline=None)
@given(
    model=st.text(min_size=1, max_size=20),
    input=st.text(min_size=1, max_size=10) | st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4),
    params=st.fixed_dictionaries(
        {},
        optional={
            "encoding_format": st.sampled_from(["float", "base64", None]),
            "dimensions": st.none() | st.integers(1, 2**31),
            "user": st.none() | st.text(min_size=1, max_size=10),
        },
    ),
)
def test_valid_embeddings_calls_build_spec_valid_bodies_that_round_trip(
    model: str, input: str | list[str], params: dict[str, Any]
) -> None:
    body = build_embeddings_body(model, input, params)
    sent = {k: v for k, v in params.items() if v is not None}
    assert body == {"model": model, "input": input, "encoding_format": "base64", **sent}
    assert [e.message for e in EMBEDDING_SCHEMA.iter_errors(body)] == []
    assert EmbeddingRequest.from_dict(body).to_dict() == body


# --------------------------------------------------------------------------- invalid values

NAN, INF = math.nan, math.inf
HUGE = 10**400  # an int no float can hold
NOT_NUMBERS = [True, False, "1", 1j, [1], {"x": 1}, b"1"]

# parameter -> values that must be refused (None is not among them: None means "not sent").
INVALID: dict[str, list[Any]] = {
    "max_tokens": [0, -1, 1.5, 1.0, NAN, HUGE * -1, *NOT_NUMBERS],
    "temperature": [-0.01, 2.01, NAN, INF, -INF, HUGE, -HUGE, *NOT_NUMBERS],
    "top_p": [-1e-9, 1.0000001, NAN, INF, HUGE, *NOT_NUMBERS],
    "n": [0, 129, 2.0, NAN, *NOT_NUMBERS],
    "stop": ["", [], [""], ["a", ""], ["a"] * 5, [1], ["a", None], 5, b"x", {"a": 1}, [b"x"]],
    "seed": [2**64, -(2**63) - 1, 1.0, NAN, *NOT_NUMBERS],
    "presence_penalty": [2.5, -2.01, NAN, INF, HUGE, *NOT_NUMBERS],
    "frequency_penalty": [-3, 2.0001, -NAN, -INF, -HUGE, *NOT_NUMBERS],
    "logit_bias": [
        {"abc": 1},
        {"-1": 1},
        {"1.5": 1},
        {"1": 100.5},
        {"1": NAN},
        {"1": INF},
        {"1": HUGE},
        {"1": True},
        {"1": "2"},
        [("1", 1)],
        "x",
    ],
    "response_format": [
        {"type": "yaml"},
        {"type": ["json_object"]},
        {},
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"schema": {}}},
        {"type": "json_schema", "json_schema": {"name": 5}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": "not a dict"}},
        "json_object",
        5,
    ],
    "tools": [
        "f",
        {"type": "function"},
        [{"type": "function"}],
        [{"type": "retrieval", "function": {"name": "f"}}],
        [{"type": "function", "function": {"name": 5}}],
        [{"type": "function", "function": {"name": "f", "parameters": "x"}}],
        [5],
        [["f"]],
    ],
    "tool_choice": ["sometimes", "", {"type": "function"}, {"type": "function", "function": {"name": 5}}, 5, []],
    "parallel_tool_calls": ["yes", 1, 0],
    "functions": ["f", [{"description": "no name"}], [{"name": "f", "parameters": [1]}], [None]],
    "function_call": ["required", "", {"nam": "f"}, {"name": None}, 3, ["auto"]],
    "stream_options": ["x", 5, [("include_usage", True)]],
    "chat_template_kwargs": ["x", 5, [("enable_thinking", False)]],
    "cache_salt": ["", 5, b"x", ["x"]],
    "reasoning_effort": ["max", "", "LOW", 1, ["low"], {"low": 1}],
    "user": ["", 5, b"x"],
    "extra_body": ["x", [("k", 1)], 5],
    "extra_headers": [
        "x",
        {"X-A": "v\r\nInjected: 1"},
        {"X-A": "v\x00"},
        {"X-A": "caf\u00e9"},
        {"X A": "v"},
        {"": "v"},
        {"X-A": 5},
        {5: "v"},
    ],
    "extra_query": ["x", 5],
    "timeout": [0, -1, NAN, INF, HUGE, True, "5", [5]],
    "bogus_parameter": [1],
}

INVALID_MESSAGES: list[Any] = [
    [],
    "hi",
    None,
    b"hi",
    {"role": "user", "content": "hi"},
    [5],
    [None],
    [{"content": "no role"}],
    [{"role": "robot", "content": "x"}],
    [{"role": ["user"], "content": "x"}],
    [{"role": {"r": 1}, "content": "x"}],
    [{"role": "user"}],
    [{"role": "user", "content": 5}],
    [{"role": "user", "content": b"bytes"}],
    [{"role": "user", "content": [{"type": "audio"}]}],
    [{"role": "user", "content": [{"type": ["text"], "text": "x"}]}],
    [{"role": "user", "content": [{"type": "text", "text": 5}]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
    [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x.test/a.png"}]}],
    [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
    [{"role": "assistant", "content": None}],
    [{"role": "tool", "content": "x"}],
    [{"role": "tool", "content": "x", "tool_call_id": 5}],
    [{"role": "user", "content": "ok"}, {"role": "user", "content": None}],
]


def _all_invalid() -> list[tuple[str, Any]]:
    cases = [(key, value) for key, values in INVALID.items() for value in values]
    cases.append(("stream_options", {"include_usage": True}))  # without stream=True
    cases += [("messages", value) for value in INVALID_MESSAGES]
    cases += [("model", value) for value in ["", None, 5, b"m", ["m"]]]
    cases += [("stream", value) for value in ["yes", 1, None, [True]]]
    return cases


@st.composite
def invalid_chat_calls(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid call with exactly one argument replaced by an invalid value; and its name."""
    model, msgs, stream, params = draw(chat_calls())
    params.pop("stream_options", None)
    key, value = draw(st.sampled_from(_all_invalid()))
    call: dict[str, Any] = {"model": model, "messages": msgs, "stream": stream, **params}
    call[key] = value
    if key == "stream_options" and isinstance(value, dict):
        call["stream"] = False  # valid options, but only allowed with stream=True
    return call, key


@contextmanager
def recording_client() -> Iterator[tuple[wi.Client, list[httpx.Request]]]:
    """A client whose transport records what it is asked to send (it should be asked nothing)."""
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    with (
        httpx.Client(transport=httpx.MockTransport(record)) as http,
        wi.Client("sk-test", base_url="https://inference.test/v1", http_client=http, max_retries=0) as client,
    ):
        yield client, sent


# What the error message must contain to name the argument at fault (default: its name).
_NEEDLES: Mapping[str, tuple[str, ...]] = {
    "extra_headers": ("eader",),
    "bogus_parameter": ("bogus_parameter",),
    "stream_options": ("stream_options",),
    "messages": ("messages",),
}


def _refusal_problem(call: dict[str, Any], key: str) -> str | None:
    """None if `chat.create(**call)` raises a plain InvalidRequestError naming `key` and sends nothing."""
    with recording_client() as (client, sent):
        try:
            client.chat.create(**call)
        except wi.InvalidRequestError as exc:
            if type(exc) is not wi.InvalidRequestError:
                return f"raised {type(exc).__name__}, a subclass"
            if not any(needle in str(exc) for needle in _NEEDLES.get(key, (key,))):
                return f"the message does not name {key}: {exc}"
        except Exception as exc:  # the property: never anything else
            return f"raised {type(exc).__name__}: {exc}"
        else:
            return "was accepted"
    return f"sent {len(sent)} request(s)" if sent else None


def test_every_listed_invalid_argument_is_refused() -> None:
    """Each invalid value above, alone in an otherwise minimal valid call."""
    base: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    problems = []
    for key, value in _all_invalid():
        problem = _refusal_problem({**base, key: value}, key)
        if problem is not None:
            problems.append(f"{key}={value!r}: {problem}")
    assert problems == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invalid_chat_calls())
def test_invalid_arguments_in_any_valid_call_are_refused(case: tuple[dict[str, Any], str]) -> None:
    """The same, with the invalid value among random valid parameters and messages."""
    call, key = case
    assert _refusal_problem(call, key) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("input", ""),
        ("input", []),
        ("input", [""]),
        ("input", ["a", 1]),
        ("input", 5),
        ("input", b"x"),
        ("input", None),
        ("input", [["a"]]),
        ("model", ""),
        ("model", None),
        ("encoding_format", "int8"),
        ("encoding_format", ["float"]),
        ("dimensions", 0),
        ("dimensions", True),
        ("dimensions", 1.5),
        ("dimensions", HUGE * -1),
        ("user", ""),
        ("user", 5),
        ("timeout", HUGE),
        ("extra_headers", {"X-A": "\r\n"}),
        ("bogus_parameter", 1),
    ],
    ids=lambda value: repr(value)[:20],
)
def test_invalid_embeddings_arguments_raise_invalid_request_error(key: str, value: Any) -> None:
    call: dict[str, Any] = {"model": "BAAI/bge-m3", "input": ["a", "b"], "encoding_format": "float"}
    call[key] = value
    with recording_client() as (client, sent), pytest.raises(wi.InvalidRequestError) as info:
        client.embeddings.create(**call)
    assert key.split("_")[-1] in str(info.value) or "eader" in str(info.value)
    assert sent == []


# --------------------------------------------------------------------------- junk never crashes

_keys = st.sampled_from(["type", "function", "name", "text", "image_url", "url", "role", "content", "json_schema"])
junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([HUGE, -HUGE, 2**64])
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=3)
    | st.sampled_from(["auto", "none", "function", "text", "image_url", "user", "tool", "json_schema", "1"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(_keys | st.integers(-2, 2), inner, max_size=3)
    ),
    max_leaves=10,
)
junk_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool"]) | junk},
    optional={"content": junk, "tool_calls": junk, "tool_call_id": junk},
)
_ALL_KEYS = sorted({*CHAT_PARAMS, *INVALID, "stream_options"})


def _build_or_refuse(build: Callable[[], object]) -> None:
    with suppress(wi.InvalidRequestError):
        build()


@settings(max_examples=400, deadline=None)
@given(
    params=st.dictionaries(st.sampled_from(_ALL_KEYS), junk, max_size=3),
    msgs=junk | st.lists(junk_message, min_size=1, max_size=2),
    stream=junk,
    model=junk,
)
def test_junk_arguments_never_raise_anything_but_invalid_request_error(
    params: dict[str, Any], msgs: Any, stream: Any, model: Any
) -> None:
    _build_or_refuse(lambda: build_chat_body(MODEL, msgs, False, params))
    _build_or_refuse(lambda: build_chat_body(model, [{"role": "user", "content": "x"}], stream, params))
    _build_or_refuse(lambda: build_embeddings_body(model, msgs, params))
    _build_or_refuse(lambda: build_options(params))
