"""`ChatCompletion`: the typed reply of a chat call, and its fast parser.

The generated `ChatCompletion.from_dict` builds the reply through closures, union probing
and dict copies; `parse_completion` (which `ChatCompletion.from_dict` is) builds the very
same objects directly (a property test holds it equal to the generated `from_dict` on
every reply of the documented shape), handing the rare parts (tool calls, usage,
logprobs) to the generated `from_dict` of those parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, cast

import attrs
import httpx
from wandb_inference_generated.models.chat_completion import ChatCompletion as _ChatCompletion
from wandb_inference_generated.models.chat_completion_choice import ChatCompletionChoice
from wandb_inference_generated.models.chat_completion_message import ChatCompletionMessage

from ._base import TOP_KEYS, ResponseMixin, extras, logprobs_of, text_of, usage_of

__all__ = ["ChatCompletion", "parse_completion"]

_MESSAGE_KEYS = frozenset(
    {"role", "content", "reasoning", "reasoning_content", "refusal", "tool_calls", "function_call"}
)
_COMPLETION_CHOICE_KEYS = frozenset({"index", "message", "finish_reason", "logprobs"})


@attrs.define
class ChatCompletion(ResponseMixin, _ChatCompletion):
    """A chat completion: the generated model plus `.text`, `.reasoning`, `.http_response`."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build a completion from a decoded reply: `parse_completion`.

        The generated `from_dict` builds the same objects, but keeps a tool call or usage
        of the wrong shape as the raw dict it was; this raises instead.

        Raises:
            KeyError, TypeError, AttributeError: a reply missing required fields.
        """
        if cls is not ChatCompletion:
            return super().from_dict(src_dict)
        return cast(Self, parse_completion(src_dict))

    @property
    def text(self) -> str:
        """The first choice's content ("" when the model sent none, e.g. only tool calls)."""
        if not self.choices:
            return ""
        return text_of(self.choices[0].message.content) or ""

    @property
    def reasoning(self) -> str | None:
        """The first choice's reasoning (`reasoning`, or the older `reasoning_content`)."""
        if not self.choices:
            return None
        message = self.choices[0].message
        return text_of(message.reasoning) or text_of(message.reasoning_content)

    def _repr_markdown_(self) -> str:
        lines = [f"**ChatCompletion** `{self.model}` ({len(self.choices)} choice(s))"]
        if self.reasoning:
            lines.append(f"> *reasoning*: {self.reasoning[:500]}")
        lines.append("")
        lines.append(self.text or "*(no text)*")
        if self.usage is not None:
            lines.append(f"\n*usage*: {self.usage.to_dict()}")
        return "\n".join(lines)


def _message(data: Mapping[str, Any]) -> ChatCompletionMessage:
    get = data.get
    tool_calls = get("tool_calls")
    if isinstance(tool_calls, list):
        from wandb_inference_generated.models.tool_call import ToolCall

        tool_calls = [ToolCall.from_dict(item) for item in tool_calls]
    elif tool_calls is not None:
        raise TypeError(f"tool_calls are a list or null, not {type(tool_calls).__name__}")
    function_call = get("function_call")
    if isinstance(function_call, dict):
        from wandb_inference_generated.models.function_call import FunctionCall

        function_call = FunctionCall.from_dict(function_call)
    elif function_call is not None:
        raise TypeError(f"function_call is an object or null, not {type(function_call).__name__}")
    message = ChatCompletionMessage(
        role=data["role"],
        content=get("content"),
        reasoning=get("reasoning"),
        reasoning_content=get("reasoning_content"),
        refusal=get("refusal"),
        tool_calls=tool_calls,
        function_call=function_call,
    )
    message.additional_properties = extras(data, _MESSAGE_KEYS)
    return message


def _completion_choice(data: Mapping[str, Any]) -> ChatCompletionChoice:
    get = data.get
    choice = ChatCompletionChoice(
        index=data["index"],
        message=_message(data["message"]),
        finish_reason=get("finish_reason"),
        logprobs=logprobs_of(get("logprobs")),
    )
    choice.additional_properties = extras(data, _COMPLETION_CHOICE_KEYS)
    return choice


def parse_completion(data: Mapping[str, Any]) -> ChatCompletion:
    """Build a typed completion from a decoded reply (what `from_dict` builds, faster).

    Raises:
        KeyError, TypeError, AttributeError: a reply missing required fields.
    """
    get = data.get
    completion = ChatCompletion(
        id=data["id"],
        created=data["created"],
        model=data["model"],
        choices=[_completion_choice(item) for item in data["choices"]],
        object_=get("object"),
        usage=usage_of(get("usage")),
        system_fingerprint=get("system_fingerprint"),
    )
    completion.additional_properties = extras(data, TOP_KEYS)
    return completion
