"""The local server's pure parts, without sockets: request validation (against the OpenAPI
document and jsonschema), generated JSON instances, reply planning, the SSE writer, the
fault values and the `X-Wandb-Fault` parser."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import jsonschema
import pytest
from _helpers import load_spec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wandb_inference._spec._document import document
from wandb_inference._spec._validate import SUPPORTED_KEYWORDS, validate_request
from wandb_inference.server import Fault, StreamFault
from wandb_inference.server._chat import plan_chat
from wandb_inference.server._embed import embed, encode_base64, truncate
from wandb_inference.server._fault_header import parse_fault_header
from wandb_inference.server._instance import schema_instance
from wandb_inference.server._queue import FaultQueue
from wandb_inference.server._render import chunks, completion
from wandb_inference.server._stream import write_stream
from wandb_inference.server._words import Words, rng_for

ROOT = Path(__file__).resolve().parents[1]
DOC = load_spec()
MESSAGES = [{"role": "user", "content": "Tell me about maps"}]


# ---------------------------------------------------------------------- the shipped document
def _reachable(names: list[str]) -> list[str]:
    schemas = DOC["components"]["schemas"]
    seen = list(names)

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("$ref")
            if ref is not None and ref.split("/")[-1] not in seen:
                seen.append(ref.split("/")[-1])
                walk(schemas[ref.split("/")[-1]])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for name in names:
        walk(schemas[name])
    return seen


def test_the_server_validates_against_the_document_shipped_in_the_package() -> None:
    """No vendored copy: the validator reads `_spec/openapi.json`, the YAML as regen wrote it."""
    assert document() == DOC


def test_validator_supports_every_keyword_the_request_schemas_use() -> None:
    used: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                used.add(key)
                if key == "properties":
                    for sub in item.values():
                        walk(sub)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for name in _reachable(["ChatCompletionRequest", "EmbeddingRequest"]):
        walk(DOC["components"]["schemas"][name])
    assert used - {"description", "default", "title"} <= SUPPORTED_KEYWORDS, used - SUPPORTED_KEYWORDS


# ---------------------------------------------------------------------- validator = jsonschema
def _jsonschema_valid(body: Any, name: str) -> bool:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}
    return bool(jsonschema.Draft202012Validator(schema).is_valid(body))


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.floats(-3, 3, allow_nan=False),
    st.sampled_from(["", "x", "auto", "none", "required", "user", "json_object", "low", "float", "base64"]),
    st.lists(st.sampled_from(["a", "b", 1]), max_size=5),
    st.sampled_from([{}, {"include_usage": True}, {"enable_thinking": "no"}, {"type": "text"}, {"1": 2}]),
)
_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot"])},
        optional={
            "content": st.one_of(
                st.text(max_size=5),
                st.none(),
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=3)}),
                        st.fixed_dictionaries(
                            {"type": st.just("image_url")}, optional={"image_url": st.just({"url": "u"})}
                        ),
                    ),
                    max_size=2,
                ),
            ),
            "tool_call_id": st.just("call_1"),
            "name": st.one_of(st.just("n"), st.just(1)),
        },
    ),
    max_size=3,
)
_fields = [
    "max_tokens", "temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty",
    "logit_bias", "response_format", "tool_choice", "parallel_tool_calls", "function_call", "stream",
    "stream_options", "chat_template_kwargs", "cache_salt", "reasoning_effort", "user", "unknown_extra",
]  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    model=st.one_of(st.just("m"), st.integers()),
    messages=_messages,
    extra=st.dictionaries(st.sampled_from(_fields), _values, max_size=4),
    drop=st.sampled_from([None, "model", "messages"]),
)
def test_chat_validation_agrees_with_jsonschema(model: Any, messages: Any, extra: dict[str, Any], drop: Any) -> None:
    body = {"model": model, "messages": messages, **extra}
    if drop:
        del body[drop]
    verdict = validate_request(body, "ChatCompletionRequest")
    assert (verdict is None) == _jsonschema_valid(body, "ChatCompletionRequest"), (body, verdict)


@settings(max_examples=200, deadline=None)
@given(
    body=st.dictionaries(
        st.sampled_from(["model", "input", "encoding_format", "dimensions", "user"]),
        st.one_of(_values, st.lists(st.text(max_size=2), max_size=3)),
        max_size=5,
    )
)
def test_embedding_validation_agrees_with_jsonschema(body: dict[str, Any]) -> None:
    verdict = validate_request(body, "EmbeddingRequest")
    assert (verdict is None) == _jsonschema_valid(body, "EmbeddingRequest"), (body, verdict)


def test_validation_messages_name_the_place() -> None:
    bad_role = validate_request(
        {"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "ChatCompletionRequest"
    )
    assert bad_role is not None
    assert bad_role.message == (
        "Invalid request: messages[0].role must be one of 'user', 'assistant', 'system', 'tool' (got 'robot')"
    )
    stop = validate_request({"model": "m", "messages": MESSAGES, "stop": 3}, "ChatCompletionRequest")
    assert stop is not None and stop.problem == "must be a string, an array or null (got integer)"
    part = validate_request(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "ChatCompletionRequest"
    )
    assert part is not None and (part.param, part.problem) == ("messages[0].content[0].text", "is required")


# ---------------------------------------------------------------------- schema instances
def _schemas(depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    leaves = st.one_of(
        st.builds(
            lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
            st.integers(-50, 50),
            st.integers(0, 20),
        ),
        st.builds(lambda lo: {"type": "number", "exclusiveMinimum": lo, "maximum": lo + 1}, st.integers(-5, 5)),
        st.builds(
            lambda lo, span: {"type": "string", "minLength": lo, "maxLength": lo + span},
            st.integers(0, 10),
            st.integers(0, 30),
        ),
        st.sampled_from(
            [
                {"type": "boolean"},
                {"type": "null"},
                {"type": ["string", "null"]},
                {"enum": ["a", "b", 3]},
                {"const": "fixed"},
                {"type": "string", "format": "date"},
                {"type": "string", "format": "uuid"},
                {"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 99},
                {},
            ]
        ),
    )
    if depth == 0:
        return leaves
    inner = _schemas(depth - 1)
    objects = st.builds(
        lambda props, data, extra: {
            "type": "object",
            "properties": props,
            "required": sorted(k for k in props if data.draw(st.booleans())),
            "additionalProperties": extra,
        },
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4),
        st.data(),
        st.booleans(),
    )
    arrays = st.builds(
        lambda items, lo, span: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + span},
        inner,
        st.integers(0, 3),
        st.integers(0, 3),
    )
    unions = st.builds(lambda a, b: {"anyOf": [a, b]}, inner, inner)
    return st.one_of(leaves, objects, arrays, unions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema=_schemas(), seed=st.integers(0, 2**32))
def test_schema_instances_validate(schema: dict[str, Any], seed: int) -> None:
    instance = schema_instance(schema, rng_for(seed), Words(rng_for(seed, "w")))
    jsonschema.validate(instance, schema, format_checker=jsonschema.FormatChecker())
    json.dumps(instance)  # JSON-serialisable


def test_recursive_and_referenced_schemas_terminate() -> None:
    tree = {
        "$ref": "#/$defs/node",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
            }
        },
    }
    for seed in range(20):
        instance = schema_instance(tree, rng_for(seed), Words(rng_for(seed)))
        jsonschema.validate(instance, tree)
    merged = {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                        {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]}  # fmt: skip
    jsonschema.validate(schema_instance(merged, rng_for(1), Words(rng_for(1))), merged)


# ---------------------------------------------------------------------- reply planning
def _plan(**body: Any) -> Any:
    return plan_chat({"model": "m", "messages": MESSAGES, **body}, None, completion_id="c", created=1, server_seed=0)


def test_replies_are_the_same_in_another_process() -> None:
    """The PRNG comes from SHA-256 of the inputs: no hash randomisation, no process state."""
    here = "".join(_plan(seed=3).choices[0].content)
    code = (
        "from wandb_inference.server._chat import plan_chat\n"
        "p = plan_chat({'model': 'm', 'messages': [{'role': 'user', 'content': 'Tell me about maps'}], 'seed': 3},"
        " None, completion_id='c', created=1, server_seed=0)\n"
        "print(''.join(p.choices[0].content))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"}
    )
    assert there.stdout.strip() == here


def test_stop_strings_spanning_pieces_and_at_the_start() -> None:
    pieces = _plan(seed=1).choices[0].content
    full = "".join(pieces)
    k = next(i for i, p in enumerate(pieces) if len(p) >= 3)
    boundary = len("".join(pieces[: k + 1]))
    span = full[boundary - 2 : boundary + 3]  # the end of piece k and the start of piece k + 1
    cut = _plan(seed=1, stop=span).choices[0]
    assert "".join(cut.content) == full[: full.index(span)] and cut.finish_reason == "stop"
    assert cut.completion_tokens == k + 2  # the token that completed the stop string counts
    at_start = _plan(seed=1, stop=pieces[0]).choices[0]
    assert at_start.content == () and at_start.finish_reason == "stop" and at_start.completion_tokens == 1
    empty_stop = _plan(seed=1, stop=["", "never-there"]).choices[0]
    assert "".join(empty_stop.content) == full


def test_rendering_is_consistent() -> None:
    plan = _plan(seed=2, n=2, max_tokens=4)
    body = completion(plan, "reasoning")
    events = chunks(plan, include_usage=True, reasoning_field="reasoning")
    for index in range(2):
        streamed = "".join(
            e["choices"][0]["delta"].get("content") or ""
            for e in events
            if e["choices"] and e["choices"][0]["index"] == index
        )
        assert streamed == body["choices"][index]["message"]["content"]
    assert events[-1]["usage"] == body["usage"] == {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}


def test_non_ascii_text_has_multibyte_characters() -> None:
    words = Words(rng_for("x"), non_ascii=True)
    text = "".join(words.pieces(60))
    assert any(len(ch.encode()) > 1 for ch in text)
    assert all(ord(ch) < 128 for ch in "".join(Words(rng_for("x")).pieces(60)))


# ---------------------------------------------------------------------- embeddings
def test_embedding_math() -> None:
    vector = embed("hello world", 64)
    assert len(vector) == 64 and math.isclose(math.fsum(v * v for v in vector), 1.0)
    assert embed("hello world", 64) == vector
    assert embed("", 8) != embed(" ", 8) or embed("", 8) == embed("", 8)  # empty input still a unit vector
    assert math.isclose(math.fsum(v * v for v in embed("", 8)), 1.0)
    short = truncate(vector, 16)
    assert math.isclose(math.fsum(v * v for v in short), 1.0)
    decoded = struct.unpack("<16f", base64.b64decode(encode_base64(short)))
    assert list(decoded) == pytest.approx(short, abs=1e-7)


# ---------------------------------------------------------------------- SSE writer
class _Recorder:
    def __init__(self) -> None:
        self.messages: list[Mapping[str, Any]] = []
        self.dropped: list[bool] = []

    async def send(self, message: Any) -> None:
        self.messages.append(message)

    async def drop(self, reset: bool) -> None:
        self.dropped.append(reset)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


def _write(events: list[dict[str, Any]], shape: StreamFault | None) -> _Recorder:
    recorder = _Recorder()

    async def run() -> None:
        await write_stream(recorder.send, events, shape=shape, pace=0.0, drop=recorder.drop)

    anyio.run(run)
    return recorder


EVENTS: list[dict[str, Any]] = [{"n": 1}, {"n": "é"}, {"n": 3}]


def test_writer_clean_stream() -> None:
    recorder = _write(EVENTS, None)
    assert recorder.messages[0]["status"] == 200
    assert recorder.body == b'data: {"n":1}\n\ndata: {"n":"\xc3\xa9"}\n\ndata: {"n":3}\n\ndata: [DONE]\n\n'
    assert recorder.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_writer_shapes() -> None:
    awkward = _write(EVENTS[:1], StreamFault(crlf=True, pings=True, empty_events=True, omit_done=True))
    assert awkward.body == b': ping\r\n\r\ndata:\r\n\r\ndata: {"n":1}\r\n\r\n'
    split = _write(EVENTS[:1], StreamFault(split=4))
    assert [m["body"] for m in split.messages[1:-1]] == [
        b"data",
        b': {"',
        b'n":1',
        b"}\n\n",
        b"data",
        b": [D",
        b"ONE]",
        b"\n\n",
    ]
    error = _write(EVENTS, StreamFault(error_after=1, error_event=True, error_message="boom"))
    assert error.body.startswith(b'data: {"n":1}\n\nevent: error\ndata: {"error":{"message":"boom"')
    assert error.body.endswith(b"data: [DONE]\n\n") and b'"n":3' not in error.body
    late_error = _write(EVENTS, StreamFault(error_after=99))
    assert late_error.body.count(b"data: {") == 4  # past the end: after the last chunk


def test_writer_cuts() -> None:
    cut = _write(EVENTS, StreamFault(cut_after=1, reset=True))
    assert cut.body == b'data: {"n":1}\n\n' and cut.dropped == [True]
    assert cut.messages[-1].get("more_body") is True  # never a clean end
    mid = _write(EVENTS, StreamFault(cut_after=0, cut_mid_utf8=True))
    assert mid.body == b'data: {"n":1}\n\ndata: {"n":"\xc3' and mid.dropped == [False]
    no_multibyte = _write(EVENTS[:1], StreamFault(cut_after=0, cut_mid_utf8=True))
    assert no_multibyte.body == b'data: {"n":1}\n\n' and no_multibyte.dropped == [False]  # cut at the end


# ---------------------------------------------------------------------- fault values
def test_fault_values_are_checked() -> None:
    with pytest.raises(ValueError, match="not several"):
        Fault(label="x", disconnect="reset", status_code=500)
    with pytest.raises(ValueError, match="needs a status_code"):
        Fault(label="x", body=b"x")
    with pytest.raises(ValueError, match="between 200 and 599"):
        Fault.status(99)
    with pytest.raises(ValueError, match="kind 'quota' does not apply to status 503"):
        Fault.status(503, kind="quota")
    with pytest.raises(ValueError, match="retry_after must be >= 0"):
        Fault.status(429, retry_after=-1)
    with pytest.raises(ValueError, match="split must be >= 1"):
        StreamFault(split=0)
    with pytest.raises(ValueError, match="cut_after must be >= 0"):
        Fault.cut_stream(after=-1)
    with pytest.raises(ValueError, match="times"):
        FaultQueue().push(Fault.reset(), times=0)


def test_fault_labels_and_equality() -> None:
    assert Fault.status(429, kind="quota").label == "429 quota"
    assert Fault.cut_stream(after=3, mid_utf8=True).label == "cut stream after 3 mid-utf8"
    assert Fault.status(503).with_delay(2).label == "503 after 2s"
    assert Fault.streaming(StreamFault(crlf=True, split=2)).label == "stream crlf,split"
    assert Fault.reset() == Fault.reset()
    assert hash(Fault.status(500)) == hash(Fault.status(500))
    naive = Fault.status(503, retry_after=dt.datetime(2030, 1, 1, 12))
    assert dict(naive.headers)["retry-after"] == "Tue, 01 Jan 2030 12:00:00 GMT"  # naive means UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("429", Fault.status(429)),
        (
            "429;kind=quota;retry_after=2;retry_after_ms=2500",
            Fault.status(429, kind="quota", retry_after=2.0, retry_after_ms=2500),
        ),
        (
            "429;retry_after=Wed, 21 Oct 2015 07:28:00 GMT",
            Fault.status(429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
        ),
        ("503;message=busy", Fault.status(503, message="busy")),
        ("html", Fault.html(502)),
        ("Text;Status=500;Message=oops", Fault.text(500, "oops")),
        ("detail;status=404", Fault.detail(404)),
        ("empty;status=503;retry-after=1", Fault.empty(503, retry_after=1.0)),
        ("reset", Fault.reset()),
        ("close;delay=0.5", Fault.close().with_delay(0.5)),
        ("stall;seconds=2", Fault.stall(2.0)),
    ],
)
def test_header_language_canned(value: str, expected: Fault) -> None:
    assert parse_fault_header(value).fault == expected


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ("cut", StreamFault(cut_after=1)),
        ("cut;after=4;utf8;rst", StreamFault(cut_after=4, cut_mid_utf8=True, reset=True)),
        ("no-done", StreamFault(omit_done=True)),
        ("error;after=2;event;message=gone", StreamFault(error_after=2, error_event=True, error_message="gone")),
        ("stall-stream;after=3;seconds=0.5", StreamFault(stall_after=3, stall_seconds=0.5)),
        ("awkward", StreamFault(pings=True, empty_events=True, crlf=True, split=3, non_ascii=True)),
        ("awkward;split=1;pings=0", StreamFault(empty_events=True, crlf=True, split=1, non_ascii=True)),
        (
            "stream;cut=5;crlf;split=2;pause=0.001;no_done;stall_at=1;stall=0.2;error=9;error_event;non_ascii",
            StreamFault(
                cut_after=5,
                crlf=True,
                split=2,
                split_pause=0.001,
                omit_done=True,
                stall_after=1,
                stall_seconds=0.2,
                error_after=9,
                error_event=True,
                non_ascii=True,
            ),
        ),
    ],
)
def test_header_language_streams(value: str, shape: StreamFault) -> None:
    fault = parse_fault_header(value).fault
    assert fault.stream == shape
    assert attrs.evolve(fault, label="x") == attrs.evolve(Fault.streaming(shape), label="x")


def test_header_language_id_and_times() -> None:
    scripted = parse_fault_header(" 429 ; times=2 ; id=abc ")
    assert (scripted.id, scripted.times, scripted.fault) == ("abc", 2, Fault.status(429))
    queue = FaultQueue()
    fault = scripted.fault
    assert [queue.take_scripted(fault, "abc", 2, streamed_chat=False) for _ in range(3)] == [True, True, False]
    assert queue.take_scripted(fault, "other", None, streamed_chat=False)  # an id alone: once
    assert not queue.take_scripted(fault, "other", None, streamed_chat=False)
    assert queue.take_scripted(fault, None, None, streamed_chat=False)  # no id: always
    stream_fault = Fault.no_done()
    assert not queue.take_scripted(stream_fault, "s", 1, streamed_chat=False)  # not counted
    assert queue.take_scripted(stream_fault, "s", 1, streamed_chat=True)
    queue.clear()
    assert queue.take_scripted(fault, "abc", 2, streamed_chat=False)  # clear() resets the counts


def test_fault_bodies_render_as_documented() -> None:
    fault = Fault.json(400, {"error": "bare string"})
    assert json.loads(fault.body or b"") == {"error": "bare string"} and fault.content_type == "application/json"
    html = Fault.html(503, title="Service Unavailable (proxy)")
    assert b"<title>Service Unavailable (proxy)</title>" in (html.body or b"")
