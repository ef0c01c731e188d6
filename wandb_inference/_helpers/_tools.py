"""Tool calling, round trip: tool definitions from functions, and the calls answered.

```python
def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, float]:
    \"\"\"The current weather in a city.

    Args:
        city: the city's name.
        unit: the temperature unit.
    \"\"\"

reply = client.chat.create(model=..., messages=messages, tools=[function_tool(get_weather)])
message = reply.choices[0].message
if message.tool_calls:
    messages.append(message.to_dict())
    messages += run_tool_calls(message.tool_calls, {"get_weather": get_weather})
    reply = client.chat.create(model=..., messages=messages, tools=...)
```

A tool call may be a generated `ToolCall` (`call.function.arguments`) or the same as a
dict (`{"id", "type", "function": {"name", "arguments"}}`), as a stream's accumulated
completion gives them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from wandb_inference._exceptions import APIResponseValidationError, InvalidRequestError

from ._schema_check import Mismatch
from ._type_schema import SchemaBuilder, convert, is_record, own_doc, parse_docstring

__all__ = [
    "arun_tool_calls",
    "function_tool",
    "parse_tool_arguments",
    "run_tool_calls",
    "tool_result_message",
]

_NAME = r"^[a-zA-Z0-9_-]{1,64}$"


class _FunctionCallLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def arguments(self) -> str: ...


class _ToolCallLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def function(self) -> _FunctionCallLike: ...


ToolCallLike = _ToolCallLike | Mapping[str, Any]
"""A generated `ToolCall` (or anything shaped like it), or a tool call dict."""


# --------------------------------------------------------------------------- definitions


def function_tool(
    fn_or_schema: Callable[..., Any] | Mapping[str, Any],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> dict[str, Any]:
    """A `tools` entry for a Python function, an attrs class or dataclass, or a schema.

    For a function, each keyword-callable parameter becomes a property of the
    `parameters` schema, typed from its annotation (the mapping of
    `response_format_from`; unannotated parameters accept anything) and described from
    the docstring's `Args:` section; parameters with defaults are not required. The
    docstring's text before its sections describes the tool.

    Args:
        fn_or_schema: a function; an attrs class or dataclass (its fields are the
            parameters); a `parameters` JSON schema (then `name` is required); a function
            definition `{"name", "description", "parameters"}`; or a whole tool dict.
        name: the function name the model calls; defaults to the function's or class's.
        description: what the tool does; defaults to the docstring's description.
        strict: sent as `function.strict` when given.

    Returns:
        `{"type": "function", "function": {"name", "description", "parameters"}}`.

    Raises:
        InvalidRequestError: no usable name (lambdas need `name=`), a positional-only
            parameter without a default, or an annotation with no JSON schema.
    """
    if isinstance(fn_or_schema, Mapping):
        function = _definition_from_mapping(fn_or_schema, name)
    elif is_record(fn_or_schema):
        parameters = SchemaBuilder().root(fn_or_schema)
        parameters.pop("description", None)
        function = {
            "name": name or fn_or_schema.__name__,
            "description": parse_docstring(own_doc(fn_or_schema))[0],
            "parameters": parameters,
        }
    elif callable(fn_or_schema):
        function = _definition_from_function(fn_or_schema, name)
    else:
        raise InvalidRequestError(
            f"function_tool() takes a function, a class or a schema dict, not {type(fn_or_schema).__name__}"
        )
    if description is not None:
        function["description"] = description
    if not function.get("description"):
        function.pop("description", None)
    if strict is not None:
        function["strict"] = strict
    if not isinstance(function.get("name"), str) or not re.match(_NAME, function["name"]):
        raise InvalidRequestError(
            f"a tool name must be 1-64 letters, digits, '_' or '-', got {function.get('name')!r}; pass name=..."
        )
    return {"type": "function", "function": function}


def _definition_from_mapping(schema: Mapping[str, Any], name: str | None) -> dict[str, Any]:
    try:
        copied: dict[str, Any] = json.loads(json.dumps(schema))  # a deep copy; proves it is JSON
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"the tool schema is not JSON-serializable: {exc}") from None
    if copied.get("type") == "function" and isinstance(copied.get("function"), dict):
        function: dict[str, Any] = copied["function"]
    elif "parameters" in copied or ("name" in copied and "properties" not in copied):
        function = copied
    else:  # a bare `parameters` schema
        if name is None:
            raise InvalidRequestError("function_tool(schema) needs name=... for a bare parameters schema")
        function = {"name": name, "parameters": copied}
    if name is not None:
        function["name"] = name
    return function


def _definition_from_function(fn: Callable[..., Any], name: str | None) -> dict[str, Any]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"cannot read the signature of {fn!r}: {exc}") from None
    fn_name: str = name or getattr(fn, "__name__", "") or ""
    hints = _function_hints(fn, fn_name)
    description, arg_docs = parse_docstring(inspect.getdoc(fn))
    builder = SchemaBuilder()
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            extra = True
            continue
        if param.kind is param.VAR_POSITIONAL:
            continue
        if param.kind is param.POSITIONAL_ONLY:
            if param.default is param.empty:
                raise InvalidRequestError(
                    f"{fn_name}(): positional-only parameter {param.name!r} cannot be passed by "
                    "name; tool arguments arrive as keywords"
                )
            continue
        prop = builder.schema(hints.get(param.name, Any), f"{fn_name}({param.name})")
        if "$ref" not in prop:
            if param.name in arg_docs:
                prop["description"] = arg_docs[param.name]
            if param.default is not param.empty and _is_json_scalar(param.default):
                prop["default"] = param.default.value if isinstance(param.default, enum.Enum) else param.default
        properties[param.name] = prop
        if param.default is param.empty:
            required.append(param.name)
    parameters = builder.with_defs(
        {"type": "object", "properties": properties, "required": required, "additionalProperties": extra}
    )
    return {"name": fn_name, "description": description, "parameters": parameters}


def _function_hints(fn: Callable[..., Any], fn_name: str) -> dict[str, Any]:
    target: object
    if isinstance(fn, functools.partial):
        target = fn.func
    elif inspect.isclass(fn):
        target = fn.__init__
    elif inspect.isfunction(fn) or inspect.ismethod(fn):
        target = fn
    else:  # an object with __call__
        target = type(fn).__call__
    try:
        return typing.get_type_hints(target)
    except NameError as exc:
        raise InvalidRequestError(
            f"cannot resolve the type hints of {fn_name}(): {exc}. Define the types it uses at module level"
        ) from None
    except TypeError:  # builtins and other callables without annotations
        return {}


def _is_json_scalar(value: object) -> bool:
    if isinstance(value, enum.Enum):
        value = value.value
    return value is None or isinstance(value, str | bool | int | float)


# --------------------------------------------------------------------------- results


def _jsonable(obj: Any) -> Any:
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):  # generated models
        return to_dict()
    if attrs.has(type(obj)):
        return attrs.asdict(obj, recurse=False)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, dt.date | dt.time):
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _encode(result: object) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, ensure_ascii=False, default=_jsonable)


def tool_result_message(tool_call_id: str, result: object) -> dict[str, Any]:
    """The `tool` message that answers one tool call.

    Args:
        tool_call_id: the `id` of the tool call answered.
        result: the function's result: a str is sent as is; anything else as JSON
            (attrs and dataclass instances, enums, sets, dates and generated models
            are converted).

    Returns:
        `{"role": "tool", "tool_call_id": ..., "content": ...}`.

    Raises:
        InvalidRequestError: `tool_call_id` is not a str, or `result` cannot be encoded.
    """
    if not isinstance(tool_call_id, str):
        raise InvalidRequestError(f"tool_call_id must be a str, got {type(tool_call_id).__name__}")
    try:
        content = _encode(result)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"cannot send the tool result as JSON: {exc}") from None
    return {"role": "tool", "tool_call_id": tool_call_id, "content": content}


# --------------------------------------------------------------------------- calls


def _parts(tool_call: object) -> tuple[str, str, object]:
    """(id, function name, raw arguments) of a tool call or a legacy function call."""
    if isinstance(tool_call, Mapping):
        function = tool_call.get("function", tool_call)
        call_id = tool_call.get("id") or ""
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(call_id), function["name"], function.get("arguments")
    else:
        function = getattr(tool_call, "function", tool_call)
        name = getattr(function, "name", None)
        if isinstance(name, str):
            return str(getattr(tool_call, "id", "") or ""), name, getattr(function, "arguments", None)
    raise InvalidRequestError(
        f"not a tool call: {tool_call!r}; expected a ToolCall or {{'id', 'function': {{'name', 'arguments'}}}}"
    )


def _decode_arguments(call_id: str, name: str, raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, Mapping):  # a few servers send parsed arguments
        return dict(raw)
    if not isinstance(raw, str):
        raise APIResponseValidationError(
            f"the arguments of tool call {call_id!r} ({name}) are {type(raw).__name__}, not JSON text",
            body=raw,
        )
    if not raw.strip():  # functions without parameters: some models send ""
        return {}
    try:
        value = json.loads(raw)
        if isinstance(value, str):  # arguments encoded twice: '"{\"a\": 1}"'
            value = json.loads(value)
    except ValueError as exc:
        raise APIResponseValidationError(
            f"the arguments of tool call {call_id!r} ({name}) are not valid JSON ({exc}): {raw[:200]!r}",
            body=raw,
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise APIResponseValidationError(
            f"the arguments of tool call {call_id!r} ({name}) must be a JSON object, got {raw[:200]!r}",
            body=raw,
        )
    return value


def parse_tool_arguments(tool_call: ToolCallLike) -> dict[str, Any]:
    """The arguments of a tool call, parsed from their JSON text.

    Empty or `null` arguments give `{}` (models send them for functions without
    parameters); arguments already parsed by the server, or JSON-encoded twice, are
    accepted.

    Args:
        tool_call: a generated `ToolCall`, a tool call dict, or a legacy `function_call`.

    Returns:
        The arguments by name.

    Raises:
        APIResponseValidationError: the arguments are not JSON, or not a JSON object;
            `body` keeps the text.
        InvalidRequestError: `tool_call` is not shaped like a tool call.
    """
    call_id, name, raw = _parts(tool_call)
    return _decode_arguments(call_id, name, raw)


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


class _Prepared:
    __slots__ = ("arguments", "call_id", "error", "fn", "name")

    def __init__(
        self,
        call_id: str,
        name: str,
        fn: Callable[..., Any] | None,
        arguments: dict[str, Any],
        error: str = "",
    ) -> None:
        self.call_id = call_id
        self.name = name
        self.fn = fn  # None: `error` says why the call cannot be made
        self.arguments = arguments
        self.error = error


def _prepare(tool_call: ToolCallLike, functions: Mapping[str, Callable[..., Any]]) -> _Prepared:
    call_id, name, raw = _parts(tool_call)
    fn = functions.get(name)
    if fn is None:
        known = ", ".join(sorted(functions)) or "none"
        return _Prepared(call_id, name, None, {}, f"unknown function {name!r}; the functions are: {known}")
    try:
        arguments = _decode_arguments(call_id, name, raw)
    except APIResponseValidationError as exc:
        return _Prepared(call_id, name, None, {}, f"invalid arguments for {name}: {exc}")
    try:
        inspect.signature(fn).bind(**arguments)
    except TypeError as exc:
        return _Prepared(call_id, name, None, {}, f"invalid arguments for {name}: {exc}")
    except ValueError:  # a builtin without a signature: let the call decide
        return _Prepared(call_id, name, fn, arguments)
    try:
        hints = _function_hints(fn, name)
    except InvalidRequestError:
        hints = {}
    for key, value in arguments.items():
        if key in hints:
            try:
                arguments[key] = convert(value, hints[key], key)
            except Mismatch as exc:
                return _Prepared(call_id, name, None, {}, f"invalid arguments for {name}: {exc}")
            except InvalidRequestError:  # an annotation the SDK cannot check: pass as is
                pass
    return _Prepared(call_id, name, fn, arguments)


def _failure(call: _Prepared, exc: Exception, raise_errors: bool) -> dict[str, Any]:
    if raise_errors:
        raise exc
    return tool_result_message(call.call_id, _error(f"{call.name} failed: {type(exc).__name__}: {exc}"))


def _result(call: _Prepared, result: object, raise_errors: bool) -> dict[str, Any]:
    try:
        return tool_result_message(call.call_id, result)
    except InvalidRequestError as exc:
        return _failure(call, exc, raise_errors)


def run_tool_calls(
    tool_calls: Iterable[ToolCallLike] | None,
    functions: Mapping[str, Callable[..., Any]],
    *,
    raise_errors: bool = False,
) -> list[dict[str, Any]]:
    """Call the functions a reply asked for and return the `tool` messages answering them.

    Calls run one after the other, in order. Whatever goes wrong is told to the model
    rather than raised, so it can correct itself: an unknown function name, arguments
    that are not JSON or do not fit the function's signature and annotations (they are
    converted like `parse_structured` converts: nested records, enums, ...), an
    exception raised by the function, and a result that cannot be encoded as JSON each
    become a tool message whose content is `{"error": "..."}` (the exception's type and
    message, never its traceback).

    Args:
        tool_calls: the reply's `message.tool_calls` (None gives `[]`).
        functions: the callable for each function name.
        raise_errors: re-raise the functions' own exceptions (and result encoding
            errors) instead of telling the model, e.g. while debugging.

    Returns:
        One `tool` message per call, in the calls' order.

    Raises:
        InvalidRequestError: a function returned an awaitable (use `arun_tool_calls`),
            or a tool call is not shaped like one.
    """
    messages = []
    for tool_call in tool_calls or ():
        call = _prepare(tool_call, functions)
        if call.fn is None:
            messages.append(tool_result_message(call.call_id, _error(call.error)))
            continue
        try:
            result = call.fn(**call.arguments)
        except Exception as exc:
            messages.append(_failure(call, exc, raise_errors))
            continue
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()  # no "coroutine was never awaited" warning
            raise InvalidRequestError(f"{call.name}() is async: use `await arun_tool_calls(...)`")
        messages.append(_result(call, result, raise_errors))
    return messages


async def arun_tool_calls(
    tool_calls: Iterable[ToolCallLike] | None,
    functions: Mapping[str, Callable[..., Any]],
    *,
    raise_errors: bool = False,
) -> list[dict[str, Any]]:
    """`run_tool_calls` for async code: awaits what the functions return.

    Functions may be `async def` or plain; plain ones run inline, on the event loop
    (wrap blocking ones with `anyio.to_thread.run_sync`). Calls run one after the other;
    errors become tool messages as in `run_tool_calls`. Cancellation propagates.

    Args:
        tool_calls: the reply's `message.tool_calls` (None gives `[]`).
        functions: the callable (sync or async) for each function name.
        raise_errors: re-raise the functions' own exceptions instead of telling the model.

    Returns:
        One `tool` message per call, in the calls' order.

    Raises:
        InvalidRequestError: a tool call is not shaped like one.
    """
    messages = []
    for tool_call in tool_calls or ():
        call = _prepare(tool_call, functions)
        if call.fn is None:
            messages.append(tool_result_message(call.call_id, _error(call.error)))
            continue
        try:
            result = call.fn(**call.arguments)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            messages.append(_failure(call, exc, raise_errors))
            continue
        messages.append(_result(call, result, raise_errors))
    return messages
