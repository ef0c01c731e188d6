"""Structured output: a response format from a Python type, and the reply parsed back.

```python
@attrs.frozen
class City:
    name: str
    population: int | None = None

reply = await client.chat.create(model=..., messages=..., response_format=response_format_from(City))
city = parse_structured(reply.text, City)          # a City, or APIResponseValidationError
```

The type to JSON Schema mapping (`_type_schema`): `str` string, `int` integer, `float` number, `bool`
boolean, `None` null, `X | None` / `Optional` / `Union` anyOf, `list[X]` / `Sequence[X]`
/ `tuple[X, ...]` / `set[X]` array, `dict[str, X]` object, `Literal[...]` and `Enum`
enum, `Any` anything, nested attrs classes and dataclasses `$ref`s into `$defs`. Fields
with a default are not required. Field descriptions come from field metadata
(`metadata={"description": ...}`) or an `Attributes:` docstring section.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar, overload

from wandb_inference._exceptions import APIResponseValidationError, InvalidRequestError

from ._reasoning import split_reasoning
from ._schema_check import Mismatch, validate_schema
from ._type_schema import convert, is_record, json_schema_of

__all__ = ["parse_structured", "response_format_from"]

T = TypeVar("T")


_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
_FENCE = r"(?s)```[A-Za-z0-9_+-]*[ \t]*\r?\n(.*?)```"


def response_format_from(
    schema_or_type: Mapping[str, Any] | type,
    *,
    name: str | None = None,
    strict: bool = True,
    description: str | None = None,
) -> dict[str, Any]:
    """A `response_format` asking for JSON that fits a schema or a Python type.

    Args:
        schema_or_type: a JSON schema dict, or an attrs class or dataclass whose schema
            is generated from its type hints (see the module docstring for the mapping).
        name: the schema's name (letters, digits, `_` and `-`, up to 64); defaults to the
            class name, or the schema's `title`, or `"response"`.
        strict: asks the server to follow the schema exactly (vLLM-based servers such as
            W&B constrain decoding to the schema either way).
        description: an optional description of the expected reply.

    Returns:
        `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.

    Raises:
        InvalidRequestError: a name that the API refuses, a schema that is not a
            JSON-serializable dict, or a type the generator does not support.
    """
    if is_record(schema_or_type):
        schema = json_schema_of(schema_or_type)
        default_name = schema_or_type.__name__
    elif isinstance(schema_or_type, Mapping):
        try:
            schema = json.loads(json.dumps(schema_or_type))  # a deep copy; proves it is JSON
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"the schema is not JSON-serializable: {exc}") from None
        inner = schema.get("json_schema")
        if schema.get("type") == "json_schema" and isinstance(inner, dict):  # a response_format
            schema, title = inner.get("schema") or {}, inner.get("name")
        else:
            title = schema.get("title")
        default_name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) else ""
    else:
        raise InvalidRequestError(
            f"response_format_from() takes a JSON schema dict, an attrs class or a dataclass, not {schema_or_type!r}"
        )
    chosen = name if name is not None else (default_name or "response")
    if not isinstance(chosen, str) or not re.match(_NAME, chosen):
        raise InvalidRequestError(f"name must be 1-64 letters, digits, '_' or '-', got {chosen!r}")
    spec: dict[str, Any] = {"name": chosen}
    if description is not None:
        spec["description"] = description
    spec["schema"] = schema
    spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def _candidates(text: str) -> list[str]:
    """The texts to try as JSON: the reply, its fenced block, its outermost braces."""
    answer = split_reasoning(text)[1].strip()
    out = [answer]
    if answer.startswith("```"):
        match = re.match(_FENCE, answer)
        body = match.group(1) if match else answer.split("\n", 1)[-1]  # unclosed fence
        out.insert(0, body.strip())
    else:
        match = re.search(_FENCE, answer)
        if match:
            out.append(match.group(1).strip())
    start, end = answer.find("{"), answer.rfind("}")
    if -1 < start < end and answer[start : end + 1] != answer:
        out.append(answer[start : end + 1])
    return out


def _load_json(text: str | None, what: str) -> Any:
    if text is None or not text.strip():
        raise APIResponseValidationError(f"the reply is empty: expected JSON for {what}", body=text)
    error: ValueError | None = None
    for candidate in _candidates(text):
        try:
            return json.loads(candidate)
        except ValueError as exc:
            error = error or exc
    raise APIResponseValidationError(
        f"the reply is not valid JSON for {what} ({error}); it starts {text[:200]!r}", body=text
    )


@overload
def parse_structured(text: str | None, schema_or_type: type[T]) -> T: ...


@overload
def parse_structured(text: str | None, schema_or_type: Mapping[str, Any]) -> Any: ...


def parse_structured(text: str | None, schema_or_type: type[T] | Mapping[str, Any]) -> Any:
    """Parse a structured reply and check it against the schema or type asked for.

    A leading `<think>` block, Markdown code fences (```` ```json ````) and text around
    the outermost `{...}` are ignored: some models add them.

    Args:
        text: the reply's content (`reply.text`).
        schema_or_type: what was asked for: an attrs class or dataclass, a JSON schema
            dict, or the `response_format` dict itself.

    Returns:
        An instance of the class (nested records, enums, tuples and sets converted;
        unknown keys ignored), or the parsed JSON value for a schema dict. A schema is
        checked for `type`, `enum`, `const`, `properties`, `required`,
        `additionalProperties`, `items`, `prefixItems`, `anyOf`/`oneOf`/`allOf`, local
        `$ref`s, and length, size and range bounds; other keywords are not checked.

    Raises:
        APIResponseValidationError: the reply is not JSON or does not fit; its `body`
            keeps the text.
        InvalidRequestError: `schema_or_type` is neither a record class nor a dict.
    """
    if is_record(schema_or_type):
        what = schema_or_type.__name__
        value = _load_json(text, what)
        try:
            return convert(value, schema_or_type, "$")
        except Mismatch as exc:
            raise APIResponseValidationError(f"the reply does not fit {what} {exc}", body=text) from None
    if isinstance(schema_or_type, Mapping):
        schema: Mapping[str, Any] = schema_or_type
        inner = schema.get("json_schema")
        if schema.get("type") == "json_schema" and isinstance(inner, Mapping):
            schema = inner.get("schema") or {}
        value = _load_json(text, "the schema")
        try:
            validate_schema(value, schema)
        except Mismatch as exc:
            raise APIResponseValidationError(f"the reply does not fit the schema {exc}", body=text) from None
        return value
    raise InvalidRequestError(
        f"parse_structured() takes an attrs class, a dataclass or a schema dict, not {schema_or_type!r}"
    )
