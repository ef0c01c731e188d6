"""A `ChatPlan` rendered as the `chat.completion` body or as `chat.completion.chunk` bodies."""

from __future__ import annotations

from typing import Any

from ._chat import ChatPlan, ChoicePlan, ReasoningField

__all__ = ["chunks", "completion"]


def completion(plan: ChatPlan, reasoning_field: ReasoningField) -> dict[str, Any]:
    """The `chat.completion` JSON body.

    Args:
        plan: the reply.
        reasoning_field: `reasoning`, or the pre-April-2026 `reasoning_content`.

    Returns:
        The body.
    """
    choices = []
    for choice in plan.choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if choice.content is None else "".join(choice.content),
            reasoning_field: None if choice.reasoning is None else "".join(choice.reasoning),
        }
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": "".join(c.arguments)}}
                for c in choice.tool_calls
            ]
        if choice.function_call is not None:
            call = choice.function_call
            message["function_call"] = {"name": call.name, "arguments": "".join(call.arguments)}
        choices.append(
            {"index": choice.index, "message": message, "logprobs": None, "finish_reason": choice.finish_reason}
        )
    return {**_envelope(plan, "chat.completion"), "choices": choices, "usage": plan.usage()}


def chunks(plan: ChatPlan, *, include_usage: bool, reasoning_field: ReasoningField) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` bodies of the stream, in order (without `[DONE]`).

    Choices are interleaved delta by delta; each chunk carries one choice. The first delta
    of a choice has the role; the last has no content and the `finish_reason`.

    Args:
        plan: the reply.
        include_usage: end with a usage chunk whose `choices` is empty.
        reasoning_field: `reasoning`, or the pre-April-2026 `reasoning_content`.

    Returns:
        The chunk bodies.
    """
    envelope = _envelope(plan, "chat.completion.chunk")
    lanes = [_deltas(choice, reasoning_field) for choice in plan.choices]
    out: list[dict[str, Any]] = []
    for step in range(max(len(lane) for lane in lanes)):
        for choice, lane in zip(plan.choices, lanes, strict=True):
            if step < len(lane):
                delta, finish = lane[step]
                entry = {"index": choice.index, "delta": delta, "logprobs": None, "finish_reason": finish}
                out.append({**envelope, "choices": [entry]})
    if include_usage:
        out.append({**envelope, "choices": [], "usage": plan.usage()})
    return out


def _deltas(choice: ChoicePlan, reasoning_field: ReasoningField) -> list[tuple[dict[str, Any], str | None]]:
    calls = bool(choice.tool_calls) or choice.function_call is not None
    deltas: list[tuple[dict[str, Any], str | None]] = [
        ({"role": "assistant", "content": None if calls or choice.content is None else ""}, None)
    ]
    deltas += [({reasoning_field: piece}, None) for piece in choice.reasoning or ()]
    deltas += [({"content": piece}, None) for piece in choice.content or ()]
    for i, call in enumerate(choice.tool_calls):
        head = {"index": i, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        deltas.append(({"tool_calls": [head]}, None))
        deltas += [({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}, None) for piece in call.arguments]
    if choice.function_call is not None:
        call = choice.function_call
        deltas.append(({"function_call": {"name": call.name, "arguments": ""}}, None))
        deltas += [({"function_call": {"arguments": piece}}, None) for piece in call.arguments]
    deltas.append(({}, choice.finish_reason))
    return deltas


def _envelope(plan: ChatPlan, kind: str) -> dict[str, Any]:
    return {
        "id": plan.id,
        "object": kind,
        "created": plan.created,
        "model": plan.model,
        "system_fingerprint": "fp_wandb_inference_local",
    }
