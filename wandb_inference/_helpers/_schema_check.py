"""A small JSON-Schema checker for structured replies (`parse_structured`).

`jsonschema` is only a development dependency, so the SDK checks replies against the
subset of JSON Schema that `response_format_from` generates and users commonly write:
type, enum, const, $ref (local), anyOf/oneOf/allOf, properties/required/
additionalProperties, items/prefixItems, min/max lengths and items, numeric ranges.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Mismatch", "describe", "validate_schema"]


class Mismatch(Exception):
    """A value does not fit its type or schema; `path` says where."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"at {path}: {problem}")
        self.path = path
        self.problem = problem

    def relative_to(self, path: str) -> str:
        """The problem, as said from `path` (an option of a union tried there)."""
        return self.problem if self.path == path else f"({self})"


def describe(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_CHECKS: dict[str, Callable[[object], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _resolve(root: Mapping[str, Any], ref: str, path: str) -> Any:
    if not ref.startswith("#"):
        raise Mismatch(path, f"cannot follow the non-local $ref {ref!r}")
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise Mismatch(path, f"the schema's $ref {ref!r} points nowhere")
        node = node[part]
    return node


def _same(a: object, b: object) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _validate(value: Any, schema: Any, root: Mapping[str, Any], path: str) -> None:
    if schema is True or schema == {}:
        return
    if schema is False:
        raise Mismatch(path, "no value is allowed here")
    if not isinstance(schema, Mapping):
        return
    if "$ref" in schema:
        _validate(value, _resolve(root, schema["$ref"], path), root, path)
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(k not in _TYPE_CHECKS or _TYPE_CHECKS[k](value) for k in names):
            raise Mismatch(path, f"expected {' or '.join(names)}, got {describe(value)}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        raise Mismatch(path, f"expected one of {schema['enum']!r}, got {describe(value)}")
    if "const" in schema and not _same(value, schema["const"]):
        raise Mismatch(path, f"expected {schema['const']!r}, got {describe(value)}")
    for sub in schema.get("allOf", ()):
        _validate(value, sub, root, path)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        problems = []
        for sub in options:
            try:
                _validate(value, sub, root, path)
                break
            except Mismatch as exc:
                problems.append(exc.relative_to(path))
        else:
            raise Mismatch(path, " or ".join(problems))
    if isinstance(value, dict):
        _validate_object(value, schema, root, path)
    elif isinstance(value, list):
        _validate_array(value, schema, root, path)
    elif isinstance(value, str):
        _bounds(len(value), schema, "minLength", "maxLength", "characters", path)
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            raise Mismatch(path, f"{describe(value)} does not match {pattern!r}")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _range(value, schema, path)


def _validate_object(value: dict[str, Any], schema: Mapping[str, Any], root: Any, path: str) -> None:
    for key in schema.get("required", ()):
        if key not in value:
            raise Mismatch(path, f"missing required key {key!r}")
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            _validate(item, properties[key], root, f"{path}.{key}")
        elif extra is False:
            raise Mismatch(path, f"unexpected key {key!r}")
        else:
            _validate(item, extra, root, f"{path}.{key}")
    _bounds(len(value), schema, "minProperties", "maxProperties", "keys", path)


def _validate_array(value: list[Any], schema: Mapping[str, Any], root: Any, path: str) -> None:
    prefix = schema.get("prefixItems") or []
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items", True)
        _validate(item, sub, root, f"{path}[{i}]")
    _bounds(len(value), schema, "minItems", "maxItems", "items", path)
    if schema.get("uniqueItems"):
        seen = [json.dumps(v, sort_keys=True) for v in value]
        if len(set(seen)) != len(seen):
            raise Mismatch(path, "items must be unique")


def _bounds(size: int, schema: Mapping[str, Any], low: str, high: str, unit: str, path: str) -> None:
    if isinstance(schema.get(low), int) and size < schema[low]:
        raise Mismatch(path, f"expected at least {schema[low]} {unit}, got {size}")
    if isinstance(schema.get(high), int) and size > schema[high]:
        raise Mismatch(path, f"expected at most {schema[high]} {unit}, got {size}")


def _range(value: float, schema: Mapping[str, Any], path: str) -> None:
    checks: tuple[tuple[str, Callable[[float, float], bool], str], ...] = (
        ("minimum", operator.ge, ">="),
        ("maximum", operator.le, "<="),
        ("exclusiveMinimum", operator.gt, ">"),
        ("exclusiveMaximum", operator.lt, "<"),
    )
    for key, ok, sign in checks:
        bound = schema.get(key)
        if isinstance(bound, int | float) and not isinstance(bound, bool) and not ok(value, bound):
            raise Mismatch(path, f"expected a number {sign} {bound}, got {describe(value)}")


def validate_schema(value: Any, schema: Mapping[str, Any]) -> None:
    """Check `value` against `schema`.

    Raises:
        Mismatch: where and how the value does not fit.
    """
    _validate(value, schema, schema, "$")
