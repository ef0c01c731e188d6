"""Checked by mypy, never run: results read the way `openai` users read them type-check.

Every line below is how an application written against `openai` reads a reply; each
must pass `mypy --strict` with the types the API documents (no sentinel in any union).
tests/test_result_types.py holds the same promises at run time.
"""

# ruff: noqa: F841  (the annotated assignments are the checks: mypy verifies each type)

from __future__ import annotations

from typing import assert_type

import wandb_inference as wi

MESSAGES = [{"role": "user", "content": "hi"}]


def check_completion(client: wi.Client) -> None:
    r = client.chat.create(model="m", messages=MESSAGES)
    content: str | None = r.choices[0].message.content
    finish_reason: str | None = r.choices[0].finish_reason
    reasoning: str | None = r.choices[0].message.reasoning
    refusal: str | None = r.choices[0].message.refusal
    fingerprint: str | None = r.system_fingerprint
    rid: str = r.id
    created: int = r.created
    model: str = r.model
    index: int = r.choices[0].index
    role: str = r.choices[0].message.role
    assert_type(r.choices[0].message.content, str | None)
    assert_type(r.choices[0].finish_reason, str | None)
    assert_type(r.text, str)

    if r.usage is not None:
        prompt_tokens: int = r.usage.prompt_tokens
        completion_tokens: int = r.usage.completion_tokens
        total_tokens: int = r.usage.total_tokens
        if r.usage.completion_tokens_details is not None:
            reasoning_tokens: int | None = r.usage.completion_tokens_details.reasoning_tokens
        if r.usage.prompt_tokens_details is not None:
            cached_tokens: int | None = r.usage.prompt_tokens_details.cached_tokens

    message = r.choices[0].message
    if message.tool_calls:
        for call in message.tool_calls:
            call_id: str = call.id
            name: str = call.function.name
            arguments: str = call.function.arguments
    for call in message.tool_calls or []:
        assert_type(call.function.arguments, str)
    if message.function_call is not None:
        legacy_name: str = message.function_call.name

    logprobs = r.choices[0].logprobs
    if logprobs is not None and logprobs.content is not None:
        for token in logprobs.content:
            text: str = token.token
            logprob: float = token.logprob
            raw: list[int] | None = token.bytes_
            alternatives: list[str] = [top.token for top in token.top_logprobs]


def check_stream(client: wi.Client) -> None:
    with client.chat.create(model="m", messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            content: str | None = delta.content
            reasoning: str | None = delta.reasoning
            role: str | None = delta.role
            finish_reason: str | None = chunk.choices[0].finish_reason
            assert_type(delta.content, str | None)
            for tool_call in delta.tool_calls or []:
                index: int = tool_call.index
                call_id: str | None = tool_call.id
                if tool_call.function:
                    name: str | None = tool_call.function.name
                    arguments: str | None = tool_call.function.arguments
            if chunk.usage:
                total_tokens: int = chunk.usage.total_tokens
    final = stream.completion
    answer: str | None = final.choices[0].message.content


async def check_async(client: wi.AsyncClient) -> None:
    r = await client.chat.create(model="m", messages=MESSAGES)
    content: str | None = r.choices[0].message.content
    stream = await client.chat.create(model="m", messages=MESSAGES, stream=True)
    async with stream:
        async for chunk in stream:
            piece: str | None = chunk.choices[0].delta.content if chunk.choices else None
    models = await client.models.list()
    owners: list[str] = [m.owned_by for m in models]
    e = await client.embeddings.create(model="m", input="x")
    v: list[float] = e.data[0].embedding


def check_models(client: wi.Client) -> None:
    models = client.models.list()
    owners: list[str] = [m.owned_by for m in models]
    ids: list[str] = [m.id for m in models.data]
    created: list[int] = [m.created for m in models]
    root: str | None = models.data[0].root
    assert_type(models.data[0], wi.Model)
    assert_type(next(iter(models)), wi.Model)


def check_embeddings(client: wi.Client) -> None:
    e = client.embeddings.create(model="m", input=["a", "b"])
    v: list[float] = e.data[0].embedding
    vectors: list[list[float]] = [d.embedding for d in e.data]
    index: int = e.data[0].index
    model: str = e.model
    assert_type(e.data[0], wi.EmbeddingData)
    assert_type(e.data[0].embedding, list[float])
    if e.usage is not None:
        total_tokens: int = e.usage.total_tokens
        prompt_tokens: int = e.usage.prompt_tokens


def check_tool_round_trip(client: wi.Client) -> None:
    r = client.chat.create(model="m", messages=MESSAGES)
    messages: list[dict[str, object]] = [r.choices[0].message.to_dict()]
    messages += wi.run_tool_calls(r.choices[0].message.tool_calls, {"f": len})
