"""The attributes of a call's span, from its arguments and reply: pure, no OpenTelemetry.

Names follow OpenTelemetry's GenAI semantic conventions (semantic-conventions-genai
v0.1.0: `gen_ai.*`, `server.*`, `error.type`); what they do not name is under
`wandb_inference.*`. Content (`gen_ai.input.messages`, `gen_ai.output.messages`,
`gen_ai.system_instructions`) is built only when capture is on, as JSON strings in the
conventions' `[{role, parts: [{type, content}]}]` shape; images are never inlined.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "PROVIDER_NAME",
    "attempt_attributes",
    "capture_enabled",
    "content_attributes",
    "error_type",
    "output_messages",
    "request_attributes",
    "result_attributes",
    "stream_attributes",
]

# W&B Inference has no registered `gen_ai.provider.name`; the conventions allow a custom
# value, spelled like the registered ones (`aws.bedrock`, `azure.ai.openai`).
PROVIDER_NAME = "wandb.inference"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Values of the variable that turn span content on (the genai utilities' spellings too).
_CAPTURE_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})
_OPERATIONS = {"chat": "chat", "embeddings": "embeddings"}
# Weave's trace view reads the call's kind from OpenInference's attribute.
_SPAN_KINDS = {"chat": "LLM", "embeddings": "EMBEDDING"}
_FLOAT_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
}
_INT_PARAMS = {
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "seed": "gen_ai.request.seed",
    "top_k": "gen_ai.request.top_k",
}
_RATE_LIMIT_KINDS = {
    "RateLimitError": "concurrency",
    "QuotaExceededError": "quota",
    "PersonalAccountError": "personal_account",
}


def capture_enabled(option: bool | None, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether message content goes on spans: the client's option, else the variable."""
    if option is not None:
        return option
    return environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_ON


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _merged(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """The call's parameters, with those passed through `extra_body` (params win)."""
    extra = params.get("extra_body")
    if isinstance(extra, Mapping) and extra:
        return {**extra, **params}
    return params


def request_attributes(
    endpoint: str,
    model: str | None,
    stream: bool,
    params: Mapping[str, Any],
    host: str,
    port: int,
    project: str | None,
) -> dict[str, Any]:
    """The attributes known when the span starts (the sampling-relevant ones first)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": _OPERATIONS.get(endpoint, endpoint),
        "gen_ai.provider.name": PROVIDER_NAME,
    }
    if model:
        attrs["gen_ai.request.model"] = model
    attrs["server.address"] = host
    attrs["server.port"] = port
    attrs["openinference.span.kind"] = _SPAN_KINDS.get(endpoint, "LLM")
    if project:
        attrs["wandb_inference.project"] = project
    if stream:
        attrs["gen_ai.request.stream"] = True
    values = _merged(params)
    if endpoint == "embeddings":
        fmt = values.get("encoding_format")
        attrs["gen_ai.request.encoding_formats"] = [fmt if isinstance(fmt, str) else "base64"]
        if _is_int(values.get("dimensions")):
            attrs["gen_ai.embeddings.dimension.count"] = values["dimensions"]
        return attrs
    for name, key in _INT_PARAMS.items():
        value = values.get(name)
        if _is_int(value) and key not in attrs:
            attrs[key] = value
    for name, key in _FLOAT_PARAMS.items():
        value = values.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[key] = float(value)
    stop = values.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, Sequence) and stop and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = list(stop)
    n = values.get("n")
    if _is_int(n) and n != 1:
        attrs["gen_ai.request.choice.count"] = n
    effort = values.get("reasoning_effort")
    if isinstance(effort, str):
        attrs["gen_ai.request.reasoning.level"] = effort
    fmt = values.get("response_format")
    kind = fmt.get("type") if isinstance(fmt, Mapping) else getattr(fmt, "type", None)
    if isinstance(kind, str) or hasattr(kind, "value"):
        kind = getattr(kind, "value", kind)
        attrs["gen_ai.output.type"] = "json" if kind in ("json_object", "json_schema") else "text"
    return attrs


def _usage_attributes(usage: object) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if not isinstance(usage, Mapping):
        return attrs
    if _is_int(usage.get("prompt_tokens")):
        attrs["gen_ai.usage.input_tokens"] = usage["prompt_tokens"]
    if _is_int(usage.get("completion_tokens")):
        attrs["gen_ai.usage.output_tokens"] = usage["completion_tokens"]
    prompt = usage.get("prompt_tokens_details")
    if isinstance(prompt, Mapping) and _is_int(prompt.get("cached_tokens")):
        attrs["gen_ai.usage.cache_read.input_tokens"] = prompt["cached_tokens"]
    completion = usage.get("completion_tokens_details")
    if isinstance(completion, Mapping) and _is_int(completion.get("reasoning_tokens")):
        attrs["gen_ai.usage.reasoning.output_tokens"] = completion["reasoning_tokens"]
    return attrs


def _choices(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    choices = data.get("choices")
    if not isinstance(choices, list):
        return []
    found = [c for c in choices if isinstance(c, Mapping)]
    return sorted(found, key=lambda c: c["index"] if _is_int(c.get("index")) else 0)


def finish_reasons(data: Mapping[str, Any], *, complete: bool, expected: int = 1) -> list[str]:
    """One reason per choice; when the reply is incomplete (a stream that ended early or
    failed), `error` for each choice without one, as the conventions ask."""
    reasons: list[str] = []
    for choice in _choices(data):
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            reasons.append(reason)
        elif not complete:
            reasons.append("error")
    if not complete and len(reasons) < expected:
        reasons.extend(["error"] * (expected - len(reasons)))
    return reasons


def result_attributes(endpoint: str, data: object, *, complete: bool = True, expected: int = 1) -> dict[str, Any]:
    """The attributes read from a decoded reply (or a stream's accumulated completion)."""
    if not isinstance(data, Mapping):
        return {}
    attrs: dict[str, Any] = {}
    response_id = data.get("id")
    if isinstance(response_id, str) and response_id:
        attrs["gen_ai.response.id"] = response_id
    model = data.get("model")
    if isinstance(model, str) and model:
        attrs["gen_ai.response.model"] = model
    attrs.update(_usage_attributes(data.get("usage")))
    if endpoint == "embeddings":
        dims = _dimensions(data)
        if dims:
            attrs["gen_ai.embeddings.dimension.count"] = dims
        return attrs
    reasons = finish_reasons(data, complete=complete, expected=expected)
    if reasons:
        attrs["gen_ai.response.finish_reasons"] = reasons
    return attrs


def _dimensions(data: Mapping[str, Any]) -> int | None:
    items = data.get("data")
    if not isinstance(items, list) or not items or not isinstance(items[0], Mapping):
        return None
    vector = items[0].get("embedding")
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str):  # base64 of little-endian float32s
        try:
            return len(base64.b64decode(vector)) // 4
        except (binascii.Error, ValueError):
            return None
    return None


def stream_attributes(accumulator: Any, end: str) -> dict[str, Any]:
    """What a stream received before it ended, known even when it failed."""
    return {
        "wandb_inference.stream.end": end,
        "wandb_inference.stream.chunks": accumulator.chunks,
        "wandb_inference.stream.text_length": len(accumulator.text),
        "wandb_inference.stream.reasoning_length": len(accumulator.reasoning),
    }


def error_type(error: BaseException) -> str:
    """`error.type`: the SDK's error class (`RateLimitError`, `StreamInterruptedError`...),
    else the exception's class (`CancelledError`)."""
    return type(error).__qualname__


def attempt_attributes(attempt: int, outcome: str, decision: Any, error: BaseException | None) -> dict[str, Any]:
    """One HTTP attempt: its status (or failure), the 429 kind, and the retry decision."""
    attrs: dict[str, Any] = {"wandb_inference.attempt": attempt}
    if attempt > 1:
        attrs["http.request.resend_count"] = attempt - 1
    if outcome.isdigit():
        attrs["http.response.status_code"] = int(outcome)
    if error is not None:
        kind = error_type(error)
        attrs["error.type"] = kind
        if outcome == "429" and kind in _RATE_LIMIT_KINDS:
            attrs["wandb_inference.rate_limit.kind"] = _RATE_LIMIT_KINDS[kind]
        request_id = getattr(error, "request_id", None)
        if isinstance(request_id, str) and request_id:
            attrs["wandb_inference.request_id"] = request_id
    if decision is not None:
        attrs["wandb_inference.retry"] = bool(decision.retry)
        if decision.retry:
            attrs["wandb_inference.retry.wait"] = float(decision.delay)
        elif decision.reason:
            attrs["wandb_inference.retry.reason"] = str(decision.reason)
    return attrs


# ---------------------------------------------------------------------- content


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _as_dict(message: object) -> Mapping[str, Any] | None:
    if isinstance(message, Mapping):
        return message
    to_dict = getattr(message, "to_dict", None)
    if callable(to_dict):
        converted = to_dict()
        return converted if isinstance(converted, Mapping) else None
    return None


def _image_part(part: Mapping[str, Any]) -> dict[str, Any]:
    """An image as a reference (its URL), or a placeholder: inline data is never recorded."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if isinstance(url, str) and url.startswith(("http://", "https://")):
        return {"type": "uri", "modality": "image", "uri": url}
    mime = "image"
    size = 0
    if isinstance(url, str) and url.startswith("data:"):
        mime = url[5 : url.find(";")] if ";" in url else "image"
        size = len(url)
    return {"type": "image", "modality": "image", "mime_type": mime, "content": f"[image omitted: {size} chars]"}


def _parts(content: object) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}] if content else []
    parts: list[dict[str, Any]] = []
    if isinstance(content, Sequence):
        for item in content:
            part = _as_dict(item)
            if part is None:
                continue
            kind = part.get("type")
            if kind == "text":
                parts.append({"type": "text", "content": str(part.get("text", ""))})
            elif kind == "image_url":
                parts.append(_image_part(part))
            else:  # audio, files...: named, never inlined
                parts.append({"type": str(kind or "unknown"), "content": f"[{kind} omitted]"})
    return parts


def _arguments(raw: object) -> object:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _tool_call_parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            call = _as_dict(call)
            function = call.get("function") if call is not None else None
            if call is None or not isinstance(function, Mapping):
                continue
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": _arguments(function.get("arguments")),
                }
            )
    legacy = message.get("function_call")
    if isinstance(legacy, Mapping):
        arguments = _arguments(legacy.get("arguments"))
        parts.append({"type": "tool_call", "id": None, "name": legacy.get("name"), "arguments": arguments})
    return parts


def _reasoning(message: Mapping[str, Any]) -> str | None:
    for key in ("reasoning", "reasoning_content"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def content_attributes(messages: object) -> dict[str, str]:
    """`gen_ai.system_instructions` (the leading system / developer messages) and
    `gen_ai.input.messages` (the rest, in order), as JSON."""
    system: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        for item in messages:
            message = _as_dict(item)
            if message is None:
                continue
            role = str(message.get("role", "user"))
            if role in ("system", "developer") and not history:
                system.extend(_parts(message.get("content")))
                continue
            if role == "tool":
                parts: list[dict[str, Any]] = [
                    {
                        "type": "tool_call_response",
                        "id": message.get("tool_call_id"),
                        "response": message.get("content"),
                    }
                ]
            else:
                parts = _parts(message.get("content"))
                reasoning = _reasoning(message)
                if reasoning:
                    parts.insert(0, {"type": "reasoning", "content": reasoning})
                parts.extend(_tool_call_parts(message))
            history.append({"role": role, "parts": parts})
    attrs = {"gen_ai.input.messages": _dump(history)}
    if system:
        attrs["gen_ai.system_instructions"] = _dump(system)
    return attrs


def embeddings_input_attributes(inputs: object) -> dict[str, str]:
    """The texts embedded, as input messages (Weave shows them as the call's inputs)."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs) if isinstance(inputs, Sequence) else []
    parts = [{"type": "text", "content": t} for t in texts if isinstance(t, str)]
    return {"gen_ai.input.messages": _dump([{"role": "user", "parts": parts}])}


def output_messages(data: object, *, complete: bool = True) -> dict[str, str]:
    """`gen_ai.output.messages`: one message per choice, with its finish reason."""
    if not isinstance(data, Mapping):
        return {}
    out: list[dict[str, Any]] = []
    for choice in _choices(data):
        message = choice.get("message")
        message = message if isinstance(message, Mapping) else {}
        parts: list[dict[str, Any]] = []
        reasoning = _reasoning(message)
        if reasoning:
            parts.append({"type": "reasoning", "content": reasoning})
        parts.extend(_parts(message.get("content")))
        parts.extend(_tool_call_parts(message))
        reason = choice.get("finish_reason")
        if not isinstance(reason, str) or not reason:
            reason = "error" if not complete else "unknown"
        out.append({"role": str(message.get("role") or "assistant"), "parts": parts, "finish_reason": reason})
    return {"gen_ai.output.messages": _dump(out)}
