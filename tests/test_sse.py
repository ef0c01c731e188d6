"""The SSE decoder: every WHATWG rule, awkward cuts, and properties against a reference."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wandb_inference._exceptions import APIResponseValidationError
from wandb_inference._streaming._sse import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEDecoder

BOM = b"\xef\xbb\xbf"


def ev(data: str, event: str = "message", id: str | None = None, retry: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


def feed_all(parts: Iterable[bytes], decoder: SSEDecoder | None = None) -> list[ServerSentEvent]:
    """Feed every part, then close: all the events of the body."""
    decoder = decoder or SSEDecoder()
    out: list[ServerSentEvent] = []
    for part in parts:
        out.extend(decoder.feed(part))
    out.extend(decoder.close())
    return out


def cut_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({0, len(body), *(c for c in cuts if 0 <= c <= len(body))})
    return [body[a:b] for a, b in itertools.pairwise(points)]


def reference(body: bytes) -> list[ServerSentEvent]:
    """The WHATWG algorithm written the obvious way (whole body, char by char).

    Includes this SDK's two documented deviations: events with empty data are not
    dispatched, and at the end of the body a last unterminated line is processed and a
    pending event dispatched.
    """
    text = body.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)
    tail = lines.pop()
    if tail:
        lines.append(tail)
    lines.append("")
    events: list[ServerSentEvent] = []
    data_buffer, event_type, last_id, retry = "", "", None, None
    for line in lines:
        if line == "":
            if data_buffer and data_buffer[:-1]:
                events.append(ev(data_buffer[:-1], event_type or "message", last_id, retry))
            data_buffer, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "data":
            data_buffer += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


# --------------------------------------------------------------------------- fields


def test_one_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a": 1}\n\n') == [ev('{"a": 1}')]
    assert decoder.close() == []


def test_several_events_in_one_read_and_done() -> None:
    body = b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert SSEDecoder().feed(body) == [ev("one"), ev("two"), ev("[DONE]")]


def test_event_is_not_dispatched_before_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [ev("a")]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert feed_all([b"data: a\ndata:b\ndata:  c\n\n"]) == [ev("a\nb\n c")]


def test_only_one_leading_space_is_stripped() -> None:
    assert feed_all([b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\n"]) == [
        ev("x"),
        ev("x"),
        ev(" x"),
        ev("\tx"),
    ]


def test_field_without_colon_has_an_empty_value() -> None:
    # "data" alone appends an empty line to the data.
    assert feed_all([b"data\ndata: x\ndata\n\n"]) == [ev("\nx\n")]
    # "event" alone sets an empty type, which dispatches as "message".
    assert feed_all([b"event: e\nevent\ndata: x\n\n"]) == [ev("x")]


def test_comments_are_ignored_even_inside_an_event() -> None:
    body = b": ping - 2026-01-01\n:\ndata: a\n: between\ndata: b\n\n"
    assert feed_all([body]) == [ev("a\nb")]


def test_unknown_fields_and_spaced_names_are_ignored() -> None:
    assert feed_all([b"foo: bar\n data: no\nDATA: no\ndata : no\ndata: yes\n\n"]) == [ev("yes")]


def test_event_type_is_set_then_reset_after_dispatch() -> None:
    body = b"event: error\ndata: boom\n\ndata: next\n\n"
    assert feed_all([body]) == [ev("boom", "error"), ev("next")]


def test_empty_event_type_dispatches_as_message() -> None:
    assert feed_all([b"event:\ndata: x\n\n"]) == [ev("x")]


def test_events_with_empty_data_are_not_dispatched() -> None:
    body = b"data:\n\ndata: \n\nevent: e\n\nid: 1\n\nretry: 5\n\n\n\n"
    decoder = SSEDecoder()
    assert feed_all([body], decoder) == []
    # ...but their id and retry still took effect.
    assert decoder.last_event_id == "1"
    assert decoder.retry == 5


def test_an_undispatched_event_resets_its_type() -> None:
    assert feed_all([b"event: e\n\ndata: x\n\n"]) == [ev("x")]
    assert feed_all([b"event: e\ndata:\n\ndata: x\n\n"]) == [ev("x")]


def test_last_event_id_persists_across_events() -> None:
    body = b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\nid\ndata: d\n\nid: 8\n\ndata: e\n\n"
    assert feed_all([body]) == [
        ev("a"),
        ev("b", id="7"),
        ev("c", id="7"),
        ev("d", id=""),
        ev("e", id="8"),
    ]


def test_id_containing_nul_is_ignored() -> None:
    body = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert feed_all([body]) == [ev("a", id="1"), ev("b", id="1")]


def test_retry_only_ascii_digits() -> None:
    decoder = SSEDecoder()
    body = (
        "retry: 1500\ndata: a\n\ndata: b\n\nretry: 1x\ndata: c\n\n"
        "retry: \u0661\u0662\ndata: d\n\nretry: \u00b2\ndata: e\n\nretry:\ndata: f\n\n"
        "retry: -1\ndata: g\n\nretry: 15 \ndata: h\n\n"
    ).encode()
    assert feed_all([body], decoder) == [
        ev("a", retry=1500),
        ev("b"),
        ev("c"),
        ev("d"),
        ev("e"),
        ev("f"),
        ev("g"),
        ev("h"),
    ]
    assert decoder.retry == 1500


def test_data_keeps_unicode_separators_other_than_cr_and_lf() -> None:
    # `str.splitlines()` would cut at these; the SSE grammar does not.
    odd = "a\x0bb\x0cc\x1cd\x1de\x1ef\x85g\u2028h\u2029i"
    assert feed_all([f"data: {odd}\n\n".encode()]) == [ev(odd)]


def test_event_begun_in_one_read_continues_in_the_next() -> None:
    # Each of these must merge with what came before rather than start a new event.
    assert feed_all([b"data: a\n", b"data: b\n\n"]) == [ev("a\nb")]
    assert feed_all([b"event: e\n", b"data: a\n\n"]) == [ev("a", "e")]
    assert feed_all([b"retry: 9\n", b"data: a\n\n"]) == [ev("a", retry=9)]
    assert feed_all([b"data\n", b"data: a\n\ndata: b\n\n"]) == [ev("\na"), ev("b")]


def test_blank_lines_before_between_and_after_events() -> None:
    body = b"\n\n\ndata: a\n\n\n\ndata: b\n\n\n"
    assert feed_all([body]) == [ev("a"), ev("b")]


def test_empty_feeds_are_harmless() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"data: a") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\n") == [ev("a")]
    assert decoder.close() == []


# --------------------------------------------------------------------------- line ends


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"])
def test_each_line_end(end: bytes) -> None:
    body = b"event: e" + end + b"data: a" + end + b"data: b" + end + end + b"data: c" + end + end
    assert feed_all([body]) == [ev("a\nb", "e"), ev("c")]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    # A second line end would be a blank line and dispatch "a" on its own.
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r") == [ev("a\nb")]
    assert decoder.feed(b"\n") == []
    assert decoder.close() == []


def test_cr_then_cr_across_reads_is_two_line_ends() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\rdata: b\r\r") == [ev("a"), ev("b")]


def test_cr_cr_lf_is_a_line_then_a_blank_line() -> None:
    assert feed_all([b"data: a\r\r\ndata: b\r\n\r\n"]) == [ev("a"), ev("b")]


def test_lone_lf_after_cr_read_then_empty_read() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []  # still the same line end
    assert decoder.feed(b"\n") == [ev("a")]


# --------------------------------------------------------------------------- BOM


def test_bom_at_stream_start_is_stripped() -> None:
    assert feed_all([BOM + b"data: a\n\n"]) == [ev("a")]


@pytest.mark.parametrize("cuts", [[1], [2], [1, 2], [3], [1, 2, 3, 4]])
def test_bom_split_across_reads_is_stripped(cuts: list[int]) -> None:
    assert feed_all(cut_at(BOM + b"data: a\n\n", cuts)) == [ev("a")]


def test_only_one_bom_and_only_at_the_start() -> None:
    # A second BOM is part of the first field name, which is then unknown.
    assert feed_all([BOM + BOM + b"data: a\n\ndata: b\n\n"]) == [ev("b")]
    # A BOM later in the stream is ordinary data.
    assert feed_all([b"data: a\n\n", b"data: " + BOM + b"b\n\n"]) == [ev("a"), ev("\ufeffb")]


def test_partial_bom_that_is_not_a_bom() -> None:
    # "\xef\xbb" then "d..." is invalid UTF-8: replaced, making the field name unknown.
    assert feed_all([b"\xef\xbb", b"data: a\n\ndata: b\n\n"]) == [ev("b")]
    assert feed_all([b"\xef"]) == []
    assert feed_all([b"\xef", b"\xbb"]) == []


def test_close_starts_a_new_stream_keeping_the_last_id() -> None:
    decoder = SSEDecoder()
    assert feed_all([b"id: 4\ndata: a\n\n"], decoder) == [ev("a", id="4")]
    assert feed_all([BOM + b"data: b\n\n"], decoder) == [ev("b", id="4")]


# --------------------------------------------------------------------------- UTF-8


@pytest.mark.parametrize("char", ["é", "€", "😀"], ids=["2-byte", "3-byte", "4-byte"])
def test_character_split_at_every_byte(char: str) -> None:
    body = f"data: a{char}b\n\n".encode()
    start = len(b"data: a")
    for cut in range(start + 1, start + len(char.encode())):
        assert feed_all([body[:cut], body[cut:]]) == [ev(f"a{char}b")], cut
    assert feed_all([bytes([b]) for b in body]) == [ev(f"a{char}b")]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert feed_all([b"data: a\xffb\n\n"]) == [ev("a\ufffdb")]
    # A truncated sequence at a line end is one U+FFFD, whether or not the read is cut.
    assert feed_all([b"data: \xe2\x82\n\n"]) == [ev("\ufffd")]
    assert feed_all([b"data: \xe2", b"\x82\n\n"]) == [ev("\ufffd")]
    assert feed_all([b"data: \xe2\x82"]) == [ev("\ufffd")]


def test_every_two_way_cut_of_a_realistic_stream() -> None:
    body = (
        BOM
        + b": ping\r\n"
        + 'data: {"delta":{"content":"h\u00e9llo \u20ac \U0001f600"}}\r\n\r\n'.encode()
        + b'event: error\rdata: {"error": 1}\r\r'
        + b"id: 9\ndata: a\ndata: b\n\n"
        + b"data: [DONE]\n\n"
    )
    expected = reference(body)
    assert len(expected) == 4
    assert feed_all([body]) == expected
    for cut in range(len(body) + 1):
        assert feed_all([body[:cut], body[cut:]]) == expected, cut
    assert feed_all([bytes([b]) for b in body]) == expected


# --------------------------------------------------------------------------- end of body


def test_close_dispatches_an_event_missing_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.close() == [ev("a")]


def test_close_processes_a_last_line_without_line_end() -> None:
    assert feed_all([b"data: a\n\ndata: b"]) == [ev("a"), ev("b")]
    assert feed_all([b"data: a\ndata: b"]) == [ev("a\nb")]
    assert feed_all([b"data: a\r"]) == [ev("a")]


def test_close_does_not_dispatch_an_event_without_data() -> None:
    assert feed_all([b"event: e\n"]) == []
    assert feed_all([b": partial comment"]) == []
    assert feed_all([b"data:"]) == []
    assert SSEDecoder().close() == []


# --------------------------------------------------------------------------- size limit


def _raises_limit() -> pytest.RaisesExc[APIResponseValidationError]:
    return pytest.raises(APIResponseValidationError, match=r"max_event_size")


def test_default_limit_is_16_mib() -> None:
    assert DEFAULT_MAX_EVENT_SIZE == 16 * 1024 * 1024
    assert SSEDecoder().max_event_size == DEFAULT_MAX_EVENT_SIZE


def test_limit_error_explains_the_limit_and_the_fix() -> None:
    decoder = SSEDecoder(max_event_size=100)
    with _raises_limit() as info:
        decoder.feed(b"data: " + b"x" * 200)
    message = str(info.value)
    assert "100 bytes" in message
    assert "max_event_size=" in message


@pytest.mark.parametrize("prefix", [b"", b"event: e\n"], ids=["fast path", "line loop"])
def test_data_limit_boundary(prefix: bytes) -> None:
    limit = 64
    # The data and its line end count: 63 characters fit in 64, 64 do not.
    ok = prefix + b"data: " + b"x" * (limit - 1) + b"\n\n"
    assert SSEDecoder(limit).feed(ok)[0].data == "x" * (limit - 1)
    with _raises_limit():
        SSEDecoder(limit).feed(prefix + b"data: " + b"x" * limit + b"\n\n")


def test_data_limit_counts_the_whole_event() -> None:
    decoder = SSEDecoder(max_event_size=100)
    for _ in range(10):  # 10 lines of 9 characters and a line end: 100, at the limit
        assert decoder.feed(b"data: " + b"x" * 9 + b"\n") == []
    with _raises_limit():
        decoder.feed(b"data: " + b"x" * 9 + b"\n")


def test_data_limit_resets_after_each_event() -> None:
    decoder = SSEDecoder(max_event_size=100)
    for _ in range(50):
        assert decoder.feed(b"data: " + b"x" * 90 + b"\n\n") == [ev("x" * 90)]


def test_limit_on_a_long_non_data_line() -> None:
    with _raises_limit():
        SSEDecoder(max_event_size=100).feed(b"event: " + b"e" * 100 + b"\n")
    with _raises_limit():
        SSEDecoder(max_event_size=100).feed(b"data: a\nid: " + b"1" * 100 + b"\n")


def test_limit_on_an_unterminated_tail() -> None:
    decoder = SSEDecoder(max_event_size=100)
    assert decoder.feed(b"data: a\n\n" + b"x" * 100) == [ev("a")]  # 100 bytes: at the limit
    with _raises_limit():
        decoder.feed(b"x")
    with _raises_limit():  # a tail over the limit in the same read as complete lines
        SSEDecoder(max_event_size=100).feed(b"data: a\n" + b"x" * 101)


def test_endless_line_with_the_default_limit_is_refused() -> None:
    decoder = SSEDecoder()
    read = b"x" * 65536
    fed = 0
    with _raises_limit():
        while fed <= 4 * DEFAULT_MAX_EVENT_SIZE:
            decoder.feed(read)
            fed += len(read)
    assert fed <= DEFAULT_MAX_EVENT_SIZE


def test_constructor_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEDecoder(0)
    with pytest.raises(TypeError):
        SSEDecoder(True)
    with pytest.raises(TypeError):
        SSEDecoder("10")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the event value


def test_events_equal_the_real_constructor() -> None:
    # The decoder builds events without attrs' __init__ (speed): pin the fields it sets.
    assert [f.name for f in attrs.fields(ServerSentEvent)] == ["event", "data", "id", "retry"]
    assert all(f.validator is None and f.converter is None for f in attrs.fields(ServerSentEvent))
    fast = feed_all([b"data: a\n\nretry: 3\nid: 5\nevent: e\ndata: b\n\n"])
    assert fast == [
        ServerSentEvent(data="a"),
        ServerSentEvent(event="e", data="b", id="5", retry=3),
    ]
    assert hash(fast[0]) == hash(ServerSentEvent(data="a"))
    assert repr(fast[0]) == repr(ServerSentEvent(data="a"))


def test_events_are_frozen() -> None:
    event = feed_all([b"data: a\n\n"])[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.data = "b"  # type: ignore[misc]


# --------------------------------------------------------------------------- properties

_LINE_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_LINES = st.one_of(
    _LINE_TEXT.map(lambda t: "data: " + t),
    _LINE_TEXT.map(lambda t: "data:" + t),
    st.sampled_from(
        [
            "",
            "",
            "data",
            "data:",
            "data: [DONE]",
            "event: error",
            "event:",
            "event",
            "id: 7",
            "id",
            "id: a\0b",
            "retry: 250",
            "retry: 2x",
            "retry: \u0663",
            ": ping",
            ":",
            "foo: bar",
            " data: x",
        ]
    ),
)
_ENDINGS = st.sampled_from(["\n", "\r", "\r\n"])


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """A body of plausible and odd lines, with mixed line ends, maybe a BOM, maybe a tail."""
    lines = draw(st.lists(_LINES, max_size=25))
    body = "".join(line + draw(_ENDINGS) for line in lines)
    if draw(st.booleans()):
        body += draw(_LINES)  # an unterminated last line
    raw = body.encode()
    if draw(st.booleans()):
        raw = BOM + raw
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=8))  # stray bytes, invalid UTF-8 included
    return raw


@settings(max_examples=400)
@given(body=st.one_of(streams(), st.binary(max_size=200)), data=st.data())
def test_any_chunking_gives_the_same_events(body: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole = feed_all([body])
    assert feed_all(cut_at(body, cuts)) == whole
    assert whole == reference(body)


@settings(max_examples=200)
@given(body=streams())
def test_byte_by_byte_equals_whole(body: bytes) -> None:
    assert feed_all([bytes([b]) for b in body]) == feed_all([body])


def _join_lines(lines: Sequence[str], endings: Sequence[str]) -> str:
    out: list[str] = []
    previous = "\n"
    for line, end in zip(lines, endings, strict=True):
        if previous == "\r" and not line and end == "\n":
            # "\r" + "" + "\n" reads as one CRLF: the format itself cannot say "CR then an
            # empty line ended by LF", so write that empty line's end as CRLF instead.
            end = "\r\n"
        out.append(line + end)
        previous = end
    return "".join(out)


@settings(max_examples=300)
@given(lines=st.lists(_LINES, max_size=25), data=st.data())
def test_any_mix_of_line_ends_gives_the_same_events(lines: list[str], data: st.DataObject) -> None:
    endings = data.draw(st.lists(_ENDINGS, min_size=len(lines), max_size=len(lines)))
    cuts = data.draw(st.lists(st.integers(0, 2000), max_size=6))
    mixed = _join_lines(lines, endings).encode()
    plain = "".join(line + "\n" for line in lines).encode()
    assert feed_all(cut_at(mixed, cuts)) == feed_all([plain])


_DATA_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), min_size=1)


@settings(max_examples=300)
@given(
    items=st.lists(
        st.tuples(
            _DATA_TEXT,
            st.one_of(
                st.none(),
                st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1),
            ),
        ),
        max_size=8,
    ),
    data=st.data(),
)
def test_any_unicode_data_round_trips(items: list[tuple[str, str | None]], data: st.DataObject) -> None:
    def encode(text: str, event: str | None) -> str:
        head = f"event: {event}\n" if event is not None else ""
        return head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"

    body = "".join(encode(text, event) for text, event in items).encode()
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    assert feed_all(cut_at(body, cuts)) == [ev(text, event or "message") for text, event in items]


@settings(max_examples=100)
@given(
    limit=st.integers(1, 4096),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=20),
    byte=st.sampled_from([b"x", b"\xe2", b" ", b":"]),
)
def test_endless_line_is_refused_with_bounded_buffering(limit: int, sizes: list[int], byte: bytes) -> None:
    decoder = SSEDecoder(max_event_size=limit)
    fed = 0
    with _raises_limit():
        for i in range(10_000):
            read = byte * sizes[i % len(sizes)]
            fed += len(read)
            decoder.feed(read)
    # It gave up as soon as the line passed the limit: it never held much more.
    assert limit < fed <= limit + max(sizes)


@settings(max_examples=100)
@given(limit=st.integers(8, 4096), line=st.integers(0, 50))
def test_endless_event_is_refused_with_bounded_buffering(limit: int, line: int) -> None:
    decoder = SSEDecoder(max_event_size=limit)
    read = b"data: " + b"y" * line + b"\n"
    count = 0
    with _raises_limit():
        for count in range(1, 10_000):  # noqa: B007 - read after the loop
            decoder.feed(read)
    assert (count - 1) * (line + 1) <= limit < count * (line + 1)


# --------------------------------------------------------------------------- plain_data


def feed_fast(parts: Iterable[bytes], decoder: SSEDecoder | None = None) -> list[tuple[str, str]]:
    """What the stream processor sees: `plain_data` first, `feed` when it declines."""
    decoder = decoder or SSEDecoder()
    out: list[tuple[str, str]] = []
    for part in parts:
        texts = decoder.plain_data(part)
        if texts is not None:
            out.extend(("message", text) for text in texts)
        else:
            out.extend((e.event, e.data) for e in decoder.feed(part))
    out.extend((e.event, e.data) for e in decoder.close())
    return out


def test_plain_data_takes_whole_events_between_events() -> None:
    decoder = SSEDecoder()
    assert decoder.plain_data(b'data: {"a": 1}\n\n') is None  # the first read: a BOM may open it
    assert decoder.feed(b"data: first\n\n") == [ev("first")]
    assert decoder.plain_data(b'data: {"a": "\xc3\xa9"}\n\n') == ['{"a": "\u00e9"}']
    assert decoder.plain_data(b"data:  two spaces\n\n") == [" two spaces"]
    assert decoder.plain_data(b"data: \xe2\x82\n\n") == ["\ufffd"]
    assert decoder.plain_data(b"data: a\n\ndata: b\n\ndata: [DONE]\n\n") == ["a", "b", "[DONE]"]
    # It changed nothing: what follows decodes as after `feed`.
    assert decoder.feed(b"data: next\n\n") == [ev("next")]


def test_plain_data_keeps_the_start_of_the_next_event() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: first\n\n")
    assert decoder.plain_data(b"data: a\n\ndata: b\n\ndata: c") == ["a", "b"]
    assert decoder.plain_data(b"d") is None  # no event ends here: `feed` parks it
    assert decoder.feed(b"d") == []
    assert decoder.plain_data(b"\n\ndata: e\n\nda") == ["cd", "e"]
    assert decoder.feed(b"ta: f\n\n") == [ev("f")]
    assert decoder.plain_data(b"data: g\n\ndata: h") == ["g"]
    assert decoder.close() == [ev("h")]


@pytest.mark.parametrize(
    "read",
    [
        b"data: a\n",  # no blank line yet
        b"data: a\n\ndata: b\n",  # the next event's line is complete: left to `feed`
        b"data: a\r\n\r\n",
        b"data: a\r\r",
        b"data:a\n\n",  # no space: left to `feed`
        b"data: \n\n",  # empty data: not an event
        b"data: a\n\ndata: \n\n",
        b": ping\n\n",
        b"data: a\n\n: ping\n\n",
        b"event: e\n\n",
        b"data: a\n\nevent: e\ndata: b\n\n",
        b"data: a\ndata: b\n\n",
        b"data: a\n\n\n\n",
        b"",
    ],
)
def test_plain_data_declines_any_other_read(read: bytes) -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: start\n\n")
    assert decoder.plain_data(read) is None
    assert decoder.feed(b"") == []  # nothing was consumed: a partial line would wait here
    assert decoder.close() == []


@pytest.mark.parametrize(
    "before",
    [
        b"event: e\n",  # an event is under way
        b"retry: 5\n",
        b"data: a\n",
        b"data: a\r",  # a "\n" may still complete the "\r\n"
        b": pi",  # a partial comment line is pending
    ],
)
def test_plain_data_declines_in_the_middle_of_an_event(before: bytes) -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: start\n\n")
    decoder.feed(before)
    assert decoder.plain_data(b"data: x\n\n") is None


def test_plain_data_leaves_oversized_events_to_feed() -> None:
    decoder = SSEDecoder(max_event_size=16)
    decoder.feed(b"data: start\n\n")
    assert decoder.plain_data(b"data: 12345678\n\n") == ["12345678"]
    assert decoder.plain_data(b"data: 123456789012345\n\n") == ["123456789012345"]
    assert decoder.plain_data(b"data: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n") == ["1", "2", "3", "4"]
    assert decoder.plain_data(b"data: 1\n\ndata: 1234567890123456\n\n") is None
    assert decoder.plain_data(b"data: 1\n\ndata: 12345678901234567") is None  # the partial line
    with _raises_limit():
        decoder.feed(b"data: 1234567890123456\n\n")


@settings(max_examples=300)
@given(body=streams(), data=st.data())
def test_plain_data_then_feed_gives_the_same_events(body: bytes, data: st.DataObject) -> None:
    # Cut at random points and at event boundaries, where `plain_data` applies.
    bounds = [m.end() for m in re.finditer(rb"\n\n", body)]
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    cuts += data.draw(st.lists(st.sampled_from(bounds), max_size=len(bounds))) if bounds else []
    parts = cut_at(body, cuts)
    assert feed_fast(parts) == [(e.event, e.data) for e in feed_all(parts)]


@settings(max_examples=300)
@given(
    events=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1), min_size=1, max_size=8
    ),
    data=st.data(),
)
def test_plain_data_on_token_streams_cut_anywhere(events: list[str], data: st.DataObject) -> None:
    body = b"".join(b"data: " + e.encode() + b"\n\n" for e in events)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    parts = cut_at(body, cuts)
    decoder = SSEDecoder()
    assert feed_fast(parts, decoder) == [(e.event, e.data) for e in feed_all(parts)]


def test_plain_data_is_taken_on_a_realistic_token_stream() -> None:
    reads = [b"data: first\n\n"] + [b'data: {"i": %d}\n\n' % i for i in range(50)] + [b"data: [DONE]\n\n"]
    decoder = SSEDecoder()
    decoder.feed(reads[0])
    assert all(decoder.plain_data(read) is not None for read in reads[1:])
    # Several events per read, cut anywhere but between the two line ends: taken too.
    decoder = SSEDecoder()
    decoder.feed(reads[0])
    body = b"".join(reads[1:])
    cuts = [i for i in range(0, len(body), 37) if body[i - 1 : i + 1] != b"\n\n"] + [len(body)]
    texts = [t for a, b in itertools.pairwise(cuts) for t in decoder.plain_data(body[a:b]) or ["declined"]]
    assert texts == [read[6:-2].decode() for read in reads[1:]]
