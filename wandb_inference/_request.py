"""Request building: validate a call's arguments and turn them into a JSON body. Pure.

Every check here runs before anything is sent, and raises `InvalidRequestError` naming the
argument and what is wrong with it. The checks are cheap (a pass over the messages):
they sit on every call's path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

import httpx

from ._config import check_timeout, validate_header_value
from ._exceptions import InvalidRequestError

__all__ = [
    "ChatParams",
    "EmbeddingParams",
    "RequestOptions",
    "build_chat_body",
    "build_embeddings_body",
    "build_options",
    "check_timeout",
]

TimeoutTypes = float | httpx.Timeout | None
MessageParam = Mapping[str, Any] | Any
"""A message: a dict (`{"role": "user", "content": "hi"}`) or a generated message model."""


class RequestOptions(TypedDict, total=False):
    """Per-call transport options accepted by every method."""

    extra_headers: Mapping[str, str] | None
    """Headers added to (or overriding) the client's for this call."""
    extra_query: Mapping[str, str] | None
    """Query parameters added to the URL."""
    extra_body: Mapping[str, Any] | None
    """JSON fields merged into the body last (for parameters the SDK does not know yet)."""
    timeout: float | httpx.Timeout | None
    """This call's timeout (seconds, or an `httpx.Timeout`); None: the client's."""


class ChatParams(RequestOptions, total=False):
    """Optional chat completion parameters. A parameter left out (or None) is not sent."""

    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    n: int | None
    stop: str | Sequence[str] | None
    seed: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    logit_bias: Mapping[str | int, float] | None
    response_format: Mapping[str, Any] | Any | None
    tools: Sequence[Mapping[str, Any] | Any] | None
    tool_choice: Literal["none", "auto", "required"] | Mapping[str, Any] | Any | None
    parallel_tool_calls: bool | None
    functions: Sequence[Mapping[str, Any] | Any] | None
    function_call: Literal["none", "auto"] | Mapping[str, Any] | Any | None
    stream_options: Mapping[str, Any] | Any | None
    chat_template_kwargs: Mapping[str, Any] | None
    cache_salt: str | None
    reasoning_effort: Literal["low", "medium", "high"] | None
    user: str | None


class EmbeddingParams(RequestOptions, total=False):
    """Optional embeddings parameters."""

    encoding_format: Literal["float", "base64"] | None
    dimensions: int | None
    user: str | None


_OPTION_KEYS = frozenset(RequestOptions.__annotations__)
_CHAT_KEYS = frozenset(ChatParams.__annotations__) - _OPTION_KEYS
_EMBEDDING_KEYS = frozenset(EmbeddingParams.__annotations__) - _OPTION_KEYS
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_PART_TYPES = frozenset({"text", "image_url"})


def _fail(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


def _as_mapping(value: object, what: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return result
    raise _fail(f"{what} must be a dict (or a wandb_inference model), not {type(value).__name__}")


def _check_number(name: str, value: object, low: float, high: float) -> float:
    # Only floats can be non-finite; `math.isfinite` on an int too large for a float
    # raises OverflowError, and the range check below handles any int exactly.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
    ):
        raise _fail(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise _fail(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise _fail(f"{name} must be {bound}, got {value}")
    return value


def _check_str(name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _fail(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value:
        raise _fail(f"{name} must not be empty")
    return value


def _check_content_parts(where: str, parts: Sequence[object], allow_images: bool) -> list[Any]:
    out: list[Any] = []
    for j, raw in enumerate(parts):
        part = _as_mapping(raw, f"{where}[{j}]")
        kind = part.get("type")
        if not isinstance(kind, str) or kind not in _PART_TYPES:  # a list or dict is unhashable
            raise _fail(f"{where}[{j}].type must be 'text' or 'image_url', got {kind!r}")
        if kind == "text":
            _check_str(f"{where}[{j}].text", part.get("text"), allow_empty=True)
        else:
            if not allow_images:
                raise _fail(f"{where}[{j}]: image parts are only allowed in user messages")
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else None
            if not isinstance(url, str) or not url:
                raise _fail(
                    f"{where}[{j}].image_url must be {{'url': 'https://...' or 'data:image/...'}}; "
                    "wandb_inference.image_part(path_or_bytes) builds one"
                )
        out.append(part)
    return out


def _check_message(i: int, raw: object) -> Mapping[str, Any]:
    message = _as_mapping(raw, f"messages[{i}]")
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:  # a list or dict is unhashable
        raise _fail(f"messages[{i}].role must be one of system, user, assistant, tool, got {role!r}")
    content = message.get("content")
    where = f"messages[{i}].content"
    if isinstance(content, str):
        pass
    elif content is None:
        if role != "assistant" or not (message.get("tool_calls") or message.get("function_call")):
            raise _fail(f"{where} is required (None is only allowed for an assistant message with tool calls)")
    elif isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        _check_content_parts(where, content, allow_images=role == "user")
    else:
        raise _fail(f"{where} must be a str or a list of content parts, got {type(content).__name__}")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise _fail(f"messages[{i}] (role 'tool') needs the tool_call_id it answers")
    return message


def _check_messages(messages: object) -> list[Mapping[str, Any]]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise _fail("messages must be a list of messages, e.g. [{'role': 'user', 'content': 'Hello'}]")
    if not messages:
        raise _fail("messages must not be empty")
    return [_check_message(i, m) for i, m in enumerate(messages)]


def _check_stop(stop: object) -> str | list[str]:
    if isinstance(stop, str):
        if not stop:
            raise _fail("stop must not be an empty string")
        return stop
    if isinstance(stop, Sequence) and not isinstance(stop, bytes):
        items = list(stop)
        if not 1 <= len(items) <= 4 or not all(isinstance(s, str) and s for s in items):
            raise _fail("stop must be a non-empty str or a list of 1 to 4 non-empty strs")
        return items
    raise _fail(f"stop must be a str or a list of strs, got {type(stop).__name__}")


def _check_choice(name: str, value: object, modes: frozenset[str]) -> object:
    if isinstance(value, str):
        if value not in modes:
            raise _fail(f"{name} must be one of {sorted(modes)} or a dict naming a function")
        return value
    mapping = _as_mapping(value, name)
    function = mapping.get("function", mapping)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _fail(f"{name} must name a function, e.g. {{'type': 'function', 'function': {{'name': 'f'}}}}")
    return mapping


def _check_tools(name: str, tools: object, legacy: bool) -> list[Mapping[str, Any]]:
    if isinstance(tools, str | bytes) or not isinstance(tools, Sequence):
        raise _fail(f"{name} must be a list")
    out = []
    for i, raw in enumerate(tools):
        tool = _as_mapping(raw, f"{name}[{i}]")
        function = tool if legacy else tool.get("function")
        if not legacy and tool.get("type", "function") != "function":
            raise _fail(f"{name}[{i}].type must be 'function' (the only tool type served)")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise _fail(
                f"{name}[{i}] must define a function with a name; "
                "wandb_inference.function_tool(fn) builds one from a Python function"
            )
        params = function.get("parameters")
        if params is not None and not isinstance(params, Mapping):
            raise _fail(f"{name}[{i}] parameters must be a JSON schema dict")
        out.append(tool)
    return out


def _check_response_format(value: object) -> Mapping[str, Any]:
    fmt = _as_mapping(value, "response_format")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise _fail(
                "response_format json_schema needs {'name': ..., 'schema': {...}}; "
                "wandb_inference.response_format_from(MyType) builds one"
            )
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, Mapping):
            raise _fail("response_format json_schema.schema must be a JSON schema dict")
    elif kind not in ("json_object", "text"):
        raise _fail(f"response_format.type must be 'json_object', 'json_schema' or 'text', got {kind!r}")
    return fmt


def _check_logit_bias(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _fail("logit_bias must be a dict of token id -> bias")
    out: dict[str, float] = {}
    for key, bias in value.items():
        token = str(key)
        if not token.isdigit():
            raise _fail(f"logit_bias keys must be token ids, got {key!r}")
        out[token] = _check_number(f"logit_bias[{token}]", bias, -100, 100)
    return out


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if key == "max_tokens":
            body[key] = _check_int(key, value, 1)
        elif key == "temperature":
            body[key] = _check_number(key, value, 0, 2)
        elif key == "top_p":
            body[key] = _check_number(key, value, 0, 1)
        elif key == "n":
            body[key] = _check_int(key, value, 1, 128)
        elif key == "stop":
            body[key] = _check_stop(value)
        elif key == "seed":
            body[key] = _check_int(key, value, -(2**63), 2**64 - 1)
        elif key in ("presence_penalty", "frequency_penalty"):
            body[key] = _check_number(key, value, -2, 2)
        elif key == "logit_bias":
            body[key] = _check_logit_bias(value)
        elif key == "response_format":
            body[key] = _check_response_format(value)
        elif key == "tools":
            body[key] = _check_tools(key, value, legacy=False)
        elif key == "functions":
            body[key] = _check_tools(key, value, legacy=True)
        elif key == "tool_choice":
            body[key] = _check_choice(key, value, frozenset({"none", "auto", "required"}))
        elif key == "function_call":
            body[key] = _check_choice(key, value, frozenset({"none", "auto"}))
        elif key == "parallel_tool_calls":
            if not isinstance(value, bool):
                raise _fail("parallel_tool_calls must be a bool")
            body[key] = value
        elif key == "stream_options":
            body[key] = _as_mapping(value, key)
        elif key == "chat_template_kwargs":
            if not isinstance(value, Mapping):
                raise _fail('chat_template_kwargs must be a dict, e.g. {"enable_thinking": False}')
            body[key] = value
        elif key in ("cache_salt", "user"):
            body[key] = _check_str(key, value)
        elif key == "reasoning_effort":
            if value not in ("low", "medium", "high"):
                raise _fail(f"reasoning_effort must be 'low', 'medium' or 'high', got {value!r}")
            body[key] = value
        else:  # pragma: no cover - guarded by the caller's key check
            raise _fail(f"unknown parameter {key!r}")
    return body


def _unknown(params: Mapping[str, Any], known: frozenset[str], method: str) -> None:
    unknown = set(params) - known - _OPTION_KEYS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise _fail(
            f"{method}() got unknown parameter(s): {names}. Pass parameters the SDK does not "
            "know yet in extra_body={...}."
        )


def build_chat_body(model: object, messages: object, stream: object, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a chat call and build its JSON body.

    Raises:
        InvalidRequestError: any invalid argument (named in the message).
    """
    _unknown(params, _CHAT_KEYS, "chat.create")
    body: dict[str, Any] = {
        "model": _check_str("model", model),
        "messages": _check_messages(messages),
    }
    if not isinstance(stream, bool):
        raise _fail(f"stream must be True or False, got {stream!r}")
    body.update(_check_params({k: v for k, v in params.items() if k in _CHAT_KEYS}))
    if "stream_options" in body and not stream:
        raise _fail("stream_options is only valid with stream=True")
    if stream:
        body["stream"] = True
    extra = params.get("extra_body")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise _fail("extra_body must be a dict")
        body.update(extra)
    return body


def build_embeddings_body(model: object, input: object, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an embeddings call and build its JSON body.

    Without an explicit `encoding_format` the SDK asks for base64 (4x smaller on the wire,
    and much faster to decode than JSON floats) and hands back floats all the same.

    Raises:
        InvalidRequestError: any invalid argument.
    """
    _unknown(params, _EMBEDDING_KEYS, "embeddings.create")
    body: dict[str, Any] = {"model": _check_str("model", model)}
    if isinstance(input, str):
        if not input:
            raise _fail("input must not be an empty string")
        body["input"] = input
    elif isinstance(input, Sequence) and not isinstance(input, bytes | bytearray):
        texts = list(input)
        if not texts:
            raise _fail("input must not be an empty list")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise _fail(f"input[{i}] must be a non-empty str")
        body["input"] = texts
    else:
        raise _fail(f"input must be a str or a list of strs, got {type(input).__name__}")
    fmt = params.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise _fail(f"encoding_format must be 'float' or 'base64', got {fmt!r}")
    body["encoding_format"] = fmt or "base64"
    dims = params.get("dimensions")
    if dims is not None:
        body["dimensions"] = _check_int("dimensions", dims, 1)
    user = params.get("user")
    if user is not None:
        body["user"] = _check_str("user", user)
    extra = params.get("extra_body")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise _fail("extra_body must be a dict")
        body.update(extra)
    return body


def build_options(
    params: Mapping[str, Any],
) -> tuple[dict[str, str], dict[str, str], TimeoutTypes | bool]:
    """The per-call headers, query and timeout (False: use the client's timeout).

    Raises:
        InvalidRequestError: a header with a control character, a bad query or timeout.
    """
    headers: dict[str, str] = {}
    extra_headers = params.get("extra_headers")
    if extra_headers is not None:
        if not isinstance(extra_headers, Mapping):
            raise _fail("extra_headers must be a dict of str -> str")
        for name, value in extra_headers.items():
            headers[name] = validate_header_value(name, value)
    query: dict[str, str] = {}
    extra_query = params.get("extra_query")
    if extra_query is not None:
        if not isinstance(extra_query, Mapping):
            raise _fail("extra_query must be a dict of str -> str")
        query = {str(k): str(v) for k, v in extra_query.items()}
    timeout: TimeoutTypes | bool = False
    if "timeout" in params and params["timeout"] is not None:
        timeout = check_timeout(params["timeout"])
    return headers, query, timeout
