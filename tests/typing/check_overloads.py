"""Checked by mypy, never run: the `stream` overloads give the right types."""

from __future__ import annotations

from typing import assert_type

import wandb_inference as wi

MESSAGES = [{"role": "user", "content": "hi"}]


async def check_async(client: wi.AsyncClient, flag: bool) -> None:
    assert_type(await client.chat.create(model="m", messages=MESSAGES), wi.ChatCompletion)
    assert_type(await client.chat.create(model="m", messages=MESSAGES, stream=False), wi.ChatCompletion)
    assert_type(await client.chat.create(model="m", messages=MESSAGES, stream=True), wi.AsyncChatStream)
    assert_type(
        await client.chat.create(model="m", messages=MESSAGES, stream=flag),
        wi.ChatCompletion | wi.AsyncChatStream,
    )
    assert_type(await client.models.list(), wi.ModelList)
    assert_type(await client.embeddings.create(model="m", input="x"), wi.EmbeddingResponse)
    stream = await client.chat.create(model="m", messages=MESSAGES, stream=True)
    async with stream:
        async for chunk in stream:
            assert_type(chunk, wi.ChatCompletionChunk)


def check_sync(client: wi.Client, flag: bool) -> None:
    assert_type(client.chat.create(model="m", messages=MESSAGES), wi.ChatCompletion)
    assert_type(client.chat.create(model="m", messages=MESSAGES, stream=True), wi.ChatStream)
    assert_type(client.chat.create(model="m", messages=MESSAGES, stream=flag), wi.ChatCompletion | wi.ChatStream)
    with client.chat.create(model="m", messages=MESSAGES, stream=True) as stream:
        for chunk in stream:
            assert_type(chunk, wi.ChatCompletionChunk)


def check_clients_satisfy_what_bound_models_call(aclient: wi.AsyncClient, client: wi.Client) -> None:
    """The protocols bound models are typed against (no import of the clients there)."""
    from wandb_inference._catalog._bound import AsyncClientLike, ClientLike

    async_side: AsyncClientLike = aclient
    sync_side: ClientLike = client
    assert async_side is not None and sync_side is not None
