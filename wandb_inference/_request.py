"""Request building: validate a call's arguments and turn them into a JSON body. Pure.

Every check here runs before anything is sent, and raises `InvalidRequestError` naming the
argument and what is wrong with it. The parameters, their types and their value checks
come from the API document: the keyword parameters are generated (`_spec/_params.py`) and
each value is checked against its property's schema in the document (`_spec/_validate`),
so a constraint added to openapi/openapi.yaml is enforced after `scripts/regen.sh` with no
edit here. What stays hand-written is what the document cannot say, each rule naming the
property it refines: messages (cross-field rules: content None only beside tool calls, a
tool message's id, images only from users), `stream_options` only with `stream=True`,
`logit_bias` keys that are token ids, and W&B hints in the messages. The checks are cheap
(a pass over the messages and the parameters given): they sit on every call's path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from ._call_options import RequestOptions
from ._config import check_timeout, validate_header_value
from ._exceptions import InvalidRequestError
from ._spec._document import request_properties, schemas
from ._spec._params import OPERATIONS, CreateChatCompletionParams, CreateEmbeddingsParams
from ._spec._validate import Predicate, accepts, check_value

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

# The operations' keyword parameters are generated from the API document
# (`_spec/_params.py`): these are their names in the facade's signatures.
ChatParams = CreateChatCompletionParams
EmbeddingParams = CreateEmbeddingsParams

_OPTION_KEYS = frozenset(RequestOptions.__annotations__)
_CHAT = OPERATIONS["createChatCompletion"]
_EMBEDDINGS = OPERATIONS["createEmbeddings"]
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


# Hints added to the document's verdict, by the property they refine.
_HINTS = {
    "tools": " (wandb_inference.function_tool(fn) builds a tool from a Python function)",
    "functions": " (wandb_inference.function_tool(fn)['function'] builds one from a Python function)",
    "response_format": " (wandb_inference.response_format_from(MyType) builds a json_schema format)",
    "tool_choice": ", e.g. 'auto' or {'type': 'function', 'function': {'name': 'f'}}",
    "chat_template_kwargs": ', e.g. {"enable_thinking": False}',
}


def json_form(value: object, where: str) -> Any:
    """A parameter as it will be sent: models through `to_dict()`, tuples as lists."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_form(v, f"{where}.{k}") for k, v in value.items()}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return json_form(to_dict(), where)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [json_form(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise _fail(f"{where} must be JSON data (str, number, bool, list, dict), got {type(value).__name__}")


@functools.cache
def _predicates(schema_name: str) -> dict[str, Predicate]:
    """The compiled yes/no check of each property of a request schema."""
    return {key: accepts(schema) for key, schema in request_properties(schema_name).items()}


def _checked(schema_name: str, key: str, value: object, hint: str = "") -> Any:
    """`value` as it will be sent, if its schema accepts it.

    Plain JSON data (what callers pass almost always) is accepted as it is, with no copy;
    anything else (models, tuples, mapping types) is converted first. The schema walk
    (`check_value`) runs only for a refused value, to say what is wrong.
    """
    predicate = _predicates(schema_name)[key]
    if predicate(value):
        return value
    value = json_form(value, key)
    if predicate(value):
        return value
    invalid = check_value(value, request_properties(schema_name)[key], key)
    if invalid is not None:
        raise _fail(f"{invalid.param or key} {invalid.problem}{hint}")
    return value  # accepted by the walk (a str subclass, say): the walk decides


def _check_against_document(schema_name: str, params: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """Each parameter given (None: not sent) checked against its schema in the document."""
    body: dict[str, Any] = {}
    for key, value in params.items():
        if value is None or key not in keys:
            continue
        body[key] = _checked(schema_name, key, value, _HINTS.get(key, ""))
    return body


def check_body(schema_name: str, body: object) -> dict[str, Any]:
    """A whole request body checked against its schema in the document (for `call()`)."""
    sent = json_form(body, "body")
    if not isinstance(sent, dict):
        raise _fail(f"the body must be a dict (a {schema_name}), got {type(body).__name__}")
    invalid = check_value(sent, schemas()[schema_name], "body")
    if invalid is not None:
        raise _fail(f"{invalid.param} {invalid.problem}")
    return sent


def _refine_logit_bias(value: Mapping[Any, Any]) -> dict[str, Any]:
    """`logit_bias` (document: an object of numbers): its keys are token ids, sent as strings."""
    out: dict[str, Any] = {}
    for key, bias in value.items():
        token = str(key)
        if not token.isdigit():
            raise _fail(f"logit_bias keys must be token ids (digits), got {key!r}")
        out[token] = bias
    return out


def _check_explicit(schema_name: str | None, key: str, value: object) -> Any:
    """An explicit argument (`model`, `input`) checked against its property's schema."""
    assert schema_name is not None
    return _checked(schema_name, key, value)


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
        "model": _check_explicit(_CHAT.request_schema, "model", model),
        "messages": _check_messages(messages),
    }
    if not isinstance(stream, bool):
        raise _fail(f"stream must be True or False, got {stream!r}")
    body.update(_check_against_document("ChatCompletionRequest", params, _CHAT_KEYS))
    if "logit_bias" in body:
        body["logit_bias"] = _refine_logit_bias(body["logit_bias"])
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
    body: dict[str, Any] = {
        "model": _check_explicit(_EMBEDDINGS.request_schema, "model", model),
        "input": _check_explicit(_EMBEDDINGS.request_schema, "input", input),
    }
    body.update(_check_against_document("EmbeddingRequest", params, _EMBEDDING_KEYS))
    # The SDK's choice, not the document's: base64 unless asked (decoded back to floats).
    body.setdefault("encoding_format", "base64")
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
