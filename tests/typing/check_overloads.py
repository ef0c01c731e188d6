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


def check_clients_satisfy_what_batch_jobs_call(aclient: wi.AsyncClient, client: wi.Client) -> None:
    """The protocols `_batch` is typed against (it never imports the clients)."""
    from wandb_inference._batch._async import AsyncClientLike as AsyncBatchClient
    from wandb_inference._batch._sync import ClientLike as BatchClient

    async_side: AsyncBatchClient = aclient
    sync_side: BatchClient = client
    assert async_side is not None and sync_side is not None


async def check_batch(aclient: wi.AsyncClient, client: wi.Client, requests: list[wi.BatchRequest]) -> None:
    assert_type(await aclient.batch.run("in.jsonl", "out.jsonl"), wi.BatchSummary)
    assert_type(await aclient.batch.check("in.jsonl", "out.jsonl"), wi.BatchCheck)
    async with aclient.batch.stream(requests) as results:
        async for result in results:
            assert_type(result, wi.BatchResult)
            assert_type(result.error, wi.WandbInferenceError | None)
    assert_type(client.batch.run("in.jsonl", "out.jsonl"), wi.BatchSummary)
    with client.batch.stream(requests) as sync_results:
        for item in sync_results:
            assert_type(item, wi.BatchResult)
