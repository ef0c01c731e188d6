"""`AsyncClient`: the async SDK (`await client.chat.create(...)`).

The only async-specific code is the I/O loop in `_send` and the stream's read loop;
every decision (options, request building, retries, error mapping, SSE, accumulation)
lives in the shared pure modules that `Client` uses too.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack, final

import httpx

from ._async_resources import AsyncChat, AsyncEmbeddings, AsyncModels
from ._catalog._constructors import AsyncConstructors
from ._config import DEFAULT_LIMITS
from ._lazy import lazy_module
from ._options import ClientOptionsMixin, derive_options, resolve_options
from ._policy._concurrency import AsyncLimiter
from ._policy._retry import RetryState
from ._transports._pool_fix import async_http_client

if TYPE_CHECKING:
    from . import _exceptions, _prepare, _replies
    from ._batch._async import AsyncBatch
    from ._options import ClientOptions
    from ._policy import _errors_map
    from ._policy._concurrency import Slot
    from ._policy._retry import RetryPolicy
    from ._prepare import RequestSpec
    from ._request import RequestOptions
    from ._streaming._streams import AsyncChatStream
    from ._transports import _decompress
else:
    # Needed from the first call on, not to construct a client: imported then.
    _prepare = lazy_module("wandb_inference._prepare")
    _replies = lazy_module("wandb_inference._replies")
    _errors_map = lazy_module("wandb_inference._policy._errors_map")
    _exceptions = lazy_module("wandb_inference._exceptions")
    _decompress = lazy_module("wandb_inference._transports._decompress")

__all__ = ["AsyncClient"]


async def _sleep(seconds: float) -> None:
    """The default wait between retries (anyio: works under asyncio and trio)."""
    import anyio

    await anyio.sleep(seconds)


async def _read_limited(response: httpx.Response, limit: int, what: str, state: RetryState | None = None) -> bytes:
    """Read a body up to `limit` bytes (and, given `state`, within its `total_timeout`).

    Compressed bodies are inflated a bounded piece at a time: the cap holds for memory too.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in _decompress.aiter_body(response):
        size += len(chunk)
        if size > limit:
            raise _replies.too_large(limit, what, response.request)
        chunks.append(chunk)
        if state is not None and state.deadline is not None and state.expired():
            raise state.deadline_error(f"while reading the {what}", response.request, processed=True)
    return b"".join(chunks)


async def _read_error_body(response: httpx.Response) -> bytes:
    """An error reply's body (size-capped), b"" when it cannot be read: the status alone
    still classifies the error. The response is closed."""
    try:
        return await _read_limited(response, _replies.MAX_ERROR_BODY, "error body")
    except (httpx.HTTPError, httpx.StreamError, _exceptions.APIError):
        return b""
    finally:
        await response.aclose()


def _own_http_client(transport: object) -> httpx.AsyncClient:
    """The pool an `AsyncClient` makes for itself: httpx's transport, or aiohttp's."""
    if transport == "httpx":
        return async_http_client()
    if transport != "aiohttp":
        raise _exceptions.ConfigurationError(f"transport must be 'httpx' or 'aiohttp', got {transport!r}")
    try:
        from ._transports._aiohttp import aiohttp_http_client
    except ImportError as exc:
        raise _exceptions.ConfigurationError(
            f"transport='aiohttp' needs aiohttp ({exc}): pip install 'wandb-inference[aiohttp]'"
        ) from exc
    return aiohttp_http_client(DEFAULT_LIMITS)


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
        tracing: OpenTelemetry GenAI spans and metrics for each call when the application
            has set a provider (False: never).
        capture_message_content: put messages on spans (None: the variable
            `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, default off).
        sleep: the coroutine used to wait between retries (tests pass a fake one).
        transport: `"httpx"` (default) or `"aiohttp"`: send over aiohttp's connection pool
            and HTTP parser (extra `wandb-inference[aiohttp]`, asyncio only), which costs
            less CPU per call and per stream chunk; everything else (errors, retries,
            limits, streams) behaves the same. Not with `http_client=`.

    Raises:
        ConfigurationError: no API key, or an invalid option (`transport="aiohttp"`
            without the extra installed, or with `http_client=`).
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
        tracing: bool = True,
        capture_message_content: bool | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        transport: Literal["httpx", "aiohttp"] = "httpx",
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
            tracing=tracing,
            capture_message_content=capture_message_content,
        )
        given: object = http_client
        if given is not None and not isinstance(given, httpx.AsyncClient):
            raise _exceptions.ConfigurationError(
                "http_client must be an httpx.AsyncClient (use Client for httpx.Client)"
            )
        if given is not None and transport != "httpx":
            raise _exceptions.ConfigurationError(
                f"transport={transport!r} builds the client's own connection pool: pass it or http_client=, not both."
            )
        owns = http_client is None
        http = http_client or _own_http_client(transport)
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
        tracing: bool | None = None,
        capture_message_content: bool | None = None,
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

    # ------------------------------------------------------------------ any operation

    async def call(
        self, operation_id: str, body: Mapping[str, Any] | None = None, **options: Unpack[RequestOptions]
    ) -> Any:
        """Call any operation of the API document by its `operationId` (README: "Maintaining the API").

        For an endpoint added to openapi/openapi.yaml before it has a facade method: after
        `scripts/regen.sh` it is in the operation table, and this sends it with the key, the
        project header, retries, the concurrency gate and typed errors, its body checked
        against the document first. E.g. `await client.call("listModels")`.

        Returns:
            The generated model of its 200 reply, or the decoded JSON if the document names none.

        Raises:
            InvalidRequestError: an unknown operation or an invalid body (nothing was sent).
            APIStatusError, APIConnectionError: as for every call.
        """
        spec = _prepare.prepare_operation(self._http, self._options, operation_id, body, options)
        data, response = await self._request(spec)
        return _replies.finish_operation(operation_id, data, response)

    # ------------------------------------------------------------------ hooks

    def _slot_room(self, model: str | None) -> float:
        """How many more requests for `model` the concurrency gate lets start now (inf:
        no limit). The batch runner sizes what it sends by it (`_batch`)."""
        limiter = self._limiter
        return math.inf if limiter is None else limiter.room(model)

    @property
    def batch(self) -> AsyncBatch:
        """Batch jobs: OpenAI Batch JSONL files and in-memory requests (`run`, `stream`, `check`)."""
        from ._batch._async import AsyncBatch

        return AsyncBatch(self)

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
                wait = _replies.slot_wait(capped, spec)
                slot = await limiter.acquire(spec.model, wait, first=refused)
                if slot is None:
                    raise _replies.slot_timeout(limiter.describe(spec.model), wait, spec, state)
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
                _replies.log_attempt(spec, attempt, type(exc).__name__, decision, exc)
                if not decision.retry:
                    raise _replies.attempt_error(exc, spec, state, self.base_url) from exc
                await self._sleep(decision.delay)
                continue
            except BaseException:
                if slot is not None:
                    slot.finish(ok=False)
                raise
            if response.is_success:
                _replies.log_attempt(spec, attempt, str(response.status_code), None)
                _replies.redact_response(response)
                return response, slot
            rate_limited = False
            try:
                content = await _read_error_body(response)
                _replies.keep_error_body(response, content)
                _replies.redact_response(response)
                error = _replies.status_error(response, spec, state.retries)
                rate_limited = isinstance(error, _exceptions.RateLimitError)
            finally:
                if slot is not None:
                    slot.finish(ok=False, rate_limited=rate_limited)
            refused = slot is not None and slot.probe_refused
            paced = _replies.gate_paces_retry(error, limiter, spec.model)
            decision = state.decide(error, free=refused or paced, free_window=_replies.free_window(spec))
            _replies.log_attempt(spec, attempt, str(response.status_code), decision, error)
            if not decision.retry:
                raise _replies.gave_up(error, decision)
            if not paced:
                await self._sleep(decision.delay)

    async def _request(self, spec: RequestSpec) -> tuple[object, httpx.Response]:
        """Send (retried, within the concurrency limit), read and decode a JSON reply."""
        response, slot = await self._send(spec)
        ok = False
        try:
            content = await _read_limited(response, _replies.MAX_RESPONSE_BODY, "response body", spec.retry)
            ok = True
        except (httpx.HTTPError, httpx.StreamError) as exc:
            assert spec.retry is not None
            raise _replies.attempt_error(exc, spec, spec.retry, self.base_url) from exc
        finally:
            try:
                await response.aclose()
            finally:
                if slot is not None:
                    slot.finish(ok=ok)
        return _replies.decode_json(content, response), response

    async def _stream(self, spec: RequestSpec) -> AsyncChatStream:
        from ._streaming._processor import StreamProcessor
        from ._streaming._streams import AsyncChatStream
        from ._types._chunk import parse_chunk

        response, slot = await self._send(spec)
        if not _replies.is_event_stream(response):
            try:
                content = await _read_limited(response, _replies.MAX_ERROR_BODY, "response body")
            except (httpx.HTTPError, httpx.StreamError) as exc:
                assert spec.retry is not None
                raise _replies.attempt_error(exc, spec, spec.retry, self.base_url) from exc
            finally:
                try:
                    await response.aclose()
                finally:
                    if slot is not None:
                        slot.finish(ok=False)
            raise _replies.stream_reply_not_sse(content, response)
        spec.restore_timeouts()
        processor = StreamProcessor(response.request, parse_chunk, max_event_size=self._options.max_event_size)
        return AsyncChatStream(response, processor, slot, spec.trace)
