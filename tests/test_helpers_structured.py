"""Structured output: schemas generated from attrs classes and dataclasses, replies parsed back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Sequence
from typing import Any, Literal, Optional, Union

import attrs
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wandb_inference as wi
from wandb_inference._helpers import parse_structured, response_format_from
from wandb_inference._request import build_chat_body


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Ratio(enum.Enum):
    HALF = 0.5
    ONE = 1.0


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Tag:
    label: str
    weight: float = 1.0


@attrs.frozen
class Point:
    x: int
    y: int


@attrs.frozen
class Item:
    """An item in a shop.

    Attributes:
        name: what it is called.
        tags: labels, as many
            as needed.
    """

    name: str
    tags: list[Tag]
    where: Point
    color: Color = Color.RED
    kind: Literal["new", "used"] = "new"
    note: Optional[str] = None  # noqa: UP045 - the old spelling must work too
    price: float | None = None
    level: Level = Level.LOW
    size: Union[int, str] = 0  # noqa: UP007
    extra: dict[str, int] = attrs.field(factory=dict)
    dims: tuple[int, int] = (1, 1)
    sizes: tuple[int, ...] = ()
    codes: frozenset[str] = frozenset()
    anything: Any = None
    seq: Sequence[bool] = ()
    flag: bool = attrs.field(default=False, metadata={"description": "set by hand"})


@dataclasses.dataclass
class Node:
    value: int
    children: list[Node] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Holder:
    """Two nested classes of the same kind."""

    first: Point
    second: Point | None


@attrs.frozen
class Positive:
    n: int = attrs.field(validator=attrs.validators.gt(0))


@dataclasses.dataclass
class WithDate:
    when: dt.date


@dataclasses.dataclass
class IntKeys:
    table: dict[int, str]


@attrs.define
class Private:
    _secret: str
    hidden: int = attrs.field(init=False, default=0)


OtherPoint = dataclasses.make_dataclass("Point", [("z", int)])  # same name, another class


@dataclasses.dataclass
class Twins:
    a: Point
    b: OtherPoint  # type: ignore[valid-type]


@dataclasses.dataclass
class Loose:
    items: list  # type: ignore[type-arg]
    pair: tuple  # type: ignore[type-arg]
    bag: set  # type: ignore[type-arg]
    table: dict  # type: ignore[type-arg]
    mixed: Literal["a", 1, True, None]
    ratio: Ratio = Ratio.HALF


@dataclasses.dataclass
class BadLiteral:
    x: Literal[b"bytes"]


ITEM_JSON = {
    "name": "lamp",
    "tags": [{"label": "home", "weight": 2.5}, {"label": "light"}],
    "where": {"x": 1, "y": 2},
    "color": "green",
    "kind": "used",
    "note": None,
    "price": 10,
    "level": 2,
    "size": "XL",
    "extra": {"a": 1},
    "dims": [3, 4],
    "sizes": [5, 6, 7],
    "codes": ["x", "y"],
    "anything": {"free": ["form"]},
    "seq": [True, False],
    "flag": True,
}


def _schema(tp: Any) -> dict[str, Any]:
    fmt = response_format_from(tp)
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert isinstance(schema, dict)
    return schema


# --------------------------------------------------------------------------- schemas


def test_schema_of_a_small_attrs_class_exactly() -> None:
    assert response_format_from(Point) == {
        "type": "json_schema",
        "json_schema": {
            "name": "Point",
            "schema": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
                "required": ["x", "y"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    }


def test_schema_maps_every_supported_type() -> None:
    schema = _schema(Item)
    props = schema["properties"]
    assert schema["description"] == "An item in a shop."
    assert schema["required"] == ["name", "tags", "where"]  # defaults are not required
    assert schema["additionalProperties"] is False
    assert props["name"] == {"type": "string", "description": "what it is called."}
    assert props["tags"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Tag"},
        "description": "labels, as many as needed.",
    }
    assert props["where"] == {"$ref": "#/$defs/Point"}
    assert props["color"] == {"type": "string", "enum": ["red", "green"], "default": "red"}
    assert props["kind"] == {"type": "string", "enum": ["new", "used"], "default": "new"}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert props["price"] == {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None}
    assert props["level"] == {"type": "integer", "enum": [1, 2], "default": 1}
    assert props["size"] == {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 0}
    assert props["extra"] == {"type": "object", "additionalProperties": {"type": "integer"}}  # factory: no default
    assert props["dims"] == {
        "type": "array",
        "prefixItems": [{"type": "integer"}, {"type": "integer"}],
        "minItems": 2,
        "maxItems": 2,
    }
    assert props["sizes"] == {"type": "array", "items": {"type": "integer"}}
    assert props["codes"] == {"type": "array", "items": {"type": "string"}, "uniqueItems": True}
    assert props["anything"] == {"default": None}
    assert props["seq"] == {"type": "array", "items": {"type": "boolean"}}
    assert props["flag"] == {"type": "boolean", "description": "set by hand", "default": False}
    assert schema["$defs"]["Tag"] == {
        "type": "object",
        "properties": {"label": {"type": "string"}, "weight": {"type": "number", "default": 1.0}},
        "required": ["label"],
        "additionalProperties": False,
    }
    assert schema["$defs"]["Point"]["required"] == ["x", "y"]
    assert set(schema["$defs"]) == {"Tag", "Point"}


def test_generated_schemas_are_valid_json_schema_accepting_good_replies() -> None:
    for tp, good, bad in [
        (Item, ITEM_JSON, {**ITEM_JSON, "kind": "broken"}),
        (Node, {"value": 1, "children": [{"value": 2, "children": []}]}, {"value": 1, "children": [{}]}),
        (Holder, {"first": {"x": 1, "y": 2}, "second": None}, {"first": {"x": 1}, "second": None}),
    ]:
        schema = _schema(tp)
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        validator.validate(good)
        assert not validator.is_valid(bad)
        # The SDK's own checker agrees with the reference implementation.
        assert parse_structured(json.dumps(good), schema) == good
        with pytest.raises(wi.APIResponseValidationError):
            parse_structured(json.dumps(bad), schema)


def test_recursive_and_repeated_classes_use_defs() -> None:
    schema = _schema(Node)
    assert schema["properties"]["children"] == {"type": "array", "items": {"$ref": "#/$defs/Node"}}
    assert schema["$defs"]["Node"]["properties"] == schema["properties"]
    holder = _schema(Holder)
    assert list(holder["$defs"]) == ["Point"]
    assert holder["description"] == "Two nested classes of the same kind."
    assert "$defs" not in _schema(Tag)
    assert "description" not in _schema(Tag)  # dataclasses' invented docstring is not one


def test_bare_containers_mixed_literals_and_name_clashes() -> None:
    props = _schema(Loose)["properties"]
    assert props["items"] == props["pair"] == props["bag"] == {"type": "array"}
    assert props["table"] == {"type": "object"}
    assert props["mixed"] == {"enum": ["a", 1, True, None]}  # no single type
    assert props["ratio"] == {"type": "number", "enum": [0.5, 1.0], "default": 0.5}
    loose = parse_structured(
        '{"items": [1, "a"], "pair": [1], "bag": [2, 2], "table": {"k": [1]}, "mixed": 1, "ratio": 1.0}', Loose
    )
    assert loose == Loose(items=[1, "a"], pair=(1,), bag={2}, table={"k": [1]}, mixed=1, ratio=Ratio.ONE)
    assert parse_structured('{"items": [], "pair": [], "bag": [], "table": {}, "mixed": true}', Loose).mixed is True
    with pytest.raises(wi.APIResponseValidationError, match="expected one of"):
        parse_structured('{"items": [], "pair": [], "bag": [], "table": {}, "mixed": 1.5}', Loose)
    twins = _schema(Twins)
    assert twins["properties"] == {"a": {"$ref": "#/$defs/Point"}, "b": {"$ref": "#/$defs/Point2"}}
    assert twins["$defs"]["Point2"]["required"] == ["z"]
    with pytest.raises(wi.InvalidRequestError, match="enum values must be str, int, float, bool or None"):
        response_format_from(BadLiteral)


def test_private_attrs_fields_use_their_init_name() -> None:
    schema = _schema(Private)
    assert schema["required"] == ["secret"] and list(schema["properties"]) == ["secret"]
    assert parse_structured('{"secret": "s"}', Private) == Private(secret="s")


def test_name_strict_and_description() -> None:
    fmt = response_format_from(Point, name="point-v2", strict=False, description="A point.")
    assert fmt["json_schema"]["name"] == "point-v2"
    assert fmt["json_schema"]["strict"] is False
    assert fmt["json_schema"]["description"] == "A point."
    for bad in ("", "has space", "x" * 65, "dots.are.out"):
        with pytest.raises(wi.InvalidRequestError, match="name must be 1-64"):
            response_format_from(Point, name=bad)


def test_schema_dicts_are_copied_and_named_from_their_title() -> None:
    schema: dict[str, Any] = {"title": "My Reply!", "type": "object", "properties": {"a": {"type": "string"}}}
    fmt = response_format_from(schema)
    assert fmt["json_schema"]["name"] == "My_Reply_"
    assert fmt["json_schema"]["schema"] == schema
    schema["properties"]["a"]["type"] = "integer"
    assert fmt["json_schema"]["schema"]["properties"]["a"]["type"] == "string"  # a deep copy
    assert response_format_from({"type": "object"})["json_schema"]["name"] == "response"
    # The response_format itself is accepted (and renamed on request).
    again = response_format_from(fmt, name="again")
    assert again["json_schema"]["schema"] == fmt["json_schema"]["schema"]
    assert again["json_schema"]["name"] == "again"
    assert response_format_from(fmt)["json_schema"]["name"] == "My_Reply_"


def test_unsupported_inputs_are_refused() -> None:
    with pytest.raises(wi.InvalidRequestError, match=r"WithDate\.when: no JSON schema for"):
        response_format_from(WithDate)
    with pytest.raises(wi.InvalidRequestError, match="keys are strings"):
        response_format_from(IntKeys)
    with pytest.raises(wi.InvalidRequestError, match="not JSON-serializable"):
        response_format_from({"type": "object", "default": object()})
    with pytest.raises(wi.InvalidRequestError, match="takes a JSON schema dict, an attrs class or a dataclass"):
        response_format_from(int)
    with pytest.raises(wi.InvalidRequestError, match="takes a JSON schema dict"):
        response_format_from(Point(x=1, y=2))  # type: ignore[arg-type]


def test_local_classes_with_unresolvable_hints_get_a_clear_error() -> None:
    @dataclasses.dataclass
    class Local:
        inner: Inner  # type: ignore[name-defined]  # noqa: F821 - unresolvable

    with pytest.raises(wi.InvalidRequestError, match="module level"):
        response_format_from(Local)


def test_response_formats_pass_the_request_validation() -> None:
    for fmt in (response_format_from(Item), response_format_from({"type": "object"})):
        body = build_chat_body("m", [{"role": "user", "content": "hi"}], False, {"response_format": fmt})
        assert body["response_format"] == fmt


# --------------------------------------------------------------------------- parsing into classes


EXPECTED_ITEM = Item(
    name="lamp",
    tags=[Tag("home", 2.5), Tag("light")],
    where=Point(x=1, y=2),
    color=Color.GREEN,
    kind="used",
    note=None,
    price=10.0,
    level=Level.HIGH,
    size="XL",
    extra={"a": 1},
    dims=(3, 4),
    sizes=(5, 6, 7),
    codes=frozenset({"x", "y"}),
    anything={"free": ["form"]},
    seq=[True, False],
    flag=True,
)


def test_parse_into_nested_classes() -> None:
    item = parse_structured(json.dumps(ITEM_JSON), Item)
    assert item == EXPECTED_ITEM
    assert isinstance(item.price, float) and isinstance(item.tags[0], Tag)
    assert parse_structured('{"name": "x", "tags": [], "where": {"x": 0, "y": 0}}', Item) == Item(
        name="x", tags=[], where=Point(x=0, y=0)
    )
    node = parse_structured('{"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}', Node)
    assert node == Node(1, [Node(2, [Node(3)])])


@pytest.mark.parametrize(
    "text",
    [
        '```json\n{"x": 1, "y": 2}\n```',
        '```\n{"x": 1, "y": 2}\n```\n',
        '```JSON  \r\n{"x": 1, "y": 2}```',
        '```json\n{"x": 1, "y": 2}',  # unclosed fence
        'Here you go:\n```json\n{"x": 1, "y": 2}\n```\nAnything else?',
        'Sure! {"x": 1, "y": 2} Hope that helps.',
        '{"x": 1, "y": 2} trailing words',
        '<think>they want a point</think>\n{"x": 1, "y": 2}',
        '<think>hmm {"x": 9}</think>```json\n{"x": 1, "y": 2}\n```',
        '  {"x": 1.0, "y": 2, "z": "unknown keys are ignored"}  ',
    ],
)
def test_fences_thinking_and_chatter_are_ignored(text: str) -> None:
    assert parse_structured(text, Point) == Point(x=1, y=2)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"x": 1}', r"at \$: missing required key 'y' of Point"),
        ('{"x": "1", "y": 2}', r"at \$\.x: expected an integer, got \"1\""),
        ('{"x": true, "y": 2}', r"at \$\.x: expected an integer, got true"),
        ('{"x": 1.5, "y": 2}', r"expected an integer, got 1.5"),
        ("[1, 2]", r"expected an object for Point"),
    ],
)
def test_replies_that_do_not_fit_a_class(text: str, match: str) -> None:
    with pytest.raises(wi.APIResponseValidationError, match=match) as info:
        parse_structured(text, Point)
    assert info.value.body == text
    assert "does not fit Point" in str(info.value)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"color": "blue"}, r"\$\.color: expected one of \['red', 'green'\]"),
        ({"kind": "old"}, r"\$\.kind: expected one of \['new', 'used'\]"),
        ({"level": 3}, r"\$\.level: expected one of \[1, 2\]"),
        ({"tags": [{"weight": 1}]}, r"\$\.tags\[0\]: missing required key 'label' of Tag"),
        ({"tags": "home"}, r"\$\.tags: expected an array"),
        ({"where": {"x": 1, "y": None}}, r"\$\.where\.y: expected an integer, got null"),
        ({"note": 5}, r"\$\.note: expected a string, got 5 or expected null, got 5"),
        ({"dims": [1]}, r"\$\.dims: expected 2 items, got 1"),
        ({"extra": {"a": "b"}}, r"\$\.extra\.a: expected an integer"),
        ({"extra": []}, r"\$\.extra: expected an object"),
        ({"flag": "yes"}, r"\$\.flag: expected true or false"),
        ({"price": "cheap"}, r"\$\.price: expected a number"),
        ({"name": None}, r"\$\.name: expected a string, got null"),
    ],
)
def test_nested_mismatches_name_their_path(change: dict[str, Any], match: str) -> None:
    with pytest.raises(wi.APIResponseValidationError, match=match):
        parse_structured(json.dumps({**ITEM_JSON, **change}), Item)


def test_class_validators_refusing_values_are_validation_errors() -> None:
    assert parse_structured('{"n": 3}', Positive) == Positive(n=3)
    with pytest.raises(wi.APIResponseValidationError, match="Positive refused the values"):
        parse_structured('{"n": 0}', Positive)


@pytest.mark.parametrize("text", ["", "   ", None, "not json at all", '{"x": 1, "y": ', "```json\n```"])
def test_non_json_replies_keep_the_text(text: str | None) -> None:
    with pytest.raises(wi.APIResponseValidationError, match=r"empty|not valid JSON") as info:
        parse_structured(text, Point)
    assert info.value.body == text


def test_parse_refuses_other_targets() -> None:
    with pytest.raises(wi.InvalidRequestError, match="takes an attrs class, a dataclass or a schema dict"):
        parse_structured("{}", int)
    with pytest.raises(wi.InvalidRequestError, match="cannot convert"):
        parse_structured('{"when": "2026-01-01"}', WithDate)


@given(
    st.builds(
        Tag,
        label=st.text(),
        weight=st.floats(allow_nan=False, allow_infinity=False),
    ),
    st.integers(),
    st.integers(),
)
def test_round_trip_property(tag: Tag, x: int, y: int) -> None:
    holder = Holder(first=Point(x=x, y=y), second=None)
    text = json.dumps(dataclasses.asdict(holder) | {"first": attrs.asdict(holder.first)})
    assert parse_structured(text, Holder) == holder
    assert parse_structured(json.dumps(dataclasses.asdict(tag)), Tag) == tag


# --------------------------------------------------------------------------- parsing with a schema


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 5, "pattern": "^[a-z]+$"},
        "age": {"type": "integer", "minimum": 0, "exclusiveMaximum": 150},
        "score": {"type": ["number", "null"], "maximum": 1, "exclusiveMinimum": -1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2, "uniqueItems": True},
        "kind": {"enum": ["a", "b", 1]},
        "version": {"const": 2},
        "pet": {"$ref": "#/$defs/Pet"},
        "either": {"oneOf": [{"type": "string"}, {"type": "boolean"}]},
        "both": {"allOf": [{"type": "object"}, {"required": ["k"]}]},
        "meta": {"type": "object", "additionalProperties": {"type": "integer"}, "maxProperties": 2},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        "free": True,
        "never": False,
    },
    "required": ["name", "age"],
    "additionalProperties": False,
    "$defs": {"Pet": {"type": "object", "properties": {"legs": {"type": "integer"}}, "required": ["legs"]}},
}
GOOD: dict[str, Any] = {
    "name": "ann",
    "age": 30.0,
    "score": None,
    "tags": ["x", "y"],
    "kind": 1,
    "version": 2.0,
    "pet": {"legs": 4, "fur": True},
    "either": False,
    "both": {"k": 1},
    "meta": {"a": 1},
    "pair": ["p", 1],
    "free": [{"any": "thing"}],
}


def test_schema_parse_returns_the_json_value() -> None:
    assert parse_structured(json.dumps(GOOD), SCHEMA) == GOOD
    jsonschema.Draft202012Validator(SCHEMA).validate(GOOD)  # the fixture itself is right
    wrapped = response_format_from(SCHEMA)
    assert parse_structured('{"name": "bo", "age": 1}', wrapped) == {"name": "bo", "age": 1}
    assert parse_structured("[1, 2]", {"type": "array"}) == [1, 2]
    assert parse_structured('"free"', {}) == "free"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"name": ""}, r"\$\.name: expected at least 1 characters"),
        ({"name": "abcdef"}, r"at most 5 characters"),
        ({"name": "ab1"}, r"does not match"),
        ({"age": -1}, r"\$\.age: expected a number >= 0"),
        ({"age": 150}, r"expected a number < 150"),
        ({"age": 1.5}, r"\$\.age: expected integer, got 1.5"),
        ({"age": True}, r"expected integer, got true"),
        ({"score": 2}, r"expected a number <= 1"),
        ({"score": -1}, r"expected a number > -1"),
        ({"score": "x"}, r"expected number or null"),
        ({"tags": []}, r"at least 1 items"),
        ({"tags": ["a", "b", "c"]}, r"at most 2 items"),
        ({"tags": ["a", "a"]}, r"items must be unique"),
        ({"tags": [1]}, r"\$\.tags\[0\]: expected string"),
        ({"kind": "c"}, r"expected one of \['a', 'b', 1\]"),
        ({"kind": True}, r"expected one of"),
        ({"version": 3}, r"expected 2, got 3"),
        ({"pet": {}}, r"\$\.pet: missing required key 'legs'"),
        ({"pet": {"legs": "four"}}, r"\$\.pet\.legs: expected integer"),
        ({"either": 1}, r"expected string, got 1 or expected boolean, got 1"),
        ({"both": {}}, r"\$\.both: missing required key 'k'"),
        ({"meta": {"a": "b"}}, r"\$\.meta\.a: expected integer"),
        ({"meta": {"a": 1, "b": 2, "c": 3}}, r"at most 2 keys"),
        ({"pair": ["p", "q"]}, r"\$\.pair\[1\]: expected integer"),
        ({"pair": ["p", 1, 2]}, r"\$\.pair\[2\]: no value is allowed here"),
        ({"never": 1}, r"\$\.never: no value is allowed here"),
        ({"surprise": 1}, r"unexpected key 'surprise'"),
    ],
)
def test_schema_mismatches(change: dict[str, Any], match: str) -> None:
    bad = {**GOOD, **change}
    with pytest.raises(wi.APIResponseValidationError, match=match) as info:
        parse_structured(json.dumps(bad), SCHEMA)
    assert "does not fit the schema" in str(info.value)
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(bad)  # the reference agrees


def test_missing_required_and_bad_refs() -> None:
    with pytest.raises(wi.APIResponseValidationError, match=r"missing required key 'age'"):
        parse_structured('{"name": "ann"}', SCHEMA)
    with pytest.raises(wi.APIResponseValidationError, match="points nowhere"):
        parse_structured('{"a": 1}', {"properties": {"a": {"$ref": "#/$defs/Nope"}}})
    with pytest.raises(wi.APIResponseValidationError, match="non-local"):
        parse_structured('{"a": 1}', {"properties": {"a": {"$ref": "https://x.test/s.json"}}})
    recursive = {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}}
    assert parse_structured('{"next": {"next": null}}', recursive) == {"next": {"next": None}}
    with pytest.raises(wi.APIResponseValidationError, match=r"\$\.next\.next"):
        parse_structured('{"next": {"next": 5}}', recursive)


def test_unknown_keywords_and_types_are_not_checked() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "custom", "format": "email"}, "b": "junk"}}
    assert parse_structured('{"a": "not an email", "b": 1}', schema) == {"a": "not an email", "b": 1}
