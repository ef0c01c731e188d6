"""`Client`: the sync SDK for scripts and notebooks (`client.chat.create(...)`).

The twin of `Client` over `httpx.Client`: only the I/O loop in `_send` and the
stream's read loop are written again; every decision lives in the shared pure modules.
No event loop is involved (never `asyncio.run`), so it works inside Jupyter's running
loop, from several threads sharing one client, and after `fork` (the child gets a new
connection pool).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Unpack, final, overload

import httpx

from ._concurrency import SyncLimiter, reset_after_fork
from ._config import DEFAULT_LIMITS
from ._constructors import SyncConstructors
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
    from ._streaming import ChatStream
else:
    # Needed from the first call on, not to construct a client: imported then.
    _base = lazy_module("wandb_inference._base")
    _errors_map = lazy_module("wandb_inference._errors_map")
    _exceptions = lazy_module("wandb_inference._exceptions")

__all__ = ["Client"]


class _Pool:
    """The `httpx.Client` behind a client and its derived clients, renewed after `fork`.

    A forked child must not reuse the parent's sockets (both would read the same
    connection), so the first call in a child builds a new pool when the SDK created the
    original one; the parent's pool is left alone, not closed, in the child.
    """

    def __init__(self, http: httpx.Client, owned: bool) -> None:
        self._http = http
        self.owned = owned
        self._pid = os.getpid()
        self._lock = threading.Lock()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # Another thread may have held the lock at fork time: the child's copy stays held.
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid() and self.owned:
                    self._http = httpx.Client(limits=DEFAULT_LIMITS, follow_redirects=False)
                self._pid = os.getpid()
        return self._http

    def close(self) -> None:
        if self.owned:
            self.get().close()


def _read_limited(response: httpx.Response, limit: int, what: str, state: RetryState | None = None) -> bytes:
    """Read a body up to `limit` bytes (and, given `state`, within its `total_timeout`)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise _base.too_large(limit, what, response.request)
        chunks.append(chunk)
        if state is not None and state.deadline is not None and state.expired():
            raise state.deadline_error(f"while reading the {what}", response.request)
    return b"".join(chunks)


def _read_error_body(response: httpx.Response) -> bytes:
    """An error reply's body (size-capped), b"" when it cannot be read: the status alone
    still classifies the error. The response is closed."""
    try:
        return _read_limited(response, _base.MAX_ERROR_BODY, "error body")
    except (httpx.HTTPError, httpx.StreamError, _exceptions.APIError):
        return b""
    finally:
        response.close()


@final
class Client(ClientOptionsMixin, SyncConstructors):
    """The sync W&B Inference client (scripts, notebooks, threads).

    ```python
    with wandb_inference.Client(project="team/project") as client:
        reply = client.chat.create(
            model="meta-llama/Llama-3.3-70B-Instruct",
            messages=[{"role": "user", "content": "Hello"}],
        )
        print(reply.text)
    ```

    Args:
        The same as `AsyncClient`'s (key, project, base URL, timeouts, retries, headers,
        capability checks, concurrency limits, `max_event_size`), except:
        http_client: an `httpx.Client` (not `AsyncClient`) to use; the SDK does not close
            a client it was given.
        sleep: a plain function used to wait between retries (tests pass a fake one).

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
        http_client: httpx.Client | None = None,
        check_capabilities: bool = True,
        max_concurrency: int | None = None,
        adaptive_concurrency: bool = True,
        max_event_size: int | None = None,
        sleep: Callable[[float], None] | None = None,
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
        if given is not None and not isinstance(given, httpx.Client):
            raise _exceptions.ConfigurationError(
                "http_client must be an httpx.Client (use AsyncClient for httpx.AsyncClient)"
            )
        pool = _Pool(
            http_client or httpx.Client(limits=DEFAULT_LIMITS, follow_redirects=False),
            owned=http_client is None,
        )
        self._setup(options, pool, True, sleep or time.sleep, SyncLimiter.for_options(options))

    def _setup(
        self,
        options: ClientOptions,
        pool: _Pool,
        owns: bool,
        sleep: Callable[[float], None],
        limiter: SyncLimiter | None,
    ) -> None:
        self._options = options
        self._pool = pool
        self._owns_pool = owns
        self._sleep = sleep
        self._limiter = limiter
        self._closed = False
        self.chat = Chat(self)
        self.models = Models(self)
        self.embeddings = Embeddings(self)

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
    ) -> Client:
        """A client with some options changed that shares this one's connection pool.

        Cheap enough per request; closing it does not close the shared pool. Options
        left as None keep this client's values.

        Raises:
            ConfigurationError: an invalid option.
        """
        options = derive_options(self._options, locals())
        derived = object.__new__(Client)
        derived._setup(options, self._pool, False, self._sleep, self._limiter)
        return derived

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, project={self.project!r})"

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection pool (if this client created it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O core

    def _closed_error(self, spec: RequestSpec) -> _exceptions.APIConnectionError:
        return _exceptions.APIConnectionError(
            "This client (or the client it was derived from with with_options(), or the "
            "http_client it was given) is closed; create a new one (or use it in `with`).",
            request=spec.request,
        )

    def _send(self, spec: RequestSpec) -> tuple[httpx.Response, Slot | None]:
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
        http = self._pool.get()
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
                slot = limiter.acquire(spec.model, wait, first=refused)
                if slot is None:
                    raise _base.slot_timeout(limiter.describe(spec.model), wait, spec, state)
            try:
                response = http.send(request, stream=True)
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
                self._sleep(decision.delay)
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
                content = _read_error_body(response)
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
                self._sleep(decision.delay)

    def _request(self, spec: RequestSpec) -> tuple[object, httpx.Response]:
        """Send (retried, within the concurrency limit), read and decode a JSON reply."""
        response, slot = self._send(spec)
        ok = False
        try:
            content = _read_limited(response, _base.MAX_RESPONSE_BODY, "response body", spec.retry)
            ok = True
        except (httpx.HTTPError, httpx.StreamError) as exc:
            assert spec.retry is not None
            raise _base.attempt_error(exc, spec, spec.retry, self.base_url) from exc
        finally:
            try:
                response.close()
            finally:
                if slot is not None:
                    slot.finish(ok=ok)
        return _base.decode_json(content, response), response

    def _stream(self, spec: RequestSpec) -> ChatStream:
        from ._chunk import parse_chunk
        from ._streaming import ChatStream, StreamProcessor

        response, slot = self._send(spec)
        if not _base.is_event_stream(response):
            try:
                content = _read_limited(response, _base.MAX_ERROR_BODY, "response body")
            except (httpx.HTTPError, httpx.StreamError) as exc:
                assert spec.retry is not None
                raise _base.attempt_error(exc, spec, spec.retry, self.base_url) from exc
            finally:
                try:
                    response.close()
                finally:
                    if slot is not None:
                        slot.finish(ok=False)
            raise _base.stream_reply_not_sse(content, response)
        spec.restore_timeouts()
        processor = StreamProcessor(response.request, parse_chunk, max_event_size=self._options.max_event_size)
        return ChatStream(response, processor, slot)


class _Resource:
    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client


@final
class Chat(_Resource):
    """`client.chat`: chat completions."""

    __slots__ = ()

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: Literal[False] = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: Literal[True],
        **params: Unpack[ChatParams],
    ) -> ChatStream: ...

    @overload
    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: bool,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | ChatStream: ...

    def create(
        self,
        *,
        model: str,
        messages: Sequence[MessageParam],
        stream: bool = False,
        **params: Unpack[ChatParams],
    ) -> ChatCompletion | ChatStream:
        """Create a chat completion, or with `stream=True` an `ChatStream` of chunks.

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
        spec = _base.prepare_chat(client._pool.get(), client._options, model, messages, stream, params)
        if stream:
            return client._stream(spec)
        return _base.finish_chat(*client._request(spec))


@final
class Models(_Resource):
    """`client.models`: the models this deployment serves."""

    __slots__ = ()

    def list(self, **options: Unpack[RequestOptions]) -> ModelList:
        """List the served models (iterable; items have `.id` and catalog `.info`).

        An empty list is returned as is, but is never authoritative (the service once
        briefly listed nothing).

        Raises:
            APIStatusError: a subclass per failure kind.
            APIConnectionError: the service could not be reached.
        """
        client = self._client
        spec = _base.prepare_models(client._pool.get(), client._options, options)
        return _base.finish_models(*client._request(spec))


@final
class Embeddings(_Resource):
    """`client.embeddings`: vectors for texts."""

    __slots__ = ()

    def create(self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]) -> EmbeddingResponse:
        """Embed one text or a list of texts.

        `.data[i].embedding` is always a list of floats: base64 replies (the SDK asks for
        them unless `encoding_format="float"`) are decoded.

        Raises:
            InvalidRequestError: invalid arguments (nothing was sent).
            APIStatusError: a subclass per failure kind (404: no embeddings served).
            APIConnectionError: the service could not be reached.
        """
        client = self._client
        spec = _base.prepare_embeddings(client._pool.get(), client._options, model, input, params)
        return _base.finish_embeddings(*client._request(spec))
