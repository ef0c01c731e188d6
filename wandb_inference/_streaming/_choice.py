"""One choice of a streamed completion as it is merged (`_Choice`), and the merging of a
delta's parts into it: text pieces, tool calls, the legacy function call, unknown keys.
`_accumulate` drives it, chunk by chunk; the rules are in its module docstring.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, final

__all__ = ["_CHOICE_KEYS", "_Choice", "_join", "_merge_delta", "_take_choice_extra"]

_CHOICE_KEYS: Final = frozenset({"index", "delta", "finish_reason", "logprobs"})
_DELTA_KEYS: Final = frozenset(
    {"role", "content", "reasoning", "reasoning_content", "refusal", "tool_calls", "function_call"}
)


class _Pieces(list[str]):
    """String pieces of an unknown delta field, joined in the completion."""

    __slots__ = ()


def _join(pieces: list[str]) -> str:
    """Join `pieces` and keep the result as the only piece, so later joins are cheap."""
    if len(pieces) == 1:
        return pieces[0]
    text = "".join(pieces)
    pieces[:] = [text]
    return text


def _merge_name(current: str | None, piece: str) -> str:
    """Merge a repeated `name`: a repeat or a fuller copy replaces, a new piece extends."""
    if current is None or piece.startswith(current):
        return piece
    return current + piece


def _argument_piece(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        # A few servers send parsed arguments; the API's type is JSON text.
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return None
    return None


@final
class _ToolCall:
    __slots__ = ("arguments", "id", "index", "name", "seq", "type")

    def __init__(self, index: int, seq: int) -> None:
        self.index = index
        self.seq = seq  # creation order: ties between calls sharing a server index
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id or "",
            "type": self.type or "function",
            "function": {"name": self.name or "", "arguments": "".join(self.arguments)},
        }


@final
class _Choice:
    __slots__ = (
        "choice_extra",
        "content",
        "finish_reason",
        "function_args",
        "function_name",
        "index",
        "message_extra",
        "reasoning",
        "reasoning_content",
        "refusal",
        "role",
        "route",
        "tool_calls",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.role: str | None = None
        # None: never received (the completion says null); a list: pieces received.
        self.content: list[str] | None = None
        self.reasoning: list[str] | None = None
        self.reasoning_content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: list[_ToolCall] = []
        self.route: dict[int, _ToolCall] = {}  # server index -> the call it now feeds
        self.function_name: str | None = None
        self.function_args: list[str] | None = None
        self.finish_reason: str | None = None
        self.choice_extra: dict[str, Any] | None = None
        self.message_extra: dict[str, Any] | None = None

    def reasoning_text(self) -> str:
        if self.reasoning is not None:
            text = _join(self.reasoning)
            if text:
                return text
        if self.reasoning_content is not None:
            return _join(self.reasoning_content)
        return ""

    def to_dict(self) -> dict[str, Any]:
        message: dict[str, Any] = {}
        if self.message_extra:
            for key, value in self.message_extra.items():
                message[key] = "".join(value) if isinstance(value, _Pieces) else value
        message["role"] = self.role or "assistant"
        message["content"] = None if self.content is None else _join(self.content)
        for key in ("reasoning", "reasoning_content", "refusal"):
            pieces = getattr(self, key)
            if pieces is not None:
                message[key] = _join(pieces)
        if self.tool_calls:
            ordered = sorted(self.tool_calls, key=lambda call: (call.index, call.seq))
            message["tool_calls"] = [call.to_dict() for call in ordered]
        if self.function_args is not None or self.function_name is not None:
            message["function_call"] = {
                "name": self.function_name or "",
                "arguments": "".join(self.function_args or ()),
            }
        choice: dict[str, Any] = dict(self.choice_extra) if self.choice_extra else {}
        choice.update(index=self.index, message=message, finish_reason=self.finish_reason)
        return choice


def _take_choice_extra(state: _Choice, choice: Mapping[str, Any]) -> None:
    """Keep the last non-null value of each choice key the API document does not name."""
    extra = state.choice_extra
    if extra is None:
        extra = state.choice_extra = {}
    for key, value in choice.items():
        if value is not None and key not in _CHOICE_KEYS:
            extra[key] = value


def _append(pieces: list[str] | None, value: str) -> list[str]:
    if pieces is None:
        return [value]
    pieces.append(value)
    return pieces


def _merge_delta(state: _Choice, delta: Mapping[str, Any]) -> None:
    """Everything in a delta but `content` (which `add` handles inline).

    Loops over the keys the delta has rather than asking for each known one: servers that
    send every field (`"role": null, "tool_calls": [], ...`) in every chunk, and reasoning
    models whose tokens arrive as `reasoning`, cost one pass over a few keys.
    """
    unknown = False
    for key, value in delta.items():
        if value is None or key == "content":
            continue
        if key == "reasoning":
            if isinstance(value, str):
                state.reasoning = _append(state.reasoning, value)
        elif key == "reasoning_content":
            if isinstance(value, str):
                state.reasoning_content = _append(state.reasoning_content, value)
        elif key == "role":
            if state.role is None and isinstance(value, str) and value:
                state.role = value
        elif key == "refusal":
            if isinstance(value, str):
                state.refusal = _append(state.refusal, value)
        elif key == "tool_calls":
            if value and isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        _merge_tool_call(state, item)
        elif key == "function_call":
            if value and isinstance(value, Mapping):
                _merge_function_call(state, value)
        else:
            unknown = True
    if unknown:
        _take_message_extra(state, delta)


def _merge_function_call(state: _Choice, function_call: Mapping[str, Any]) -> None:
    name = function_call.get("name")
    if isinstance(name, str) and name:
        state.function_name = _merge_name(state.function_name, name)
    arguments = _argument_piece(function_call.get("arguments"))
    if arguments is not None:
        state.function_args = _append(state.function_args, arguments)
    elif state.function_args is None:
        state.function_args = []


def _merge_tool_call(state: _Choice, item: Mapping[str, Any]) -> None:
    calls = state.tool_calls
    route = state.route
    call_id = item.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = None
    index = item.get("index")
    call: _ToolCall | None
    if index.__class__ is int:
        call = route.get(index)
    else:
        # No usable index: the call with this id, a new call for a new id, else the last.
        call = None
        if call_id is not None:
            call = next((c for c in calls if c.id == call_id), None)
            index = call.index if call is not None else max((c.index for c in calls), default=-1) + 1
        elif calls:
            call = calls[-1]
            index = call.index
        else:
            index = 0
    kind = item.get("type")
    if not isinstance(kind, str) or not kind:
        kind = None
    name = arguments = None
    function = item.get("function")
    if function and isinstance(function, Mapping):
        name = function.get("name")
        if not isinstance(name, str) or not name:
            name = None
        arguments = _argument_piece(function.get("arguments"))
    if call is None or (call_id is not None and call.id is not None and call.id != call_id):
        if call_id is None and kind is None and name is None and arguments is None:
            return  # nothing usable: do not invent a call
        call = _ToolCall(index, len(calls))
        calls.append(call)
        route[index] = call
    if call_id is not None and call.id is None:
        call.id = call_id
    if kind is not None and call.type is None:
        call.type = kind
    if name is not None:
        call.name = _merge_name(call.name, name)
    if arguments is not None:
        call.arguments.append(arguments)


def _take_message_extra(state: _Choice, delta: Mapping[str, Any]) -> None:
    extra = state.message_extra
    if extra is None:
        extra = state.message_extra = {}
    for key, value in delta.items():
        if key in _DELTA_KEYS or value is None:
            continue
        current = extra.get(key)
        if isinstance(value, str):
            if isinstance(current, _Pieces):
                current.append(value)
            else:
                extra[key] = _Pieces([value])
        elif isinstance(value, list):
            if isinstance(current, list) and not isinstance(current, _Pieces):
                current.extend(value)
            else:
                extra[key] = list(value)
        else:
            extra[key] = value
