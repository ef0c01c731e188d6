"""Chat replies, planned once and rendered as a completion or as stream chunks.

Pure: a validated request body and the model's catalog row in, a `ChatPlan` out. The
plan fixes every piece (token) of every choice, so the JSON reply and the stream carry
the same text, and `max_tokens` or `stop` only shorten what would have been said.

Behaviour, all deterministic for the same model, messages and seed:

- Text: English-ish sentences (12 to 48 tokens; as many as `max_tokens` with
  `ignore_eos: true`, at least `min_tokens`); about the prompt's words now and then.
- `max_tokens` bounds reasoning + answer together (finish `length`); `stop` ends the
  answer before the first stop string (finish `stop`).
- Tools: a named `tool_choice` calls that function; `required` calls the tools the last
  user message names (or one of them); `auto` (the default with tools) calls the tools
  the last user message names, else answers in text; after a `tool` message, `auto`
  answers in text. Arguments are JSON matching the function's parameters schema.
- Legacy `functions` / `function_call` likewise, one call, finish `function_call`.
- `response_format`: `json_object` gives a JSON object, `json_schema` an instance of the
  schema.
- Reasoning models (catalog `on` / `always`, or `optional` when enabled) think first:
  `reasoning` text whose length follows `reasoning_effort`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from wandb_inference._catalog._table import ModelInfo

from ._instance import json_object, schema_instance
from ._words import Words, rng_for, split_text, topic_words

__all__ = ["ChatPlan", "ChoicePlan", "ReasoningField", "ToolCallPlan", "plan_chat", "semantic_problem"]

ReasoningField = Literal["reasoning", "reasoning_content"]

_IMAGE_TOKENS = 85  # what OpenAI counts for a low-detail image
_EFFORT_TOKENS = {"low": (8, 16), "medium": (16, 40), "high": (40, 80)}


@attrs.frozen(kw_only=True)
class ToolCallPlan:
    """One function call: its id, name and the argument text in pieces."""

    id: str
    name: str
    arguments: tuple[str, ...]


@attrs.frozen(kw_only=True)
class ChoicePlan:
    """One choice: reasoning pieces, then content pieces or calls, and why it ended.

    Attributes:
        index: the choice index.
        reasoning: reasoning pieces (None: the model did not reason).
        content: answer pieces (None: no text, e.g. a tool call).
        tool_calls: tool calls, in index order.
        function_call: the legacy function call.
        finish_reason: `stop`, `length`, `tool_calls` or `function_call`.
        completion_tokens: tokens generated (a stop string's token counts, unsent).
    """

    index: int
    reasoning: tuple[str, ...] | None
    content: tuple[str, ...] | None
    tool_calls: tuple[ToolCallPlan, ...] = ()
    function_call: ToolCallPlan | None = None
    finish_reason: str
    completion_tokens: int


@attrs.frozen(kw_only=True)
class ChatPlan:
    """A whole reply.

    Attributes:
        id: the completion id.
        created: Unix time.
        model: the model as requested.
        choices: one plan per choice.
        prompt_tokens: the prompt's estimated token count.
        reasoning_model: whether the model can reason (its `reasoning` field is sent and
            usage carries `reasoning_tokens`).
    """

    id: str
    created: int
    model: str
    choices: tuple[ChoicePlan, ...]
    prompt_tokens: int
    reasoning_model: bool

    def usage(self) -> dict[str, Any]:
        """The `usage` object."""
        completion_tokens = sum(c.completion_tokens for c in self.choices)
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }
        if self.reasoning_model:
            reasoning = sum(len(c.reasoning or ()) for c in self.choices)
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage


def semantic_problem(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """A valid-by-schema request that still cannot be served (400), if any.

    Args:
        body: the validated request body.

    Returns:
        `(message, param)`, or None when the request is fine.
    """
    tools = body.get("tools") or []
    names = [t["function"]["name"] for t in tools]
    choice = body.get("tool_choice")
    if choice == "required" and not tools:
        return "tool_choice 'required' needs at least one tool in `tools`", "tool_choice"
    if isinstance(choice, Mapping):
        if not tools:
            return "a named tool_choice needs `tools`", "tool_choice"
        wanted = choice["function"]["name"]
        if wanted not in names:
            return f"tool_choice names {wanted!r}, which is not in `tools` ({names})", "tool_choice"
    function_call = body.get("function_call")
    if isinstance(function_call, Mapping):
        functions = [f["name"] for f in body.get("functions") or []]
        if function_call["name"] not in functions:
            name = function_call["name"]
            return f"function_call names {name!r}, which is not in `functions` ({functions})", "function_call"
    if body.get("stream_options") is not None and not body.get("stream"):
        return "stream_options is only allowed when stream is true", "stream_options"
    return None


def plan_chat(
    body: Mapping[str, Any],
    info: ModelInfo | None,
    *,
    completion_id: str,
    created: int,
    server_seed: int,
    non_ascii: bool = False,
) -> ChatPlan:
    """Decide the whole reply to a chat request.

    Args:
        body: the validated request body.
        info: the model's catalog row (None: a plain chat model).
        completion_id: the id to report.
        created: the Unix time to report.
        server_seed: the server's seed, mixed with the request's `seed`.
        non_ascii: put multi-byte characters in the text.

    Returns:
        The plan.
    """
    messages = body["messages"]
    mode = info.capabilities.reasoning if info else "off"
    return ChatPlan(
        id=completion_id,
        created=created,
        model=body["model"],
        choices=tuple(_plan_choice(body, info, index, server_seed, non_ascii) for index in range(body.get("n") or 1)),
        prompt_tokens=_prompt_tokens(body, messages),
        reasoning_model=mode != "off",
    )


def _plan_choice(
    body: Mapping[str, Any], info: ModelInfo | None, index: int, server_seed: int, non_ascii: bool
) -> ChoicePlan:
    messages = body["messages"]
    basis = ("chat", body["model"], messages, body.get("seed"), server_seed, index)
    last_text, last_role, has_image = _last_turn(messages)
    content_rng = rng_for(*basis, "content")
    words = Words(content_rng, topic=topic_words(last_text), non_ascii=non_ascii)
    budget: int | None = body.get("max_tokens")

    reasoning: list[str] | None = None
    if _thinking(info, body):
        rng = rng_for(*basis, "reasoning")
        low, high = _EFFORT_TOKENS[body.get("reasoning_effort") or "medium"]
        thinker = Words(rng, topic=topic_words(last_text), non_ascii=non_ascii)
        reasoning = thinker.pieces(rng.randint(low, high), opener=("Okay,", "let", "me", "think."))
        if budget is not None and len(reasoning) >= budget:
            return ChoicePlan(
                index=index,
                reasoning=tuple(reasoning[:budget]),
                content=None,
                finish_reason="length",
                completion_tokens=budget,
            )
    spent = len(reasoning or ())
    left = None if budget is None else budget - spent
    tool_rng = rng_for(*basis, "tools")

    calls = _tool_calls(body, last_text, last_role, tool_rng, words)
    if calls is not None:
        kept, tokens, cut = _truncate_calls(calls, left)
        legacy = not body.get("tools")
        finish = "length" if cut else ("function_call" if legacy else "tool_calls")
        return ChoicePlan(
            index=index,
            reasoning=_tuple(reasoning),
            content=None,
            tool_calls=() if legacy else tuple(kept),
            function_call=kept[0] if legacy else None,
            finish_reason=finish,
            completion_tokens=spent + tokens,
        )

    pieces = _answer_pieces(body, info, content_rng, words, has_image)
    stops = _stops(body.get("stop"))
    content, tokens, finish = _apply_limits(pieces, stops, left)
    return ChoicePlan(
        index=index,
        reasoning=_tuple(reasoning),
        content=tuple(content),
        finish_reason=finish,
        completion_tokens=spent + tokens,
    )


def _tuple(pieces: list[str] | None) -> tuple[str, ...] | None:
    return None if pieces is None else tuple(pieces)


def _thinking(info: ModelInfo | None, body: Mapping[str, Any]) -> bool:
    mode = info.capabilities.reasoning if info else "off"
    kwargs = body.get("chat_template_kwargs") or {}
    enabled = kwargs.get("enable_thinking")
    if mode == "always":
        return True
    if mode == "on":
        return enabled is not False
    if mode == "optional":
        return enabled is True
    return False


def _text_of(content: Any) -> tuple[str, int]:
    """The text of a message's content, and how many images it holds."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts = [part.get("text", "") for part in content if part.get("type") == "text"]
    images = sum(1 for part in content if part.get("type") == "image_url")
    return " ".join(texts), images


def _last_turn(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str, bool]:
    """The last user message's text and images, and the role of the last message."""
    last_role = messages[-1]["role"]
    for message in reversed(messages):
        if message["role"] == "user":
            text, images = _text_of(message["content"])
            return text, last_role, images > 0
    return "", last_role, False


def _prompt_tokens(body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> int:
    # About four characters a token, four tokens of framing per message (OpenAI's rule).
    total = 3
    for message in messages:
        text, images = _text_of(message.get("content"))
        total += 4 + math.ceil(len(text) / 4) + images * _IMAGE_TOKENS
        for call in message.get("tool_calls") or []:
            total += math.ceil(len(json.dumps(call)) / 4)
    for key in ("tools", "functions", "response_format"):
        if body.get(key):
            total += math.ceil(len(json.dumps(body[key])) / 4)
    return total


def _mentioned(text: str, functions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The functions the text names (as `get_weather` or `get weather`), in text order."""
    lowered = text.lower()
    found: list[tuple[int, int, Mapping[str, Any]]] = []
    for order, function in enumerate(functions):
        name = str(function["name"]).lower()
        positions = [p for p in (lowered.find(name), lowered.find(name.replace("_", " "))) if p >= 0]
        if positions:
            found.append((min(positions), order, function))
    return [function for _, _, function in sorted(found, key=lambda item: item[:2])]


def _tool_calls(
    body: Mapping[str, Any], last_text: str, last_role: str, rng: random.Random, words: Words
) -> list[ToolCallPlan] | None:
    """The calls this reply makes, or None to answer in text."""
    tools = body.get("tools") or []
    if tools:
        functions = [t["function"] for t in tools]
        choice = body.get("tool_choice", "auto")
        chosen: list[Mapping[str, Any]]
        if choice == "none":
            return None
        if isinstance(choice, Mapping):
            chosen = [f for f in functions if f["name"] == choice["function"]["name"]][:1]
        else:
            chosen = [] if last_role == "tool" else _mentioned(last_text, functions)
            if not chosen and choice == "required":
                chosen = [rng.choice(functions)]
        if not chosen:
            return None
        if body.get("parallel_tool_calls") is False:
            chosen = chosen[:1]
        return [_call(f, rng, words) for f in chosen]
    functions = body.get("functions") or []
    if not functions:
        return None
    mode = body.get("function_call", "auto")
    if mode == "none":
        return None
    if isinstance(mode, Mapping):
        named = [f for f in functions if f["name"] == mode["name"]]
        return [_call(named[0], rng, words)]
    mentioned = [] if last_role == "tool" else _mentioned(last_text, functions)
    return [_call(mentioned[0], rng, words)] if mentioned else None


def _call(function: Mapping[str, Any], rng: random.Random, words: Words) -> ToolCallPlan:
    params = function.get("parameters") or {}
    if not params.get("properties") and "additionalProperties" not in params and "$ref" not in params:
        arguments: Any = {}  # a function without parameters is called with `{}`
    else:
        schema = params if "type" in params else {"type": "object", **params}
        arguments = schema_instance(schema, rng, words)
    text = json.dumps(arguments, ensure_ascii=False)
    return ToolCallPlan(
        id=f"call_{rng.getrandbits(96):024x}",
        name=str(function["name"]),
        arguments=tuple(split_text(rng, text)),
    )


def _truncate_calls(calls: list[ToolCallPlan], left: int | None) -> tuple[list[ToolCallPlan], int, bool]:
    if left is None:
        return calls, sum(len(c.arguments) for c in calls), False
    kept: list[ToolCallPlan] = []
    used = 0
    for call in calls:
        room = left - used
        if room <= 0:
            return kept or [attrs.evolve(calls[0], arguments=())], used, True
        if len(call.arguments) > room:
            kept.append(attrs.evolve(call, arguments=call.arguments[:room]))
            return kept, used + room, True
        kept.append(call)
        used += len(call.arguments)
    return kept, used, False


def _answer_pieces(
    body: Mapping[str, Any], info: ModelInfo | None, rng: random.Random, words: Words, has_image: bool
) -> list[str]:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        return split_text(rng, json.dumps(json_object(rng, words), ensure_ascii=False))
    if fmt.get("type") == "json_schema":
        schema = fmt["json_schema"].get("schema")
        value = json_object(rng, words) if schema is None else schema_instance(schema, rng, words)
        return split_text(rng, json.dumps(value, ensure_ascii=False))
    opener: tuple[str, ...] = ()
    if has_image and info is not None and info.capabilities.vision:
        opener = ("I", "see", "the", "image.")
    length = rng.randint(12, 48)
    # vLLM's `ignore_eos` / `min_tokens` extensions: long replies on demand (benchmarks
    # need one stream of 20,000+ chunks); `max_tokens` still cuts them.
    if body.get("ignore_eos") is True and isinstance(body.get("max_tokens"), int):
        length = max(length, body["max_tokens"])
    elif isinstance(body.get("min_tokens"), int) and not isinstance(body.get("min_tokens"), bool):
        length = max(length, body["min_tokens"])
    return words.pieces(length, opener=opener)


def _stops(stop: Any) -> list[str]:
    if isinstance(stop, str):
        stop = [stop]
    return [s for s in stop or [] if s]


def _apply_limits(pieces: list[str], stops: list[str], left: int | None) -> tuple[list[str], int, str]:
    """Cut at the first stop string or at the token budget: (pieces, tokens, finish)."""
    longest = max((len(s) for s in stops), default=0)
    text = ""
    for i, piece in enumerate(pieces):
        if left is not None and i >= left:
            return pieces[:i], i, "length"
        start = max(0, len(text) - longest + 1)
        text += piece
        hits = [p for p in (text.find(s, start) for s in stops) if p >= 0]
        if hits:
            return _prefix_pieces(pieces[: i + 1], min(hits)), i + 1, "stop"
    return pieces, len(pieces), "stop"


def _prefix_pieces(pieces: list[str], length: int) -> list[str]:
    """The pieces cut so that they join to exactly the first `length` characters."""
    out: list[str] = []
    for piece in pieces:
        if length <= 0:
            break
        out.append(piece[:length])
        length -= len(piece)
    return [p for p in out if p]
