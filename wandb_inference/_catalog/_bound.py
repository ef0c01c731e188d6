"""Bound models: a client plus a model id and that model's sensible defaults.

`client.llama_3_3_70b()` returns an `AsyncChatModel` (or `ChatModel` on `Client`):
`await llama.ask("...")` -> text, `await llama.create(messages=...)`, `stream=True`.
Embedding models (`client.bge_m3()`) return an `AsyncEmbeddingModel` with `embed()`.
The constructors themselves are generated from the catalog (`_constructors.py`, on
`_binders.py`); this module loads when the first model is bound.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, Unpack, final, overload

import httpx

from wandb_inference._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from wandb_inference._request import ChatParams, EmbeddingParams, MessageParam
    from wandb_inference._streaming._streams import AsyncChatStream, ChatStream
    from wandb_inference._types._completion import ChatCompletion
    from wandb_inference._types._embeddings import EmbeddingResponse

    from ._table import ModelInfo

__all__ = [
    "AsyncChatModel",
    "AsyncEmbeddingModel",
    "ChatModel",
    "EmbeddingModel",
    "RetiredModelWarning",
    "bound_defaults",
]

# What a bound model needs of its client, as protocols: the clients build bound models
# (through the generated constructors), so naming the client classes here would tie the
# catalog and the clients in an import cycle.


class _AsyncChatAPI(Protocol):
    async def create(
        self, *, model: str, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | AsyncChatStream: ...


class _AsyncEmbeddingsAPI(Protocol):
    async def create(
        self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]
    ) -> EmbeddingResponse: ...


class AsyncClientLike(Protocol):
    """What an async bound model calls: `AsyncClient` (its `chat` and `embeddings`)."""

    @property
    def chat(self) -> _AsyncChatAPI: ...
    @property
    def embeddings(self) -> _AsyncEmbeddingsAPI: ...


class _ChatAPI(Protocol):
    def create(
        self, *, model: str, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | ChatStream: ...


class _EmbeddingsAPI(Protocol):
    def create(
        self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]
    ) -> EmbeddingResponse: ...


class ClientLike(Protocol):
    """What a sync bound model calls: `Client` (its `chat` and `embeddings`)."""

    @property
    def chat(self) -> _ChatAPI: ...
    @property
    def embeddings(self) -> _EmbeddingsAPI: ...


# Reasoning models think before the first token: give non-streamed calls time.
REASONING_READ_TIMEOUT = 1800.0


class RetiredModelWarning(UserWarning):
    """A per-model constructor was called for a retired model (it answers 404)."""


def bound_defaults(
    info: ModelInfo | None,
    timeout: float | httpx.Timeout | None,
    client_timeout: httpx.Timeout,
    stacklevel: int = 4,
) -> dict[str, Any]:
    """Per-call defaults for a model, and the lifecycle warning.

    Args:
        info: the model's catalog row, if the catalog knows it.
        timeout: the `timeout=` given to the constructor, if any: used as it is.
        client_timeout: the client's timeout. A reasoning model keeps it, with the read
            part raised to `REASONING_READ_TIMEOUT` if it is shorter.
        stacklevel: where the retired-model warning points.

    Returns:
        Parameters merged into each call (a longer read timeout for reasoning models).
    """
    defaults: dict[str, Any] = {}
    if timeout is not None:
        defaults["timeout"] = timeout
    elif info is not None and info.capabilities.reasoning in ("on", "always"):
        read = client_timeout.read
        if read is not None and read < REASONING_READ_TIMEOUT:
            defaults["timeout"] = httpx.Timeout(
                connect=client_timeout.connect,
                read=REASONING_READ_TIMEOUT,
                write=client_timeout.write,
                pool=client_timeout.pool,
            )
    if info is not None and info.lifecycle.stage == "retired":
        replacement = info.lifecycle.replacement
        when = f" on {info.lifecycle.retired_on.isoformat()}" if info.lifecycle.retired_on else ""
        use = f"; use {replacement!r} instead" if replacement else ""
        warnings.warn(
            f"{info.name} ({info.id}) was retired{when} and its requests answer 404{use}.",
            RetiredModelWarning,
            stacklevel=stacklevel,
        )
    return defaults


def _prompt_messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    if not isinstance(prompt, str) or not prompt:
        raise InvalidRequestError("ask() needs a non-empty prompt string")
    messages = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    return messages


def _answer(completion: ChatCompletion) -> str:
    from wandb_inference._helpers._reasoning import split_reasoning

    text = completion.text
    if completion.reasoning is None:
        _, text = split_reasoning(text)
    return text


class _Bound:
    __slots__ = ("_defaults", "info", "model")

    def __init__(self, model: str, info: ModelInfo | None, defaults: Mapping[str, Any]) -> None:
        self.model = model
        self.info = info
        self._defaults = dict(defaults)

    def _params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {**self._defaults, **params}

    def __repr__(self) -> str:
        name = f" ({self.info.name})" if self.info is not None else ""
        return f"{type(self).__name__}(model={self.model!r}){name}"


@final
class AsyncChatModel(_Bound):
    """A chat model bound to an `AsyncClient`."""

    __slots__ = ("_client",)

    def __init__(
        self, client: AsyncClientLike, model: str, info: ModelInfo | None, defaults: Mapping[str, Any]
    ) -> None:
        super().__init__(model, info, defaults)
        self._client = client

    @overload
    async def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> AsyncChatStream: ...

    @overload
    async def create(
        self, *, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | AsyncChatStream: ...

    async def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | AsyncChatStream:
        """`client.chat.create(model=<this model>, ...)` with this model's defaults."""
        merged: Any = self._params(params)
        return await self._client.chat.create(model=self.model, messages=messages, stream=stream, **merged)

    async def ask(self, prompt: str, *, system: str | None = None, **params: Unpack[ChatParams]) -> str:
        """Send one user prompt and return the answer text (reasoning left out)."""
        reply = await self.create(messages=_prompt_messages(prompt, system), **params)
        return _answer(reply)


@final
class ChatModel(_Bound):
    """A chat model bound to a `Client`."""

    __slots__ = ("_client",)

    def __init__(self, client: ClientLike, model: str, info: ModelInfo | None, defaults: Mapping[str, Any]) -> None:
        super().__init__(model, info, defaults)
        self._client = client

    @overload
    def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> ChatStream: ...

    @overload
    def create(
        self, *, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | ChatStream: ...

    def create(
        self,
        *,
        messages: Sequence[MessageParam],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | ChatStream:
        """`client.chat.create(model=<this model>, ...)` with this model's defaults."""
        merged: Any = self._params(params)
        return self._client.chat.create(model=self.model, messages=messages, stream=stream, **merged)

    def ask(self, prompt: str, *, system: str | None = None, **params: Unpack[ChatParams]) -> str:
        """Send one user prompt and return the answer text (reasoning left out)."""
        reply = self.create(messages=_prompt_messages(prompt, system), **params)
        return _answer(reply)


@final
class AsyncEmbeddingModel(_Bound):
    """An embeddings model bound to an `AsyncClient`."""

    __slots__ = ("_client",)

    def __init__(
        self, client: AsyncClientLike, model: str, info: ModelInfo | None, defaults: Mapping[str, Any]
    ) -> None:
        super().__init__(model, info, defaults)
        self._client = client

    async def embed(self, input: str | Sequence[str], **params: Unpack[EmbeddingParams]) -> list[list[float]]:
        """The vectors for one text or a list of texts, in input order."""
        merged: Any = self._params(params)
        result = await self._client.embeddings.create(model=self.model, input=input, **merged)
        return result.embeddings


@final
class EmbeddingModel(_Bound):
    """An embeddings model bound to a `Client`."""

    __slots__ = ("_client",)

    def __init__(self, client: ClientLike, model: str, info: ModelInfo | None, defaults: Mapping[str, Any]) -> None:
        super().__init__(model, info, defaults)
        self._client = client

    def embed(self, input: str | Sequence[str], **params: Unpack[EmbeddingParams]) -> list[list[float]]:
        """The vectors for one text or a list of texts, in input order."""
        merged: Any = self._params(params)
        result = self._client.embeddings.create(model=self.model, input=input, **merged)
        return result.embeddings
