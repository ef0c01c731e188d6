"""`AsyncClient`: the async SDK (`await client.chat.create(...)`).

The only async-specific code is the I/O loop in `_send` and the stream's read loop;
every decision (options, request building, retries, error mapping, SSE, accumulation)
lives in the shared pure modules that `Client` uses too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Unpack, final, overload

import httpx

from ._concurrency import AsyncLimiter
from ._config import DEFAULT_LIMITS
from ._constructors import AsyncConstructors
from ._lazy import lazy_module
from ._options import ClientOptionsMixin, derive_options, resolve_options
from ._retry import RetryState

if TYPE_CHECKING:
    from . import _base, _errors_map, _exceptions
    from ._base import RequestSpec
    from ._completion import ChatCompletion
    from ._concurrency import Slot
    from ._embeddings import EmbeddingResponse
    from ._model_list import ModelList
    from ._options import ClientOptions
    from ._request import ChatParams, EmbeddingParams, MessageParam, RequestOptions
    from ._retry import RetryPolicy
    from ._streaming import AsyncChatStream
else:
    # Needed from the first call on, not to construct a client: imported then.
    _base = lazy_module("wandb_inference._base")
    _errors_map = lazy_module("wandb_inference._errors_map")
    _exceptions = lazy_module("wandb_inference._exceptions")

__all__ = ["AsyncClient"]


async def _sleep(seconds: float) -> None:
    """The default wait between retries (anyio: works under asyncio and trio)."""
    import anyio

    await anyio.sleep(seconds)


async def _read_limited(response: httpx.Response, limit: int, what: str, state: RetryState | None = None) -> bytes:
    """Read a body up to `limit` bytes (and, given `state`, within its `total_timeout`)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _base.too_large(limit, what, response.request)
        chunks.append(chunk)
        if state is not None and state.deadline is not None and state.expired():
            raise state.deadline_error(f"while reading the {what}", response.request)
    return b"".join(chunks)


async def _read_error_body(response: httpx.Response) -> bytes:
    """An error reply's body (size-capped), b"" when it cannot be read: the status alone
    still classifies the error. The response is closed."""
    try:
        return await _read_limited(response, _base.MAX_ERROR_BODY, "error body")
    except (httpx.HTTPError, httpx.StreamError, _exceptions.APIError):
        return b""
    finally:
        await response.aclose()


@final
class AsyncClient(ClientOptionsMixin, AsyncConstructors):
    """The async W&B Inference client.

    ```python
    async with wandb_inference.AsyncClient(project="team/project") as client:
        reply = await client.chat.create(
            model="meta-llama/Llama-3.3-70B-Instruct",
            messages=[{"role": "user", "content": "Hello"}],
        )
        print(reply.text)
    ```

    Args:
        api_key: the W&B API key; default `WANDB_API_KEY`, then `~/.netrc` (`wandb login`).
        project: `team/project` sent as `OpenAI-Project`; default `WANDB_INFERENCE_PROJECT`,
            or `WANDB_ENTITY` + `WANDB_PROJECT`. Not sent when unset.
        base_url: default `WANDB_INFERENCE_BASE_URL`, then `https://api.inference.wandb.ai/v1`.
        timeout: seconds or an `httpx.Timeout`; default connect 10 s, read 600 s (reasoning
            models are slow to start), write 60 s, pool 60 s.
        max_retries: retries of retryable failures (default 3; see `RetryPolicy`).
        retry_policy: the full retry policy (backoff, Retry-After cap, total time).
        default_headers: headers added to every request.
        http_client: an `httpx.AsyncClient` to use (proxies, TLS, transports); the SDK does
            not close a client it was given.
        check_capabilities: refuse before sending what the catalog says a model cannot do.
        max_concurrency: at most this many requests in flight (per client, and per model);
            None: no limit.
        adaptive_concurrency: on concurrency 429s, lower the in-flight limit and raise it
            back after successes.
        max_event_size: the largest SSE line or event a stream accepts, in bytes (default
            16 MiB); a larger one raises `StreamError` rather than filling memory.
        sleep: the coroutine used to wait between retries (tests pass a fake one).

    Raises:
        ConfigurationError: no API key, or an invalid option.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        project: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        check_capabilities: bool = True,
        max_concurrency: int | None = None,
        adaptive_concurrency: bool = True,
        max_event_size: int | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        options = resolve_options(
            api_key=api_key,
            project=project,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            default_headers=default_headers,
            check_capabilities=check_capabilities,
            max_concurrency=max_concurrency,
            adaptive_concurrency=adaptive_concurrency,
            max_event_size=max_event_size,
        )
        given: object = http_client
        if given is not None and not isinstance(given, httpx.AsyncClient):
            raise _exceptions.ConfigurationError(
                "http_client must be an httpx.AsyncClient (use Client for httpx.Client)"
            )
        owns = http_client is None
        http = http_client or httpx.AsyncClient(limits=DEFAULT_LIMITS, follow_redirects=False)
        self._setup(options, http, owns, sleep or _sleep, AsyncLimiter.for_options(options))

    def _setup(
        self,
        options: ClientOptions,
        http: httpx.AsyncClient,
        owns: bool,
        sleep: Callable[[float], Awaitable[None]],
        limiter: AsyncLimiter | None,
    ) -> None:
        self._options = options
        self._http = http
        self._owns_pool = owns
        self._sleep = sleep
        self._limiter = limiter
        self._closed = False
        self.chat = AsyncChat(self)
        self.models = AsyncModels(self)
        self.embeddings = AsyncEmbeddings(self)

    # ------------------------------------------------------------------ options

    def with_options(
        self,
        *,
        api_key: str | None = None,
        project: str | None = None,
        base_url: str | httpx.URL | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        check_capabilities: bool | None = None,
    ) -> AsyncClient:
        """A client with some options changed that shares this one's connection pool.

        Cheap enough per request; closing it does not close the shared pool. Options
        left as None keep this client's values.

        Raises:
            ConfigurationError: an invalid option.
        """
        options = derive_options(self._options, locals())
        derived = object.__new__(AsyncClient)
        derived._setup(options, self._http, False, self._sleep, self._limiter)
        return derived

    def __repr__(self) -> str:
        return f"AsyncClient(base_url={self.base_url!r}, project={self.project!r})"

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the connection pool (if this client created it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_pool:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ I/O core

    def _closed_error(self, spec: RequestSpec) -> _exceptions.APIConnectionError:
        return _exceptions.APIConnectionError(
            "This client (or the client it was derived from with with_options(), or the "
            "http_client it was given) is closed; create a new one (or use it in `async with`).",
            request=spec.request,
        )

    async def _send(self, spec: RequestSpec) -> tuple[httpx.Response, Slot | None]:
        """Send with retries; return a 2xx response (body unread) and its concurrency slot.

        Each attempt holds a slot of the concurrency limiter while in flight (the wait for
        it bounded by the pool timeout and `total_timeout`); the caller releases the
        returned one when the body is read or the stream closed. Every attempt's
        timeouts are cut to what remains of `total_timeout`.

        Raises:
            APIStatusError: (a subclass for) the final non-2xx status.
            APIConnectionError: the final transport failure (`APITimeoutError` for
                timeouts, the slot wait and `total_timeout`).
        """
        http = self._http
        if self._closed or http.is_closed:
            raise self._closed_error(spec)
        spec.retry = state = RetryState(self._options.retry)
        limiter = self._limiter
        request = spec.request
        refused = False  # the last attempt was a refused probe of the concurrency gate
        while True:
            attempt = state.retries + 1
            capped = spec.start_attempt(state)
            slot: Slot | None = None
            if limiter is not None:
                wait = _base.slot_wait(capped, spec)
                slot = await limiter.acquire(spec.model, wait, first=refused)
                if slot is None:
                    raise _base.slot_timeout(limiter.describe(spec.model), wait, spec, state)
            try:
                response = await http.send(request, stream=True)
            except Exception as exc:
                if slot is not None:
                    slot.finish(ok=False)
                if not isinstance(exc, httpx.HTTPError | httpx.StreamError):
                    if http.is_closed:
                        raise self._closed_error(spec) from exc
                    raise
                decision = state.decide(exc, idempotent=spec.idempotent)
                _base.log_attempt(spec, attempt, type(exc).__name__, decision)
                if not decision.retry:
                    raise _base.attempt_error(exc, spec, state, self.base_url) from exc
                await self._sleep(decision.delay)
                continue
            except BaseException:
                if slot is not None:
                    slot.finish(ok=False)
                raise
            if response.is_success:
                _base.log_attempt(spec, attempt, str(response.status_code), None)
                _base.redact_response(response)
                return response, slot
            rate_limited = False
            try:
                content = await _read_error_body(response)
                _base.keep_error_body(response, content)
                _base.redact_response(response)
                error = _base.status_error(response, spec, state.retries)
                rate_limited = isinstance(error, _exceptions.RateLimitError)
            finally:
                if slot is not None:
                    slot.finish(ok=False, rate_limited=rate_limited)
            refused = slot is not None and slot.probe_refused
            paced = _base.gate_paces_retry(error, limiter, spec.model)
            decision = state.decide(error, free=refused or paced)
            _base.log_attempt(spec, attempt, str(response.status_code), decision)
            if not decision.retry:
                raise _base.gave_up(error, decision)
            if not paced:
                await self._sleep(decision.delay)

    async def _request(self, spec: RequestSpec) -> tuple[object, httpx.Response]:
        """Send (retried, within the concurrency limit), read and decode a JSON reply."""
        response, slot = await self._send(spec)
        ok = False
        try:
            content = await _read_limited(response, _base.MAX_RESPONSE_BODY, "response body", spec.retry)
            ok = True
        except (httpx.HTTPError, httpx.StreamError) as exc:
            assert spec.retry is not None
            raise _base.attempt_error(exc, spec, spec.retry, self.base_url) from exc
        finally:
            try:
                await response.aclose()
            finally:
                if slot is not None:
                    slot.finish(ok=ok)
        return _base.decode_json(content, response), response

    async def _stream(self, spec: RequestSpec) -> AsyncChatStream:
        from ._chunk import parse_chunk
        from ._streaming import AsyncChatStream, StreamProcessor

        response, slot = await self._send(spec)
        if not _base.is_event_stream(response):
            try:
                content = await _read_limited(response, _base.MAX_ERROR_BODY, "response body")
            except (httpx.HTTPError, httpx.StreamError) as exc:
                assert spec.retry is not None
                raise _base.attempt_error(exc, spec, spec.retry, self.base_url) from exc
            finally:
                try:
                    await response.aclose()
                finally:
                    if slot is not None:
                        slot.finish(ok=False)
            raise _base.stream_reply_not_sse(content, response)
        spec.restore_timeouts()
        processor = StreamProcessor(response.request, parse_chunk, max_event_size=self._options.max_event_size)
        return AsyncChatStream(response, processor, slot)


class _AsyncResource:
    __slots__ = ("_client",)

    def __init__(self, client: AsyncClient) -> None:
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
        spec = _base.prepare_chat(client._http, client._options, model, messages, stream, params)
        if stream:
            return await client._stream(spec)
        return _base.finish_chat(*await client._request(spec))


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
        spec = _base.prepare_models(client._http, client._options, options)
        return _base.finish_models(*await client._request(spec))


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
        spec = _base.prepare_embeddings(client._http, client._options, model, input, params)
        return _base.finish_embeddings(*await client._request(spec))
