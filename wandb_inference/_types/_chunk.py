"""`ChatCompletionChunk`: one streamed chunk, and its fast parser (once per token).

The generated `ChatCompletionChunk.from_dict` costs about 12 us per chunk (closures,
union probing, dict copies) against 2 us for `json.loads`: at one chunk per token it is
the largest cost of a stream. `parse_chunk` builds the very same objects (the facade's
`ChatCompletionChunk` with generated choices and deltas) directly, in about a sixth of
the time, and hands the rare parts (tool-call deltas, usage, logprobs) to the generated
`from_dict` of those parts, whose models load when a chunk first has such a part. A
property test holds it equal to `from_dict` on any chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Self, cast

import attrs
from wandb_inference_generated.models.chat_completion_chunk import (
    ChatCompletionChunk as _ChatCompletionChunk,
)
from wandb_inference_generated.models.chat_completion_chunk_choice import (
    ChatCompletionChunkChoice,
)
from wandb_inference_generated.models.chat_completion_delta import ChatCompletionDelta

from ._base import TOP_KEYS, extras, logprobs_of, text_of, usage_of

__all__ = ["ChatCompletionChunk", "parse_chunk", "text_chunk_maker"]

_CHOICE_KEYS = frozenset({"index", "delta", "finish_reason", "logprobs"})
_DELTA_KEYS = frozenset({"role", "content", "reasoning", "reasoning_content", "refusal", "tool_calls", "function_call"})
_MISSING_DEFAULTS = {"id": "", "created": 0, "model": "", "choices": []}


@attrs.define
class ChatCompletionChunk(_ChatCompletionChunk):
    """One streamed chunk: the generated model plus `.text`."""

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build a chunk from a decoded `data:` payload: `parse_chunk`.

        Raises:
            KeyError, TypeError: a choice without `index` or `delta`, or non-object parts.
        """
        if cls is not ChatCompletionChunk:
            return super().from_dict(src_dict)
        return cast(Self, parse_chunk(src_dict))

    @property
    def text(self) -> str:
        """The first choice's content delta ("" if none: role-only, tool or usage chunks)."""
        if not self.choices:
            return ""
        delta = self.choices[0].delta
        return text_of(delta.content) or ""

    @property
    def reasoning(self) -> str:
        """The first choice's reasoning delta ("" if none)."""
        if not self.choices:
            return ""
        delta = self.choices[0].delta
        return text_of(delta.reasoning) or text_of(delta.reasoning_content) or ""


def _delta(data: Mapping[str, Any]) -> ChatCompletionDelta:
    get = data.get
    tool_calls = get("tool_calls")
    if isinstance(tool_calls, list):
        from wandb_inference_generated.models.function_call_delta import FunctionCallDelta
        from wandb_inference_generated.models.tool_call_delta import ToolCallDelta

        tool_calls = [ToolCallDelta.from_dict(item) for item in tool_calls]
        for call in tool_calls:  # the generated code keeps a `function` it cannot parse as sent
            if not (call.function is None or isinstance(call.function, FunctionCallDelta)):
                raise TypeError(f"a tool call's function is an object or null, not {type(call.function).__name__}")
    elif tool_calls is not None:
        raise TypeError(f"tool_calls are a list or null, not {type(tool_calls).__name__}")
    function_call = get("function_call")
    if isinstance(function_call, dict):
        from wandb_inference_generated.models.function_call_delta import FunctionCallDelta

        function_call = FunctionCallDelta.from_dict(function_call)
    elif function_call is not None:
        raise TypeError(f"function_call is an object or null, not {type(function_call).__name__}")
    delta = ChatCompletionDelta(
        role=get("role"),
        content=get("content"),
        reasoning=get("reasoning"),
        reasoning_content=get("reasoning_content"),
        refusal=get("refusal"),
        tool_calls=tool_calls,
        function_call=function_call,
    )
    delta.additional_properties = extras(data, _DELTA_KEYS)
    return delta


def _choice(data: Mapping[str, Any]) -> ChatCompletionChunkChoice:
    get = data.get
    choice = ChatCompletionChunkChoice(
        index=data["index"],
        delta=_delta(data["delta"]),
        finish_reason=get("finish_reason"),
        logprobs=logprobs_of(get("logprobs")),
    )
    choice.additional_properties = extras(data, _CHOICE_KEYS)
    return choice


# The per-token shape, built by `_token_chunk` without any `__init__` (see there).
_REQUIRED_KEYS = frozenset({"id", "created", "model", "choices"})
_TOKEN_DELTA_KEYS = frozenset({"role", "content"})
_TEXT_DELTA_KEYS = frozenset({"role", "content", "reasoning", "reasoning_content", "refusal"})
_new = object.__new__


def _text_delta(data: dict[str, Any]) -> ChatCompletionDelta | None:
    """A delta of text fields (reasoning, say) for `_token_chunk`; None for tool calls."""
    get = data.get
    if data.keys() <= _TEXT_DELTA_KEYS:
        tool_calls: Any = None
        function_call: Any = None
        extra: dict[str, Any] = {}
    else:
        tool_calls = get("tool_calls")
        if tool_calls.__class__ is list:
            if tool_calls:
                return None
            tool_calls = []  # from_dict builds a new list too
        elif tool_calls is not None:
            return None
        function_call = get("function_call")
        if function_call is not None:
            return None
        extra = extras(data, _DELTA_KEYS)
    delta = _new(ChatCompletionDelta)
    delta.role = get("role")
    delta.content = get("content")
    delta.reasoning = get("reasoning")
    delta.reasoning_content = get("reasoning_content")
    delta.refusal = get("refusal")
    delta.tool_calls = tool_calls
    delta.function_call = function_call
    delta.additional_properties = extra
    return delta


def _token_chunk(data: Mapping[str, Any]) -> ChatCompletionChunk | None:
    """The chunk of nearly every token, fast; None when `data` has any other shape.

    That shape: `id`, `created`, `model` and one choice (with `index` and `delta`), no
    usage or logprobs, and a delta of text fields only (`content`, `reasoning`,
    `reasoning_content`, `refusal`, `role`; `tool_calls` empty or null and
    `function_call` null allowed). Keys the API document does not name go to
    `additional_properties`, as `from_dict` puts them (vLLM's `stop_reason`, say).
    The objects are made with `object.__new__` and their slots set directly: the same
    objects the constructors make (the generated classes have no validators, converters
    or `__attrs_post_init__`), in a third of the time, since calling an attrs `__init__`
    with keywords costs more than the assignments it does. A property test holds the
    result equal to the generated `from_dict`.
    """
    keys = data.keys()
    if not keys >= _REQUIRED_KEYS:
        return None
    choices = data["choices"]
    if choices.__class__ is not list or len(choices) != 1:
        return None
    item = choices[0]
    if item.__class__ is not dict or "index" not in item or "delta" not in item:
        return None
    delta_data = item["delta"]
    if delta_data.__class__ is not dict:
        return None
    if delta_data.keys() <= _TOKEN_DELTA_KEYS:  # content and/or role: nearly every chunk
        delta = _new(ChatCompletionDelta)
        delta.role = delta_data.get("role")
        delta.content = delta_data.get("content")
        delta.reasoning = delta.reasoning_content = delta.refusal = None
        delta.tool_calls = delta.function_call = None
        delta.additional_properties = {}
    else:
        text_delta = _text_delta(delta_data)
        if text_delta is None:
            return None
        delta = text_delta
    if item.get("logprobs") is not None or data.get("usage") is not None:
        return None
    choice = _new(ChatCompletionChunkChoice)
    choice.index = item["index"]
    choice.delta = delta
    choice.finish_reason = item.get("finish_reason")
    choice.logprobs = None
    choice.additional_properties = {} if item.keys() <= _CHOICE_KEYS else extras(item, _CHOICE_KEYS)
    chunk = _new(ChatCompletionChunk)
    chunk.id = data["id"]
    chunk.created = data["created"]
    chunk.model = data["model"]
    chunk.choices = [choice]
    chunk.object_ = data.get("object")
    chunk.usage = None
    chunk.system_fingerprint = data.get("system_fingerprint")
    chunk.additional_properties = {} if keys <= TOP_KEYS else extras(data, TOP_KEYS)
    return chunk


_SCALARS = (str, int, float, bool, type(None))
_TEXT_FIELDS = frozenset({"content", "reasoning", "reasoning_content"})


def _scalar(value: object) -> bool:
    return value.__class__ in _SCALARS


def text_chunk_maker(data: Mapping[str, Any]) -> Callable[[str], ChatCompletionChunk] | None:
    """A maker of the chunks that are `data` with another text: `parse_chunk`'s result for
    them, without a dict to read (None when `data` is not such a chunk).

    Such a chunk is the shape of nearly every token: `id`, `created`, `model`, one choice
    with `index` and a delta of one text field (`content`, `reasoning` or
    `reasoning_content`: a str), no `finish_reason`, `logprobs` or `usage`, and every
    other value a JSON scalar (so chunks made from it share no mutable part). The stream
    processor uses it once it has checked that a chunk's JSON text is the text of `data`
    but for that one string (`_processor`). A property test holds its chunks equal to
    `parse_chunk`'s.
    """
    if data.__class__ is not dict:
        return None
    keys = data.keys()
    choices = data.get("choices")
    if not keys >= _REQUIRED_KEYS or choices.__class__ is not list or len(choices) != 1:
        return None
    item = choices[0]
    if item.__class__ is not dict or "index" not in item:
        return None
    delta = item.get("delta")
    if delta.__class__ is not dict or len(delta) != 1:
        return None
    ((field, text),) = delta.items()
    if field not in _TEXT_FIELDS or text.__class__ is not str:
        return None
    if item.get("logprobs") is not None or item.get("finish_reason") is not None or data.get("usage") is not None:
        return None
    top_extra = extras(data, TOP_KEYS)
    choice_extra = extras(item, _CHOICE_KEYS)
    index, id_, created, model = item["index"], data["id"], data["created"], data["model"]
    object_, fingerprint = data.get("object"), data.get("system_fingerprint")
    values = (index, id_, created, model, object_, fingerprint, *top_extra.values(), *choice_extra.values())
    if not all(map(_scalar, values)):
        return None
    content, reasoning, reasoning_content = (field == "content", field == "reasoning", field == "reasoning_content")

    def make(text: str) -> ChatCompletionChunk:
        # As `_token_chunk` builds them (see there): the same objects, slot by slot.
        delta = _new(ChatCompletionDelta)
        delta.role = delta.refusal = None
        delta.content = text if content else None
        delta.reasoning = text if reasoning else None
        delta.reasoning_content = text if reasoning_content else None
        delta.tool_calls = delta.function_call = None
        delta.additional_properties = {}
        choice = _new(ChatCompletionChunkChoice)
        choice.index = index
        choice.delta = delta
        choice.finish_reason = choice.logprobs = None
        choice.additional_properties = choice_extra.copy()
        chunk = _new(ChatCompletionChunk)
        chunk.id = id_
        chunk.created = created
        chunk.model = model
        chunk.choices = [choice]
        chunk.object_ = object_
        chunk.usage = None
        chunk.system_fingerprint = fingerprint
        chunk.additional_properties = top_extra.copy()
        return chunk

    return make


def parse_chunk(data: Mapping[str, Any]) -> ChatCompletionChunk:
    """Build a typed chunk from a decoded `data:` payload.

    Servers that omit `id`, `created`, `model` or `choices` (some proxies do) get empty
    values rather than a failure: a stream is too valuable to drop over an id.

    Raises:
        KeyError, TypeError: a choice without `index` or `delta`, or non-object parts.
    """
    chunk = _token_chunk(data)
    if chunk is not None:
        return chunk
    if not (data.keys() >= _MISSING_DEFAULTS.keys()):
        data = {**_MISSING_DEFAULTS, **data}
    get = data.get
    chunk = ChatCompletionChunk(
        id=data["id"],
        created=data["created"],
        model=data["model"],
        choices=[_choice(item) for item in data["choices"]],
        object_=get("object"),
        usage=usage_of(get("usage")),
        system_fingerprint=get("system_fingerprint"),
    )
    chunk.additional_properties = extras(data, TOP_KEYS)
    return chunk
