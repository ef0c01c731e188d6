"""The resources of `AsyncClient`: `client.chat`, `client.models`, `client.embeddings`.

The typed surface users call; each builds its request (`_prepare`), hands it to the
client's send loop and turns the reply into a result (`_replies`). `_resources.py` is
the sync twin (the parity test compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, Unpack, final, overload

import httpx

from ._lazy import lazy_module

if TYPE_CHECKING:
    from . import _prepare, _replies
    from ._options import ClientOptions
    from ._prepare import RequestSpec
    from ._request import ChatParams, EmbeddingParams, MessageParam, RequestOptions
    from ._streaming._streams import AsyncChatStream
    from ._types._completion import ChatCompletion
    from ._types._embeddings import EmbeddingResponse
    from ._types._model_list import ModelList
else:
    _prepare = lazy_module("wandb_inference._prepare")
    _replies = lazy_module("wandb_inference._replies")

__all__ = ["AsyncChat", "AsyncEmbeddings", "AsyncModels", "AsyncSender"]


class AsyncSender(Protocol):
    """What the resources need of `AsyncClient` (a protocol: no import of the client here)."""

    _options: ClientOptions
    _http: httpx.AsyncClient

    async def _request(self, spec: RequestSpec) -> tuple[object, httpx.Response]: ...
    async def _stream(self, spec: RequestSpec) -> AsyncChatStream: ...


class _AsyncResource:
    __slots__ = ("_client",)

    def __init__(self, client: AsyncSender) -> None:
        self._client = client


@final
class AsyncChat(_AsyncResource):
    """`client.chat`: chat completions."""

    __slots__ = ()

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> AsyncChatStream: ...

    @overload
    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: bool,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | AsyncChatStream: ...

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | AsyncChatStream:
        """Create a chat completion, or with `stream=True` an `AsyncChatStream` of chunks.

        Args:
            model: a model id (`client.models.list()`), or a `wandb-artifact:///` LoRA id.
            messages: dicts (`{"role": "user", "content": "..."}`) or message models.
            stream: stream the reply as chunks (recommended for reasoning models).
            **params: every OpenAPI parameter (`max_tokens`, `temperature`, `tools`,
                `response_format`, `reasoning_effort`, ...) and per-call options
                (`extra_headers`, `extra_query`, `extra_body`, `timeout`).

        Returns:
            The typed completion, or a stream (an async iterator and context manager).

        Raises:
            InvalidRequestError: invalid arguments (nothing was sent).
            APIStatusError: a subclass per failure kind (see the error tree).
            APIConnectionError: the service could not be reached.
        """
        client = self._client
        spec = _prepare.prepare_chat(client._http, client._options, model, messages, stream, params)
        try:
            if stream:
                return await client._stream(spec)
            return _replies.finish_chat(*await client._request(spec), spec.trace)
        except BaseException as exc:  # re-raised: the span only records it
            if spec.trace is not None:
                spec.trace.fail(exc)
            raise


@final
class AsyncModels(_AsyncResource):
    """`client.models`: the models this deployment serves."""

    __slots__ = ()

    async def list(self, **options: Unpack[RequestOptions]) -> ModelList:
        """List the served models (iterable; items have `.id` and catalog `.info`).

        An empty list is returned as is, but is never authoritative (the service once
        briefly listed nothing).

        Raises:
            APIStatusError: a subclass per failure kind.
            APIConnectionError: the service could not be reached.
        """
        client = self._client
        spec = _prepare.prepare_models(client._http, client._options, options)
        return _replies.finish_models(*await client._request(spec))


@final
class AsyncEmbeddings(_AsyncResource):
    """`client.embeddings`: vectors for texts."""

    __slots__ = ()

    async def create(
        self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]
    ) -> EmbeddingResponse:
        """Embed one text or a list of texts.

        `.data[i].embedding` is always a list of floats: base64 replies (the SDK asks for
        them unless `encoding_format="float"`) are decoded.

        Raises:
            InvalidRequestError: invalid arguments (nothing was sent).
            APIStatusError: a subclass per failure kind (404: no embeddings served).
            APIConnectionError: the service could not be reached.
        """
        client = self._client
        spec = _prepare.prepare_embeddings(client._http, client._options, model, input, params)
        try:
            return _replies.finish_embeddings(*await client._request(spec), spec.trace)
        except BaseException as exc:  # re-raised: the span only records it
            if spec.trace is not None:
                spec.trace.fail(exc)
            raise
