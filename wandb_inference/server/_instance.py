"""A JSON value that conforms to a JSON Schema: structured output and tool arguments.

Supported: `type` (one or a list), `const`, `enum`, `properties` + `required`,
`additionalProperties`, `minProperties`, `items`, `prefixItems`, `minItems`, `maxItems`,
`uniqueItems`, `minimum`/`maximum` (and the exclusive forms), `multipleOf`, `minLength`,
`maxLength`, common `format`s, `anyOf`/`oneOf` (one member), `allOf` (merged), local
`$ref`s (`#/$defs/...`, `#/definitions/...`), and recursion (bounded by depth). Not
supported: `pattern` (a regex cannot be inverted here; strings are still words) and
`not`/`if`/`then`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from ._words import Words

__all__ = ["json_object", "schema_instance"]

_MAX_DEPTH = 6
_FORMATS = {
    "date": lambda r: f"20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "date-time": lambda r: (
        f"20{r.randint(10, 29)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        f"T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"
    ),
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z",
    "email": lambda r: f"user{r.randint(1, 999)}@example.com",
    "uri": lambda r: f"https://example.com/{r.randint(1, 9999)}",
    "url": lambda r: f"https://example.com/{r.randint(1, 9999)}",
    "uuid": lambda r: (
        f"{r.getrandbits(32):08x}-{r.getrandbits(16):04x}-4{r.getrandbits(12):03x}"
        f"-8{r.getrandbits(12):03x}-{r.getrandbits(48):012x}"
    ),
    "ipv4": lambda r: ".".join(str(r.randint(1, 254)) for _ in range(4)),
    "hostname": lambda r: f"host{r.randint(1, 99)}.example.com",
}


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def json_object(rng: random.Random, words: Words) -> dict[str, Any]:
    """A small free-form JSON object (for `response_format: json_object`).

    Args:
        rng: the reply's PRNG.
        words: the reply's word source.

    Returns:
        An object with a text answer, a number, a boolean and a list of words.
    """
    return {
        "answer": " ".join(words.sentence()),
        "confidence": round(rng.uniform(0.5, 0.99), 2),
        "complete": rng.random() < 0.7,
        "topics": [words.word() for _ in range(rng.randint(1, 3))],
    }


def schema_instance(schema: Mapping[str, Any] | bool, rng: random.Random, words: Words) -> Any:
    """A value valid against `schema`.

    Args:
        schema: a JSON Schema (a mapping, or a boolean schema).
        rng: the reply's PRNG.
        words: the reply's word source, for strings.

    Returns:
        A JSON-compatible value.
    """
    root = schema if isinstance(schema, Mapping) else {}
    return _Builder(root, rng, words).build(schema, 0)


class _Builder:
    def __init__(self, root: Mapping[str, Any], rng: random.Random, words: Words) -> None:
        self._root = root
        self._rng = rng
        self._words = words

    def build(self, schema: Mapping[str, Any] | bool, depth: int) -> Any:
        if schema is True or schema is False:
            return self._words.word()
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._rng.choice(list(schema["enum"]))
        if "allOf" in schema:
            return self.build(self._merge(schema), depth)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.build(self._pick_member(schema[key], depth), depth + 1)
        kind = self._type_of(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema)

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            seen += 1
            target: Any = self._root
            ref: str = schema["$ref"]
            for part in ref.removeprefix("#").strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, Mapping) else siblings
        return schema

    def _merge(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for member in schema["allOf"]:
            member = self._resolve(member) if isinstance(member, Mapping) else {}
            for key, value in member.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = [*merged.get("required", []), *value]
                else:
                    merged.setdefault(key, value)
        return merged

    def _pick_member(self, members: list[Any], depth: int) -> Any:
        if depth >= _MAX_DEPTH:
            # Deep in a recursive schema: prefer a member that ends the recursion.
            for member in members:
                if isinstance(member, Mapping) and self._resolve(member).get("type") == "null":
                    return member
        non_null = [m for m in members if not (isinstance(m, Mapping) and m.get("type") == "null")]
        return self._rng.choice(non_null or members)

    def _type_of(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            options = [t for t in declared if t != "null"] or ["null"]
            if depth >= _MAX_DEPTH and "null" in declared:
                return "null"
            return str(self._rng.choice(options))
        if isinstance(declared, str):
            return declared
        if "properties" in schema or "additionalProperties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if "minimum" in schema or "maximum" in schema:
            return "number"
        return "string"

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        props: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        out: dict[str, Any] = {}
        for name, sub in props.items():
            # Optional properties come and go, so clients see both shapes; never when deep.
            if name in required or (depth < _MAX_DEPTH - 1 and self._rng.random() < 0.6):
                out[name] = self.build(sub, depth + 1)
        for name in required - set(out):
            out[name] = self.build(props.get(name, True), depth + 1)
        extra = schema.get("additionalProperties", not props)
        wanted = int(schema.get("minProperties", 0)) if props else self._rng.randint(1, 2)
        while len(out) < wanted and extra is not False:
            key = self._words.word().replace(" ", "_")
            if key in out:
                key = f"{key}_{len(out)}"
            out[key] = self.build(extra if isinstance(extra, Mapping) else True, depth + 1)
        return out

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", low + 3))
        # Usually one to three items, never outside [minItems, maxItems]; few when deep.
        shallow = depth < _MAX_DEPTH and high > low
        count = self._rng.randint(max(low, 1), min(high, low + 3)) if shallow else low
        prefix: list[Any] = list(schema.get("prefixItems", []))
        items = schema.get("items", True)
        out: list[Any] = []
        attempts = 0
        while len(out) < count and attempts < count * 20:
            attempts += 1
            sub = prefix[len(out)] if len(out) < len(prefix) else items
            value = self.build(sub, depth + 1)
            if schema.get("uniqueItems") and value in out:
                continue
            out.append(value)
        return out

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = self._bounds(schema, default=(0, 100), step=1)
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and multiple > 0:
            first = -(-math.ceil(low) // multiple) * multiple
            last = math.floor(high) // multiple * multiple
            if first <= last:
                return first + multiple * self._rng.randint(0, (last - first) // multiple)
        first_int, last_int = math.ceil(low), math.floor(high)
        return self._rng.randint(first_int, max(first_int, last_int))

    def _number(self, schema: Mapping[str, Any]) -> float:
        low, high = self._bounds(schema, default=(0.0, 100.0), step=0.01)
        value = round(self._rng.uniform(low, high), 2)
        return min(max(value, low), high)

    def _bounds(self, schema: Mapping[str, Any], *, default: tuple[float, float], step: float) -> tuple[float, float]:
        low = _number_or_none(schema.get("minimum"))
        high = _number_or_none(schema.get("maximum"))
        exclusive_low = _number_or_none(schema.get("exclusiveMinimum"))
        exclusive_high = _number_or_none(schema.get("exclusiveMaximum"))
        if exclusive_low is not None:
            low = exclusive_low + step if low is None else max(low, exclusive_low + step)
        if exclusive_high is not None:
            high = exclusive_high - step if high is None else min(high, exclusive_high - step)
        span = default[1] - default[0]
        if low is None:
            if high is None:
                return default
            low = min(default[0], high - span)
        elif high is None:
            high = max(default[1], low + span)
        return low, max(low, high)

    def _string(self, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        make = _FORMATS.get(fmt) if isinstance(fmt, str) else None
        text = make(self._rng) if make is not None else self._words.phrase()
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        while len(text) < low:
            text += " " + self._words.word()
        if isinstance(high, int):
            text = text[:high].rstrip() if len(text[:high].rstrip()) >= low else text[:high]
        return text
