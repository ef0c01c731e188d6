"""Request validation against the API document's schemas: the facade (before sending) and
the local server (on receiving) both check bodies with it.

A small JSON Schema subset: the keywords request schemas use (`type`, `const`, `enum`,
`minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`, `maxLength`,
`minItems`, `maxItems`, `items`, `properties`, `required`, `additionalProperties`,
`anyOf`, `oneOf`, `$ref`); scripts/gen_facade.py refuses a request schema that uses
another, so nothing in the document goes unchecked. What it adds over a generic validator
is the message: unions of objects are told apart by their `const` field (`role`, `type`),
so a bad message reads "messages[1].role must be one of 'user', ..." rather than "matches
no member". Numbers must be finite (JSON has no NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._document import schemas

__all__ = ["SUPPORTED_KEYWORDS", "Invalid", "accepts", "check_value", "validate_request"]

SUPPORTED_KEYWORDS: Final = frozenset(
    {
        "$ref",
        "additionalProperties",
        "anyOf",
        "const",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "items",
        "maxItems",
        "maxLength",
        "maximum",
        "minItems",
        "minLength",
        "minimum",
        "oneOf",
        "properties",
        "required",
        "type",
    }
)

_REF_PREFIX = "#/components/schemas/"

_TYPE_NAMES: Final = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


@attrs.frozen(kw_only=True)
class Invalid:
    """Why a request body fails its schema.

    Attributes:
        param: where, as a path (`messages[0].role`); None for the body itself.
        problem: what is wrong there, phrased to follow the path.
    """

    param: str | None
    problem: str

    @property
    def message(self) -> str:
        """The sentence sent back to the client."""
        where = self.param if self.param is not None else "the request body"
        return f"Invalid request: {where} {self.problem}"


def validate_request(body: Any, schema_name: str) -> Invalid | None:
    """Check a parsed JSON body against a request schema of the API document.

    Args:
        body: the parsed JSON request body.
        schema_name: a schema of `components/schemas` (`ChatCompletionRequest`, ...).

    Returns:
        The first problem found, or None when the body is valid.
    """
    return _check(body, schemas()[schema_name], None)


def check_value(value: Any, schema: Mapping[str, Any], path: str) -> Invalid | None:
    """Check one value (a parameter, already in its JSON form) against its schema.

    Args:
        value: the value, as it will be sent.
        schema: its schema in the document (`$ref`s resolve against `components/schemas`).
        path: the parameter's name, for the message.

    Strict where JSON Schema is lenient: an integer must be a Python `int` (the facade
    sends what it was given, and `1.0` is not what a server expects for `max_tokens`).

    Returns:
        The first problem found, or None.
    """
    return _check(value, schema, path, strict=True)


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        ref: str = schema["$ref"]
        schema = schemas()[ref.removeprefix(_REF_PREFIX)]
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_type(value: Any, name: str, strict: bool = False) -> bool:
    actual = _json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer":
        # JSON Schema counts 2.0 as an integer (the server follows it); the facade, strict,
        # sends what it was given and so wants a Python int. Booleans are never numbers.
        return actual == "integer" or (not strict and actual == "number" and float(value).is_integer())
    return actual == name


def _types(schema: Mapping[str, Any]) -> list[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    return [declared] if isinstance(declared, str) else list(declared)


def _members(schema: Mapping[str, Any]) -> Sequence[Mapping[str, Any]] | None:
    members: Sequence[Mapping[str, Any]] | None = schema.get("anyOf")
    if members is None:
        members = schema.get("oneOf")
    return members


def _accepts_type(schema: Mapping[str, Any], value: Any, strict: bool) -> bool:
    schema = _resolve(schema)
    members = _members(schema)
    if members is not None:
        return any(_accepts_type(member, value, strict) for member in members)
    types = _types(schema)
    return types is None or any(_is_type(value, t, strict) for t in types)


def _describe(members: Sequence[Mapping[str, Any]]) -> str:
    names: list[str] = []
    for member in members:
        member = _resolve(member)
        nested = _members(member)
        found = [_describe(nested)] if nested else (_types(member) or ["any value"])
        for name in found:
            text = _TYPE_NAMES.get(name, name)
            if text not in names:
                names.append(text)
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _join(path: str | None, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path or ''}[{key}]"
    return key if path is None else f"{path}.{key}"


def _quote_all(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _discriminator(members: Sequence[Mapping[str, Any]]) -> str | None:
    """The property every member pins with `const` (`role`, `type`), if there is one."""
    common: set[str] | None = None
    for member in members:
        props = member.get("properties", {})
        pinned = {name for name, sub in props.items() if "const" in sub}
        common = pinned if common is None else common & pinned
    return min(common) if common else None


def _check_any_of(value: Any, members: Sequence[Mapping[str, Any]], path: str | None, strict: bool) -> Invalid | None:
    resolved = [_resolve(m) for m in members]
    candidates = [m for m in resolved if _accepts_type(m, value, strict)]
    if not candidates:
        return Invalid(param=path, problem=f"must be {_describe(resolved)} (got {_json_type(value)})")
    if isinstance(value, dict):
        objects = [m for m in candidates if _types(m) == ["object"]]
        tag = _discriminator(objects) if objects else None
        if tag is not None:
            allowed = [m["properties"][tag]["const"] for m in objects]
            for member in objects:
                if value.get(tag) == member["properties"][tag]["const"]:
                    return _check(value, member, path, strict)
            if tag not in value:
                return Invalid(param=_join(path, tag), problem=f"is required (one of {_quote_all(allowed)})")
            got = value[tag]
            return Invalid(param=_join(path, tag), problem=f"must be one of {_quote_all(allowed)} (got {got!r})")
    first: Invalid | None = None
    for member in candidates:
        problem = _check(value, member, path, strict)
        if problem is None:
            return None
        first = first or problem
    return first


def _check(value: Any, schema: Mapping[str, Any], path: str | None, strict: bool = False) -> Invalid | None:
    schema = _resolve(schema)
    members = _members(schema)
    if members is not None:
        return _check_any_of(value, members, path, strict)
    types = _types(schema)
    if types is not None and not any(_is_type(value, t, strict) for t in types):
        wanted = _describe([{"type": t} for t in types])
        return Invalid(param=path, problem=f"must be {wanted} (got {_json_type(value)})")
    if "const" in schema and value != schema["const"]:
        return Invalid(param=path, problem=f"must be {schema['const']!r} (got {value!r})")
    if "enum" in schema and value not in schema["enum"]:
        return Invalid(param=path, problem=f"must be one of {_quote_all(schema['enum'])} (got {value!r})")
    if _is_type(value, "number"):
        if isinstance(value, float) and not math.isfinite(value):
            return Invalid(param=path, problem=f"must be a finite number (got {value})")
        if "minimum" in schema and value < schema["minimum"]:
            return Invalid(param=path, problem=f"must be at least {schema['minimum']} (got {value})")
        if "maximum" in schema and value > schema["maximum"]:
            return Invalid(param=path, problem=f"must be at most {schema['maximum']} (got {value})")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return Invalid(param=path, problem=f"must be greater than {schema['exclusiveMinimum']} (got {value})")
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return Invalid(param=path, problem=f"must be less than {schema['exclusiveMaximum']} (got {value})")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return Invalid(param=path, problem=f"must have at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return Invalid(param=path, problem=f"must have at most {schema['maxLength']} characters")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return Invalid(param=path, problem=f"must have at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return Invalid(param=path, problem=f"must have at most {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                problem = _check(item, schema["items"], _join(path, i), strict)
                if problem is not None:
                    return problem
    if isinstance(value, dict):
        return _check_object(value, schema, path, strict)
    return None


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], path: str | None, strict: bool) -> Invalid | None:
    for name in schema.get("required", ()):
        if name not in value:
            return Invalid(param=_join(path, name), problem="is required")
    props: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            problem = _check(item, props[name], _join(path, name), strict)
        elif extra is False:
            problem = Invalid(param=_join(path, name), problem="is not allowed here")
        elif isinstance(extra, Mapping):
            problem = _check(item, extra, _join(path, name), strict)
        else:
            problem = None
        if problem is not None:
            return problem
    return None


# ------------------------------------------------------------------ compiled acceptance
# The facade checks every parameter of every call: walking the schema each time costs
# several times the hand-written checks it replaced. A schema is compiled once into a
# predicate that only says yes or no; the walk above runs only for a value the predicate
# refuses, to say why.

Predicate = Callable[[Any], bool]
_COMPILED: dict[int, tuple[Mapping[str, Any], Predicate]] = {}


def accepts(schema: Mapping[str, Any]) -> Predicate:
    """A fast yes/no check of `schema` (strict: integers are Python ints), compiled once.

    Agrees with `check_value`: a value it accepts has no problem there.
    """
    key = id(schema)
    found = _COMPILED.get(key)
    if found is not None and found[0] is schema:
        return found[1]
    predicate = _compile(schema, 0)
    _COMPILED[key] = (schema, predicate)  # the schema is kept alive: its id stays its own
    return predicate


# The classes a JSON type accepts on the fast path (an exact class match); anything else,
# a `str` subclass say, goes to the schema walk, which decides with isinstance.
_CLASSES: Final[dict[str, tuple[type, ...]]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "array": (list,),
    "object": (dict,),
}


def _all(tests: list[Predicate]) -> Predicate:
    if not tests:
        return lambda v: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda v: first(v) and second(v)

    def every(v: Any) -> bool:
        for test in tests:  # noqa: SIM110 - a loop: all() over a generator costs twice as much
            if not test(v):
                return False
        return True

    return every


def _compile(schema: Mapping[str, Any], depth: int) -> Predicate:
    schema = _resolve(schema)
    if depth > 32:  # a recursive schema: fall back to the walk
        return lambda v: _check(v, schema, None, strict=True) is None
    members = _members(schema)
    if members is not None:
        compiled = [_compile(m, depth + 1) for m in members]

        def some(v: Any) -> bool:
            for member in compiled:  # noqa: SIM110 - a loop: any() over a generator costs twice as much
                if member(v):
                    return True
            return False

        return some
    tests: list[Predicate] = []
    types = _types(schema)
    if types is not None:
        classes = frozenset(c for t in types for c in _CLASSES[t])
        if float in classes:
            tests.append(lambda v: v.__class__ in classes and (v.__class__ is not float or math.isfinite(v)))
        else:
            tests.append(lambda v: v.__class__ in classes)
    if "const" in schema:
        const = schema["const"]
        tests.append(lambda v: v == const)
    if "enum" in schema:
        allowed = list(schema["enum"])
        tests.append(lambda v: v in allowed)
    bounds = [
        (key, schema[key]) for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if key in schema
    ]
    if bounds:
        low = schema.get("minimum")
        high = schema.get("maximum")
        xlow = schema.get("exclusiveMinimum")
        xhigh = schema.get("exclusiveMaximum")

        def in_range(v: Any) -> bool:
            if v.__class__ is not int and v.__class__ is not float:
                return True  # not a number: the type test decides
            return (
                (low is None or v >= low)
                and (high is None or v <= high)
                and (xlow is None or v > xlow)
                and (xhigh is None or v < xhigh)
            )

        tests.append(in_range)
    if "minLength" in schema or "maxLength" in schema:
        min_len = schema.get("minLength", 0)
        max_len = schema.get("maxLength")
        tests.append(lambda v: not isinstance(v, str) or (len(v) >= min_len and (max_len is None or len(v) <= max_len)))
    if any(k in schema for k in ("items", "minItems", "maxItems")):
        item = _compile(schema["items"], depth + 1) if "items" in schema else None
        min_items = schema.get("minItems", 0)
        max_items = schema.get("maxItems")

        def list_ok(v: Any) -> bool:
            if v.__class__ is not list:
                return True
            if len(v) < min_items or (max_items is not None and len(v) > max_items):
                return False
            return item is None or all(item(x) for x in v)

        tests.append(list_ok)
    if any(k in schema for k in ("properties", "required")) or isinstance(
        schema.get("additionalProperties"), Mapping | bool
    ):
        required = tuple(schema.get("required", ()))
        props = {name: _compile(sub, depth + 1) for name, sub in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        extra: Predicate | None
        if extra_schema is False:
            extra = lambda v: False  # noqa: E731
        elif isinstance(extra_schema, Mapping):
            extra = _compile(extra_schema, depth + 1)
        else:
            extra = None

        def object_ok(v: Any) -> bool:
            if v.__class__ is not dict:
                return True
            for name in required:
                if name not in v:
                    return False
            for name, item_value in v.items():
                test = props.get(name)
                if test is not None:
                    if not test(item_value):
                        return False
                elif extra is not None and not extra(item_value):
                    return False
            return True

        tests.append(object_ok)
    return _all(tests)
