"""`AsyncClient.batch`: batch jobs on the async client (anyio: asyncio or trio).

One task per request in flight, each a plain `client.chat.create(...)` /
`client.embeddings.create(...)` call, so every request gets the client's retries,
`Retry-After`, adaptive concurrency gate and typed errors. The dispatch loop
(`_dispatch.Dispatcher`) decides what starts; results are written (files) or handed
over (`stream`) as they finish, in completion order.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence, Sized
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, Unpack, final

import anyio
import anyio.lowlevel

from wandb_inference._exceptions import WandbInferenceError
from wandb_inference._policy._observe import RETRY_OBSERVER

from ._dispatch import Dispatcher
from ._input import iter_requests
from ._job import BatchCheck, BatchControl, check_files, open_job, summarise, to_request
from ._progress import NoProgress, Progress, ProgressMode, make_progress
from ._request import BatchRequest, call_arguments
from ._result import BatchResult
from ._summary import BatchStats

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from anyio.streams.memory import MemoryObjectSendStream

    from wandb_inference._request import ChatParams, EmbeddingParams, MessageParam
    from wandb_inference._streaming._streams import AsyncChatStream
    from wandb_inference._types._completion import ChatCompletion
    from wandb_inference._types._embeddings import EmbeddingResponse

    from ._job import StrPath
    from ._summary import BatchSummary

__all__ = ["AsyncBatch", "AsyncBatchInput", "AsyncBatchResults", "AsyncClientLike"]

TICK: Final = 0.25  # seconds between progress updates and fsync checks
DEFAULT_CONCURRENCY: Final = 32

AsyncBatchInput = Iterable[BatchRequest | dict[str, Any]] | AsyncIterable[BatchRequest | dict[str, Any]]
"""Requests: `BatchRequest`s or dicts shaped like OpenAI batch lines, sync or async."""


class _AsyncChatAPI(Protocol):
    async def create(
        self, *, model: str, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | AsyncChatStream: ...


class _AsyncEmbeddingsAPI(Protocol):
    async def create(
        self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]
    ) -> EmbeddingResponse: ...


class AsyncClientLike(Protocol):
    """What a batch job uses of `AsyncClient`: its resources and its gate's room."""

    @property
    def chat(self) -> _AsyncChatAPI: ...
    @property
    def embeddings(self) -> _AsyncEmbeddingsAPI: ...
    def _slot_room(self, model: str | None) -> float: ...


async def call_one(client: AsyncClientLike, request: BatchRequest) -> BatchResult:
    """Send one request through the client; its typed result or typed error."""
    start = time.monotonic()
    reply: ChatCompletion | EmbeddingResponse
    try:
        kwargs = call_arguments(request)
        if request.endpoint == "chat":
            reply = await client.chat.create(stream=False, **kwargs)  # type: ignore[assignment]
        else:
            reply = await client.embeddings.create(**kwargs)
    except WandbInferenceError as exc:
        return BatchResult(custom_id=request.custom_id, error=exc, line=request.line, latency=time.monotonic() - start)
    return BatchResult(custom_id=request.custom_id, response=reply, line=request.line, latency=time.monotonic() - start)


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error inside a task group's exception group (anyio wraps even one)."""
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]  # type: ignore[assignment]
    return group


_END: Final = object()


class _Engine:
    """One job's run: the dispatch loop, a producer reading the source, a ticker."""

    def __init__(
        self,
        client: AsyncClientLike,
        dispatcher: Dispatcher,
        stats: BatchStats,
        emit: Callable[[BatchResult], Awaitable[None]],
        progress: Progress,
        on_tick: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.dispatcher = dispatcher
        self.stats = stats
        self._emit = emit
        self._progress = progress
        self._on_tick = on_tick
        self._wake = anyio.Event()
        self._space = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self.cancelled = False

    def wake(self) -> None:
        self._wake.set()
        self._space.set()

    def cancel(self) -> None:
        self.cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    async def run(self, pull: Callable[[], Awaitable[object]]) -> None:
        token = RETRY_OBSERVER.set(self.stats)
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if self.cancelled:
                    tg.cancel_scope.cancel()
                tg.start_soon(self._ticker)
                tg.start_soon(self._produce, pull)
                await self._loop(tg)
                tg.cancel_scope.cancel()  # the ticker and the producer; nothing is in flight
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            RETRY_OBSERVER.reset(token)
            self._progress.tick(self.stats)
            self._progress.close(self.stats)

    async def _produce(self, pull: Callable[[], Awaitable[object]]) -> None:
        dispatcher = self.dispatcher
        while dispatcher.stopped is None:
            if not dispatcher.wants_more():
                self._space = anyio.Event()
                if dispatcher.wants_more():
                    continue
                await self._space.wait()
                continue
            item = await pull()
            if item is _END:
                dispatcher.source_done()
                self._wake.set()
                return
            dispatcher.add(item)  # type: ignore[arg-type]
            self._wake.set()

    async def _loop(self, tg: TaskGroup) -> None:
        dispatcher = self.dispatcher
        while True:
            self._wake = anyio.Event()
            while (item := dispatcher.take(time.monotonic())) is not None:
                if isinstance(item, BatchResult):
                    self.stats.invalid += 1
                    self.stats.invalid_in_total += 1
                    await self._emit(item)
                    continue
                tg.start_soon(self._one, item)
                # Let the new task run to its first real wait: it holds its concurrency
                # slot by then, so the gate's room is current for the next `take`.
                await anyio.lowlevel.checkpoint()
            self._space.set()
            if dispatcher.done():
                return
            due = dispatcher.next_wakeup(time.monotonic())
            with anyio.move_on_after(TICK if due is None else min(due, TICK)):
                await self._wake.wait()

    async def _one(self, request: BatchRequest) -> None:
        result = await call_one(self.client, request)
        dispatcher = self.dispatcher
        outcome = dispatcher.finished(request, result.error, time.monotonic())
        try:
            if outcome == "write":
                self.stats.record(result)
                await self._emit(result)
        finally:
            dispatcher.release(request)
            self._wake.set()

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(TICK)
            self._progress.tick(self.stats)
            if self._on_tick is not None:
                await self._on_tick()


def _puller(
    requests: AsyncBatchInput, model: str | None
) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    """`pull()` -> the next request (or an invalid item's result), `_END` at the end; and `close()`."""
    seen: set[str] = set()
    position = 0
    if isinstance(requests, AsyncIterable):
        source: AsyncIterator[Any] = aiter(requests)

        async def pull() -> object:
            nonlocal position
            try:
                item = await anext(source)
            except StopAsyncIteration:
                return _END
            position += 1
            return to_request(item, position, model, seen)

        async def close() -> None:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                await aclose()

        return pull, close
    iterator: Iterator[Any] = iter(requests)

    async def pull_sync() -> object:
        nonlocal position
        item = next(iterator, _END)
        if item is _END:
            return _END
        position += 1
        return to_request(item, position, model, seen)

    async def nothing() -> None:
        return None

    return pull_sync, nothing


@final
class AsyncBatchResults:
    """The results of `client.batch.stream(...)`, as they finish: an async context manager
    and async iterator of `BatchResult`. Leaving the block early cancels what is in
    flight. A job error (quota, key, project, unreachable service) ends the iteration by
    raising it, after the requests in flight finished and were yielded; `summary` then
    says what was not sent."""

    def __init__(
        self,
        client: AsyncClientLike,
        requests: AsyncBatchInput,
        *,
        model: str | None,
        max_concurrency: int,
        progress: ProgressMode | bool,
    ) -> None:
        total = len(requests) if isinstance(requests, Sized) else None
        self._stats = BatchStats(total=total)
        self._dispatcher = Dispatcher(max_in_flight=max_concurrency, room=client._slot_room, stats=self._stats)
        self._pull, self._close_source = _puller(requests, model)
        self._client = client
        self._progress_mode = progress
        self._buffer = max_concurrency
        self._tg: TaskGroup | None = None
        self._engine: _Engine | None = None
        self._raised = False

    async def __aenter__(self) -> Self:
        if self._tg is not None:
            raise RuntimeError("a batch stream can be entered only once")
        send: MemoryObjectSendStream[BatchResult]
        send, self._receive = anyio.create_memory_object_stream[BatchResult](self._buffer)
        progress = make_progress(self._progress_mode, sys.stderr, self._stats.total)
        self._engine = _Engine(self._client, self._dispatcher, self._stats, send.send, progress)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run, send)
        return self

    async def _run(self, send: MemoryObjectSendStream[BatchResult]) -> None:
        assert self._engine is not None
        async with send:
            try:
                await self._engine.run(self._pull)
            finally:
                with anyio.CancelScope(shield=True):
                    await self._close_source()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchResult:
        if self._tg is None:
            raise RuntimeError("use `async with client.batch.stream(...) as results:` before iterating")
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            error = self._dispatcher.error
            if error is not None and not self._raised:
                self._raised = True
                raise error from None
            raise StopAsyncIteration from None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        assert self._tg is not None
        if self._engine is not None and not self._dispatcher.done():
            self._engine.cancel()
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            raise _single(group) from None
        finally:
            self._receive.close()

    @property
    def summary(self) -> BatchSummary:
        """The counts so far (final once the iteration ended)."""
        cancelled = self._engine is not None and self._engine.cancelled
        return summarise(self._stats, self._dispatcher, cancelled=cancelled)


@final
class AsyncBatch:
    """`client.batch`: OpenAI Batch JSONL jobs and in-memory batches on `AsyncClient`.

    ```python
    summary = await client.batch.run("requests.jsonl", "results.jsonl")  # resumable

    async with client.batch.stream(requests, max_concurrency=16) as results:
        async for result in results:  # as they finish
            print(result.custom_id, result.response.text if result.ok else result.error)
    ```
    """

    __slots__ = ("_client",)

    def __init__(self, client: AsyncClientLike) -> None:
        self._client = client

    async def run(
        self,
        input: StrPath,
        output: StrPath,
        *,
        errors: StrPath | None = None,
        model: str | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        skip_invalid: bool = False,
        retry_errors: bool = False,
        progress: ProgressMode | bool = False,
        control: BatchControl | None = None,
    ) -> BatchSummary:
        """Run an OpenAI Batch JSONL file, appending results as they finish (resumable).

        Lines whose `custom_id` already has a result in `output` or `errors` are not
        sent: running the same job again after a crash, a Ctrl-C or a `kill -9` sends
        only what is missing, and leaves each `custom_id` exactly once across the two
        files. Invalid or duplicate lines stop the job before anything is sent, unless
        `skip_invalid`.

        Args:
            input: the OpenAI Batch input file (read twice, streamed).
            output: successes, one OpenAI Batch output line each (appended).
            errors: failures (default: `<output>.errors.jsonl` beside it).
            model: use this model for every line.
            max_concurrency: requests in flight at most (fewer while the client's
                concurrency gate has less room).
            skip_invalid: leave invalid and duplicate lines out instead of stopping.
            retry_errors: send the lines of the errors file again (it is moved aside to
                `<errors>.retried`).
            progress: a progress display on stderr (`True`/`"auto"`, `"rich"`, `"plain"`).
            control: stop or cancel the job from elsewhere (`BatchControl`).

        Returns:
            The summary: counts, tokens, latency; `stopped` and `error` when a job error
            (quota, bad key or project, unreachable service) stopped it early.

        Raises:
            BatchFileError: invalid input lines, unreadable, corrupt or locked files
                (nothing was sent).
            OSError: a result could not be written (disk full...): the job stops.
        """
        job = await anyio.to_thread.run_sync(
            lambda: open_job(input, output, errors, model=model, skip_invalid=skip_invalid, retry_errors=retry_errors)
        )
        files, stats = job.files, job.stats
        try:
            dispatcher = Dispatcher(max_in_flight=max_concurrency, room=self._client._slot_room, stats=stats)
            lines = iter_requests(job.source, model=model, done=files.done, skip=job.scan.bad_lines)

            async def pull() -> object:
                for item in lines:
                    if isinstance(item, BatchRequest):
                        return item
                    stats.invalid += 1  # changed since the first pass: not sent
                    stats.invalid_in_total += 1
                return _END

            async def emit(result: BatchResult) -> None:
                files.write(result.to_openai(), ok=result.ok)

            async def sync_files() -> None:
                if files.due():
                    await anyio.to_thread.run_sync(files.sync)

            shown = make_progress(progress, sys.stderr, stats.total) if progress else NoProgress()
            engine = _Engine(self._client, dispatcher, stats, emit, shown, sync_files)
            if control is not None:
                control.attach(engine)
            await engine.run(pull)
            return summarise(stats, dispatcher, cancelled=engine.cancelled)
        finally:
            files.close()

    def stream(
        self,
        requests: AsyncBatchInput,
        *,
        model: str | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        progress: ProgressMode | bool = False,
    ) -> AsyncBatchResults:
        """Run in-memory requests; results as they finish (`async with ... as results`).

        Args:
            requests: `BatchRequest`s or dicts shaped like OpenAI batch lines, from a list,
                a generator or an async iterable (read as it goes, not all at once).
            model: use this model for every request.
            max_concurrency: requests in flight at most.
            progress: a progress display on stderr.

        Returns:
            An async context manager and iterator of `BatchResult` (each with the
            `custom_id`, the typed result or the typed error). Invalid items and repeated
            `custom_id`s come out as failed results without being sent.
        """
        return AsyncBatchResults(
            self._client, requests, model=model, max_concurrency=max_concurrency, progress=progress
        )

    async def check(
        self,
        input: StrPath,
        output: StrPath,
        *,
        errors: StrPath | None = None,
        model: str | None = None,
        retry_errors: bool = False,
    ) -> BatchCheck:
        """What `run` would do, sending and changing nothing (the CLI's `--dry-run`).

        Raises:
            BatchFileError: a file cannot be read, or a results file is corrupt in the middle.
        """
        return await anyio.to_thread.run_sync(
            lambda: check_files(input, output, errors, model=model, retry_errors=retry_errors)
        )
