"""Python types to JSON Schema, and JSON values back to typed values.

Shared by structured output (`_structured`: `response_format_from`, `parse_structured`)
and tool definitions (`_tools`: `function_tool`, `run_tool_calls`).

Types map to JSON Schema as: `str` string, `int` integer, `float` number, `bool`
boolean, `None` null, `X | None` / `Optional` / `Union` anyOf, `list[X]` / `Sequence[X]`
/ `tuple[X, ...]` / `set[X]` array, `dict[str, X]` object, `Literal[...]` and `Enum`
enum, `Any` anything, nested attrs classes and dataclasses `$ref`s into `$defs`. Fields
with a default are not required. Field descriptions come from field metadata
(`metadata={"description": ...}`) or an `Attributes:` docstring section.
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import enum
import functools
import inspect
import math
import re
import types
import typing
from typing import Any, Literal, TypeGuard

import attrs

from wandb_inference._exceptions import InvalidRequestError

from ._schema_check import Mismatch, describe

__all__ = ["SchemaBuilder", "convert", "is_record", "json_schema_of", "own_doc", "parse_docstring", "record_fields"]

_MISSING: Any = object()


_SECTION = r"^([A-Z][A-Za-z ]*):\s*$"


_ENTRY = r"^\*{0,2}([A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$"


_ARG_SECTIONS = frozenset({"Args", "Arguments", "Parameters", "Params", "Attributes"})


_SEQUENCES = (list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection)


_SETS = (set, frozenset, cabc.Set, cabc.MutableSet)


_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


_BARE: dict[Any, Any] = {
    list: list[Any],
    tuple: tuple[Any, ...],
    set: set[Any],
    frozenset: frozenset[Any],
    dict: dict[str, Any],
}


_SUPPORTED = (
    "str, int, float, bool, None, Any, Optional/Union, list/Sequence/tuple/set, "
    "dict[str, X], Literal, Enum, attrs classes and dataclasses"
)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """A Google-style docstring's description and its per-name entries.

    Args:
        doc: the docstring, or None.

    Returns:
        `(description, entries)`: the text before the first section, and the entries of
        the `Args:` / `Parameters:` / `Attributes:` sections by name.
    """
    if not doc:
        return "", {}
    description: list[str] = []
    entries: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent = -1
    for line in inspect.cleandoc(doc).splitlines():
        header = re.match(_SECTION, line)
        if header is not None:
            section, current, entry_indent = header.group(1), None, -1
            continue
        if section is None:
            description.append(line)
            continue
        if section not in _ARG_SECTIONS or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        entry = re.match(_ENTRY, line.strip())
        if entry is not None and (entry_indent == -1 or indent <= entry_indent):
            current, entry_indent = entry.group(1), indent
            entries[current] = entry.group(2).strip()
        elif current is not None:
            entries[current] = f"{entries[current]} {line.strip()}".strip()
    paragraphs = "\n".join(description).strip().split("\n\n")
    text = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return text, entries


class _Field:
    # A plain class, not attrs: defining attrs classes costs import time.
    __slots__ = ("default", "description", "key", "required", "tp")

    def __init__(self, key: str, tp: Any, required: bool, default: Any, description: str) -> None:
        self.key = key  # the JSON key, and the keyword the class's __init__ takes
        self.tp = tp
        self.required = required
        self.default = default
        self.description = description


def is_record(tp: object) -> TypeGuard[type]:
    """True for an attrs class or a dataclass (the class, not an instance)."""
    return isinstance(tp, type) and (attrs.has(tp) or dataclasses.is_dataclass(tp))


def _hints(obj: Any, what: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except NameError as exc:
        raise InvalidRequestError(
            f"cannot resolve the type hints of {what}: {exc}. Define the types it uses at "
            "module level (not inside a function)"
        ) from None


@functools.cache
def record_fields(cls: type) -> tuple[_Field, ...]:
    """The init fields of an attrs class or dataclass, with resolved types."""
    hints = _hints(cls, cls.__qualname__)
    docs = parse_docstring(own_doc(cls))[1]
    out = []
    if attrs.has(cls):
        for a in attrs.fields(cls):
            if not a.init:
                continue
            required = a.default is attrs.NOTHING
            default = _MISSING if required or isinstance(a.default, attrs.Factory) else a.default  # type: ignore[arg-type]
            key = a.alias or a.name
            desc = a.metadata.get("description") or docs.get(a.name) or docs.get(key) or ""
            out.append(_Field(key, hints.get(a.name, Any), required, default, str(desc)))
    else:
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            no_factory = f.default_factory is dataclasses.MISSING
            required = f.default is dataclasses.MISSING and no_factory
            default = _MISSING if f.default is dataclasses.MISSING else f.default
            desc = f.metadata.get("description") or docs.get(f.name) or ""
            out.append(_Field(f.name, hints.get(f.name, Any), required, default, str(desc)))
    return tuple(out)


def own_doc(cls: type) -> str | None:
    doc = cls.__doc__
    # dataclasses invent `Name(field: type, ...)` when a class has no docstring.
    if doc is None or (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")):
        return None
    return doc


def _json_scalar(value: object) -> object:
    """The JSON value of a default or literal, or _MISSING when it has none."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return _MISSING


def _enum_schema(values: list[object], where: str) -> dict[str, Any]:
    json_values = [_json_scalar(v) for v in values]
    if any(v is _MISSING for v in json_values):
        raise InvalidRequestError(f"{where}: enum values must be str, int, float, bool or None")
    kinds = {_json_type(v) for v in json_values}
    schema: dict[str, Any] = {}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    schema["enum"] = json_values
    return schema


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


class SchemaBuilder:
    """Builds JSON schemas for Python types; nested records go into shared `$defs`."""

    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}
        self._names: dict[type, str] = {}

    def schema(self, tp: Any, where: str) -> dict[str, Any]:
        """The schema of one type (`where` names it in errors)."""
        simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if tp in simple:
            return {"type": simple[tp]}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Literal:
            return _enum_schema(list(args), where)
        if origin is typing.Union or origin is types.UnionType:
            return {"anyOf": [self.schema(a, where) for a in args]}
        if tp in (list, tuple, set, frozenset):
            return {"type": "array"}
        if tp is dict:
            return {"type": "object"}
        if origin in _SEQUENCES:
            return {"type": "array", "items": self.schema(args[0], where)}
        if origin in _SETS:
            return {"type": "array", "items": self.schema(args[0], where), "uniqueItems": True}
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": self.schema(args[0], where)}
            items = [self.schema(a, where) for a in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        if origin in _MAPPINGS:
            if args[0] not in (str, Any):
                raise InvalidRequestError(f"{where}: JSON object keys are strings, not {args[0]!r}")
            return {"type": "object", "additionalProperties": self.schema(args[1], where)}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_schema([m.value for m in tp], where)
        if is_record(tp):
            return {"$ref": f"#/$defs/{self._define(tp)}"}
        raise InvalidRequestError(f"{where}: no JSON schema for {tp!r}; supported: {_SUPPORTED}")

    def _define(self, cls: type) -> str:
        name = self._names.get(cls)
        if name is not None:
            return name
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", cls.__name__)
        taken = set(self._names.values())
        base, n = name, 1
        while name in taken:
            n += 1
            name = f"{base}{n}"
        self._names[cls] = name
        self.defs[name] = {}  # reserved first: a recursive record refers to itself
        self.defs[name] = self.object_schema(cls)
        return name

    def object_schema(self, cls: type) -> dict[str, Any]:
        """The inline object schema of an attrs class or dataclass."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in record_fields(cls):
            prop = self.schema(field.tp, f"{cls.__qualname__}.{field.key}")
            if "$ref" not in prop:  # no siblings beside a $ref: some decoders drop them
                if field.description:
                    prop["description"] = field.description
                default = _json_scalar(field.default)
                if field.default is not _MISSING and default is not _MISSING:
                    prop["default"] = default
            properties[field.key] = prop
            if field.required:
                required.append(field.key)
        schema: dict[str, Any] = {"type": "object"}
        description = parse_docstring(own_doc(cls))[0]
        if description:
            schema["description"] = description
        schema.update(properties=properties, required=required, additionalProperties=False)
        return schema

    def root(self, cls: type) -> dict[str, Any]:
        """The top-level schema of a record: inline, with `$defs` when it has nested ones."""
        name = self._define(cls)
        schema = dict(self.defs[name])
        if not _refers_to(self.defs, f"#/$defs/{name}"):
            del self.defs[name]
        return self.with_defs(schema)

    def with_defs(self, schema: dict[str, Any]) -> dict[str, Any]:
        """`schema` with the collected `$defs` attached (when there are any)."""
        if self.defs:
            schema["$defs"] = dict(self.defs)
        return schema


def _refers_to(node: object, ref: str) -> bool:
    if isinstance(node, dict):
        if node.get("$ref") == ref:
            return True
        return any(_refers_to(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, ref) for v in node)
    return False


def json_schema_of(cls: type) -> dict[str, Any]:
    """The JSON schema of an attrs class or dataclass."""
    return SchemaBuilder().root(cls)


def convert(value: Any, tp: Any, path: str) -> Any:
    """`value` (parsed JSON) as the Python type `tp`.

    Raises:
        Mismatch: the value does not fit.
        InvalidRequestError: `tp` is not a supported type.
    """
    if tp is Any or tp is object:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise Mismatch(path, f"expected null, got {describe(value)}")
        return None
    if tp is str or tp is bool:
        if not isinstance(value, tp):
            raise Mismatch(path, f"expected {'a string' if tp is str else 'true or false'}, got {describe(value)}")
        return value
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise Mismatch(path, f"expected an integer, got {describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Mismatch(path, f"expected a number, got {describe(value)}")
        return float(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for option in args:
            if _json_scalar(option) == value and type(_json_scalar(option)) is type(value):
                return option
        raise Mismatch(path, f"expected one of {list(args)!r}, got {describe(value)}")
    if origin is typing.Union or origin is types.UnionType:
        problems = []
        for option in args:
            try:
                return convert(value, option, path)
            except Mismatch as exc:
                problems.append(exc.relative_to(path))
        raise Mismatch(path, " or ".join(problems))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = [m.value for m in tp]
            raise Mismatch(path, f"expected one of {allowed!r}, got {describe(value)}") from None
    if is_record(tp):
        return _convert_record(value, tp, path)
    if tp in _BARE:
        origin, args = typing.get_origin(_BARE[tp]), typing.get_args(_BARE[tp])
    if origin in _MAPPINGS:
        if not isinstance(value, dict):
            raise Mismatch(path, f"expected an object, got {describe(value)}")
        return {k: convert(v, args[1], f"{path}.{k}") for k, v in value.items()}
    if origin in _SEQUENCES or origin in _SETS or origin is tuple:
        if not isinstance(value, list):
            raise Mismatch(path, f"expected an array, got {describe(value)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise Mismatch(path, f"expected {len(args)} items, got {len(value)}")
            return tuple(convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        items = [convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value)]
        if origin is tuple:
            return tuple(items)
        if origin in _SETS:
            return frozenset(items) if origin is frozenset else set(items)
        return items
    raise InvalidRequestError(f"{path}: cannot convert to {tp!r}; supported: {_SUPPORTED}")


def _convert_record(value: Any, cls: type, path: str) -> Any:
    if not isinstance(value, dict):
        raise Mismatch(path, f"expected an object for {cls.__name__}, got {describe(value)}")
    kwargs = {}
    for field in record_fields(cls):
        if field.key in value:
            kwargs[field.key] = convert(value[field.key], field.tp, f"{path}.{field.key}")
        elif field.required:
            raise Mismatch(path, f"missing required key {field.key!r} of {cls.__name__}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # attrs validators and converters
        raise Mismatch(path, f"{cls.__name__} refused the values: {exc}") from None
