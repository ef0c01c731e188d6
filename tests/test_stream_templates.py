"""Token chunks read through a stream's template build exactly what the whole way builds.

The processor reads a token chunk whose JSON text is the text of an earlier chunk around
another string as that string alone (`_processor._Template`). Whatever the stream, the
chunks, the accumulated completion and the errors must be those of a processor that
takes the whole way (JSON, accumulator, `parse_chunk`) for every chunk.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_parse import chunk as any_chunk

import wandb_inference as wi
from wandb_inference._streaming._processor import StreamProcessor
from wandb_inference._types._chunk import ChatCompletionChunk, parse_chunk

scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=8))
texts = st.text(max_size=12)  # quotes, backslashes, control characters, any code point
base_chunk = st.builds(
    lambda top, top_extra, choice_extra, index, field: {
        **top,
        **top_extra,
        "choices": [{"index": index, "delta": {field: ""}, **choice_extra}],
    },
    st.fixed_dictionaries(
        {"id": st.text(max_size=12), "created": st.integers(0, 2**40), "model": st.text(max_size=12)},
        optional={"object": st.text(max_size=8), "system_fingerprint": st.one_of(st.none(), st.text(max_size=8))},
    ),
    st.dictionaries(st.sampled_from(["x_vendor", "obfuscation", "usage"]), scalar, max_size=2).map(
        lambda extra: {k: (None if k == "usage" else v) for k, v in extra.items()}
    ),
    st.dictionaries(st.sampled_from(["stop_reason", "logprobs", "finish_reason", "x"]), scalar, max_size=2).map(
        lambda extra: {k: (None if k in ("logprobs", "finish_reason") else v) for k, v in extra.items()}
    ),
    st.one_of(st.integers(0, 2), st.none(), st.just("0")),
    st.sampled_from(["content", "reasoning", "reasoning_content"]),
)


def _with_text(base: dict[str, Any], text: str) -> dict[str, Any]:
    choice = base["choices"][0]
    ((field, _),) = choice["delta"].items()
    return {**base, "choices": [{**choice, "delta": {field: text}}]}


def _encode(obj: dict[str, Any], spaced: bool, ascii_only: bool) -> bytes:
    separators = (", ", ": ") if spaced else (",", ":")
    return b"data: " + json.dumps(obj, separators=separators, ensure_ascii=ascii_only).encode() + b"\n\n"


def _run(body: list[bytes], templates: bool) -> tuple[list[Any], dict[str, Any], BaseException | None]:
    processor = StreamProcessor(None, parse_chunk, templates=templates)
    chunks: list[Any] = []
    error: BaseException | None = None
    try:
        for read in body:
            chunks.extend(processor.feed(read))
            processor.raise_deferred()
        chunks.extend(processor.end())
    except wi.StreamError as exc:
        error = exc
    return chunks, processor.accumulator.to_dict(), error


def _same(body: list[bytes]) -> list[Any]:
    fast, fast_total, fast_error = _run(body, templates=True)
    slow, slow_total, slow_error = _run(body, templates=False)
    assert fast == slow
    for made, built in zip(fast, slow, strict=True):  # every slot set, as the whole way sets it
        assert type(made) is type(built) is ChatCompletionChunk
        pairs: list[tuple[Any, Any]] = [(made, built)]
        for a, b in zip(made.choices, built.choices, strict=True):
            pairs += [(a, b), (a.delta, b.delta)]
        for a, b in pairs:
            assert attrs.asdict(a, recurse=False) == attrs.asdict(b, recurse=False)
        assert made.additional_properties is not built.additional_properties
    assert fast_total == slow_total
    assert type(fast_error) is type(slow_error)
    assert str(fast_error) == str(slow_error)
    return fast


@settings(max_examples=300)
@given(
    base=base_chunk,
    pieces=st.lists(texts, min_size=1, max_size=8),
    others=st.lists(st.tuples(st.integers(0, 8), any_chunk), max_size=3),
    spaced=st.booleans(),
    ascii_only=st.booleans(),
    per_read=st.integers(1, 4),
)
def test_templates_build_what_the_whole_way_builds(
    base: dict[str, Any],
    pieces: list[str],
    others: list[tuple[int, dict[str, Any]]],
    spaced: bool,
    ascii_only: bool,
    per_read: int,
) -> None:
    events = [_encode(_with_text(base, piece), spaced, ascii_only) for piece in pieces * 2]
    for at, other in others:  # chunks of any other shape in between
        events.insert(at, _encode(other, spaced, ascii_only))
    events.append(b"data: [DONE]\n\n")
    reads = [b"".join(events[i : i + per_read]) for i in range(0, len(events), per_read)]
    _same(reads)


BASE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": None}],
}
WORDS = ["Hel", "lo", ' "wor', "ld\\", "\n\u00e9\U0001f600"]


def test_a_token_stream_is_read_through_its_template() -> None:
    events = [_encode(_with_text(BASE, w), False, True) for w in WORDS] + [b"data: [DONE]\n\n"]
    processor = StreamProcessor(None, parse_chunk)
    chunks = [c for event in events for c in processor.feed(event)]
    assert [c.text for c in chunks] == WORDS
    assert processor._template is not None  # learned from the first chunk, used by the rest
    assert processor.accumulator.text == "".join(WORDS)
    assert processor.accumulator.chunks == len(WORDS)
    _same(events)


def _template_text(text_json: str) -> bytes:
    """A chunk's event: BASE's text around `text_json` in the content's place."""
    before, after = json.dumps(BASE, separators=(",", ":")).split('""')
    return f"data: {before}{text_json}{after}\n\n".encode()


@pytest.mark.parametrize(
    "middle",
    [
        '"a","content":"b"',  # a second content after the first: the last one counts
        '"a" ',  # blank after the string
        '"a\\u00e9\\ud83d\\ude00"',  # escapes, a surrogate pair
        '"\\ud800"',  # a lone surrogate, as json.loads reads it
        '"a"b"',  # not JSON
        '"a\\x"',  # a bad escape
        '"a\tb"',  # a raw control character: refused, as json.loads refuses it
        '"unterminated',
        "1",
        "null",
    ],
)
def test_near_misses_of_the_template_take_the_whole_way(middle: str) -> None:
    events = [_encode(_with_text(BASE, w), False, True) for w in WORDS[:3]]
    _same([*events, _template_text(middle), *events, b"data: [DONE]\n\n"])


def test_a_field_name_inside_another_key_does_not_fool_the_template() -> None:
    tricky = {**BASE, 'x"content': 'y":"', "id": '"content":"'}
    events = [_encode(_with_text(tricky, w), spaced, True) for w in WORDS for spaced in (False, True)]
    _same([*events, b"data: [DONE]\n\n"])


def test_a_field_name_written_with_escapes_takes_the_whole_way() -> None:
    events = [_encode(_with_text(BASE, w), False, True).replace(b'"content"', b'"cont\\u0065nt"') for w in WORDS]
    chunks = _same([*events, b"data: [DONE]\n\n"])
    assert [c.text for c in chunks] == WORDS


def test_chunks_of_another_shape_between_template_chunks() -> None:
    finish = {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": 7}]}
    extra = {**BASE, "choices": [{**BASE["choices"][0], "delta": {"content": "x"}, "stop_reason": 3}]}
    events = [
        _encode(_with_text(BASE, "a"), False, True),
        _encode(extra, False, True),
        _encode(_with_text(BASE, "b"), False, True),
        _encode(finish, False, True),
        _encode(_with_text(BASE, "c"), False, True),
        b"data: [DONE]\n\n",
    ]
    chunks = _same(events)
    assert [c.text for c in chunks] == ["a", "x", "b", "", "c"]


def test_an_error_after_template_chunks_keeps_their_text() -> None:
    events = [_encode(_with_text(BASE, w), False, True) for w in WORDS[:3]]
    events.append(b'data: {"error": {"message": "boom"}}\n\n')
    chunks = _same([b"".join(events)])
    assert len(chunks) == 3
    _, _, error = _run([b"".join(events)], templates=True)
    assert isinstance(error, wi.StreamEventError)
    assert error.text == "".join(WORDS[:3])


def _chunk_with(**changes: Any) -> dict[str, Any]:
    choice = {**BASE["choices"][0], "delta": {"content": "x"}, **changes.pop("choice", {})}
    return {**BASE, "choices": [choice], **changes}


@pytest.mark.parametrize(
    ("chunk", "makes", "adds"),
    [
        (_chunk_with(), True, True),
        (_chunk_with(choice={"stop_reason": None, "x": 1}, x_vendor="v"), True, True),
        (_chunk_with(choice={"delta": {"reasoning": "r"}}), True, True),
        (_chunk_with(choice={"index": "0"}), True, False),  # the accumulator skips such a choice
        (_chunk_with(choice={"index": None}), True, True),
        ({**_chunk_with(), "id": None}, True, False),  # the accumulator still looks for an id
        ({k: v for k, v in _chunk_with().items() if k != "id"}, False, False),
        ({**_chunk_with(), "choices": [BASE["choices"][0]] * 2}, False, False),
        ({**_chunk_with(), "choices": ["x"]}, False, False),
        ({**_chunk_with(), "choices": [{"delta": {"content": "x"}}]}, False, True),  # no index
        (_chunk_with(choice={"delta": {"content": "x", "role": "assistant"}}), False, False),
        (_chunk_with(choice={"delta": {"refusal": "no"}}), False, False),
        (_chunk_with(choice={"delta": {"content": 1}}), False, False),
        (_chunk_with(choice={"finish_reason": "stop"}), False, False),
        (_chunk_with(choice={"logprobs": {"content": []}}), False, False),
        (_chunk_with(usage={"prompt_tokens": 1, "total_tokens": 2}), False, False),
        (_chunk_with(x_vendor=[1]), False, False),
        (_chunk_with(choice={"x": {"a": 1}}), False, False),
    ],
)
def test_what_a_template_is_made_of(chunk: dict[str, Any], makes: bool, adds: bool) -> None:
    from wandb_inference._streaming._accumulate import ChatCompletionAccumulator
    from wandb_inference._types._chunk import text_chunk_maker

    accumulator = ChatCompletionAccumulator()
    accumulator.add(chunk)
    assert (text_chunk_maker(chunk) is not None) is makes
    assert (accumulator.text_adder(chunk) is not None) is adds
    assert text_chunk_maker([chunk]) is None  # type: ignore[arg-type]
    assert ChatCompletionAccumulator().text_adder(chunk) is None  # nothing added yet
