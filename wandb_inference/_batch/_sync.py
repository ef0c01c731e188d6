"""`Client.batch`: batch jobs on the sync client, with a pool of threads.

Each request in flight is a plain `client.chat.create(...)` on a worker thread (the
client is thread-safe and shares its connection pool and concurrency gate between
them); the calling thread runs the dispatch loop, writes or yields the results. No
event loop is involved (works in Jupyter). Ctrl-C (KeyboardInterrupt) stops sending,
lets the requests in flight finish and be written, then re-raises; a second one
abandons them.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self, Unpack, final

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
    from wandb_inference._request import ChatParams, EmbeddingParams, MessageParam
    from wandb_inference._streaming._streams import ChatStream
    from wandb_inference._types._completion import ChatCompletion
    from wandb_inference._types._embeddings import EmbeddingResponse

    from ._job import StrPath
    from ._summary import BatchSummary

__all__ = ["Batch", "BatchInput", "BatchResults", "ClientLike"]

TICK: Final = 0.25
DEFAULT_CONCURRENCY: Final = 32

BatchInput = Iterable[BatchRequest | dict[str, Any]]
"""Requests: `BatchRequest`s or dicts shaped like OpenAI batch lines."""


class _ChatAPI(Protocol):
    def create(
        self, *, model: str, messages: Sequence[MessageParam], stream: bool, **params: Unpack[ChatParams]
    ) -> ChatCompletion | ChatStream: ...


class _EmbeddingsAPI(Protocol):
    def create(
        self, *, model: str, input: str | Sequence[str], **params: Unpack[EmbeddingParams]
    ) -> EmbeddingResponse: ...


class ClientLike(Protocol):
    """What a batch job uses of `Client`: its resources and its gate's room."""

    @property
    def chat(self) -> _ChatAPI: ...
    @property
    def embeddings(self) -> _EmbeddingsAPI: ...
    def _slot_room(self, model: str | None) -> float: ...


class _Starts:
    """Requests handed to a worker that has not started the call yet, per model: the
    gate does not count them until they take their slot, so the room they will take is
    subtracted by hand (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str | None, int] = {}

    def submitted(self, model: str | None) -> None:
        with self._lock:
            self._waiting[model] = self._waiting.get(model, 0) + 1

    def started(self, model: str | None) -> None:
        with self._lock:
            left = self._waiting.get(model, 1) - 1
            if left:
                self._waiting[model] = left
            else:
                self._waiting.pop(model, None)

    def pending(self, model: str | None) -> int:
        return self._waiting.get(model, 0)


def call_one(client: ClientLike, request: BatchRequest, starts: _Starts | None = None) -> BatchResult:
    """Send one request through the client; its typed result or typed error."""
    if starts is not None:
        starts.started(request.model)
    start = time.monotonic()
    reply: ChatCompletion | EmbeddingResponse
    try:
        kwargs = call_arguments(request)
        if request.endpoint == "chat":
            reply = client.chat.create(stream=False, **kwargs)  # type: ignore[assignment]
        else:
            reply = client.embeddings.create(**kwargs)
    except WandbInferenceError as exc:
        return BatchResult(custom_id=request.custom_id, error=exc, line=request.line, latency=time.monotonic() - start)
    return BatchResult(custom_id=request.custom_id, response=reply, line=request.line, latency=time.monotonic() - start)


_END: Final = object()


class _Engine:
    """One job's run on a thread pool; `results()` drives it from the calling thread."""

    def __init__(
        self,
        client: ClientLike,
        dispatcher: Dispatcher,
        stats: BatchStats,
        progress: Progress,
        max_workers: int,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.dispatcher = dispatcher
        self.stats = stats
        self._progress = progress
        self._on_tick = on_tick
        self._max_workers = max_workers
        self._starts = _Starts()
        self._woken = threading.Event()
        self.cancelled = False
        self.interrupted = False

    def room(self, model: str | None) -> float:
        return self.client._slot_room(model) - self._starts.pending(model)

    def wake(self) -> None:
        self._woken.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._woken.set()

    def results(self, pull: Callable[[], object]) -> Iterator[BatchResult]:
        """Run the job; yield each result to write or hand over (a request counts as in
        flight until the consumer asks for the next one)."""
        dispatcher, stats = self.dispatcher, self.stats
        context = contextvars.copy_context()
        context.run(RETRY_OBSERVER.set, stats)
        pool = concurrent.futures.ThreadPoolExecutor(self._max_workers, thread_name_prefix="wandb-inference-batch")
        futures: dict[concurrent.futures.Future[BatchResult], BatchRequest] = {}
        last_tick = time.monotonic()
        try:
            while not self.cancelled:
                while dispatcher.wants_more():
                    item = pull()
                    if item is _END:
                        dispatcher.source_done()
                        break
                    dispatcher.add(item)  # type: ignore[arg-type]
                while (item := dispatcher.take(time.monotonic())) is not None:
                    if isinstance(item, BatchResult):
                        stats.invalid += 1
                        stats.invalid_in_total += 1
                        yield item
                        continue
                    self._starts.submitted(item.model)
                    futures[pool.submit(context.copy().run, call_one, self.client, item, self._starts)] = item
                if dispatcher.done():
                    break
                due = dispatcher.next_wakeup(time.monotonic())
                timeout = TICK if due is None else min(due, TICK)
                try:
                    if futures:
                        done, _ = concurrent.futures.wait(
                            futures, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED
                        )
                    else:
                        self._woken.wait(timeout)
                        self._woken.clear()
                        done = set()
                except KeyboardInterrupt:
                    if self.interrupted:
                        self.cancelled = True
                        raise
                    self.interrupted = True  # stop sending; what is in flight finishes
                    dispatcher.stop("interrupted")
                    continue
                for future in done:
                    request = futures.pop(future)
                    result = future.result()
                    outcome = dispatcher.finished(request, result.error, time.monotonic())
                    try:
                        if outcome == "write":
                            stats.record(result)
                            yield result
                    finally:
                        dispatcher.release(request)
                now = time.monotonic()
                if now - last_tick >= TICK:
                    last_tick = now
                    self._progress.tick(stats)
                    if self._on_tick is not None:
                        self._on_tick()
        finally:
            if futures:
                self.cancelled = True
            # Requests in flight cannot be interrupted in a thread: wait for them unless
            # cancelled (their results are dropped, a re-run sends them).
            pool.shutdown(wait=not self.cancelled, cancel_futures=True)
            self._progress.tick(stats)
            self._progress.close(stats)


def _puller(requests: BatchInput, model: str | None) -> Callable[[], object]:
    seen: set[str] = set()
    iterator = iter(requests)
    position = 0

    def pull() -> object:
        nonlocal position
        item = next(iterator, _END)
        if item is _END:
            return _END
        position += 1
        return to_request(item, position, model, seen)

    return pull


@final
class BatchResults:
    """The results of `client.batch.stream(...)`, as they finish: a context manager and
    iterator of `BatchResult`. Leaving the block early stops sending (requests in flight
    finish in their threads; their results are dropped). A job error (quota, key,
    project, unreachable service) ends the iteration by raising it, after the requests in
    flight finished and were yielded; `summary` says what was not sent."""

    def __init__(
        self,
        client: ClientLike,
        requests: BatchInput,
        *,
        model: str | None,
        max_concurrency: int,
        progress: ProgressMode | bool,
    ) -> None:
        total = len(requests) if isinstance(requests, Sized) else None
        self._stats = BatchStats(total=total)
        self._engine: _Engine | None = None
        self._client = client
        self._dispatcher = Dispatcher(max_in_flight=max_concurrency, room=self._room, stats=self._stats)
        self._pull = _puller(requests, model)
        self._progress_mode = progress
        self._max = max_concurrency
        self._iterator: Iterator[BatchResult] | None = None
        self._raised = False

    def _room(self, model: str | None) -> float:
        return self._client._slot_room(model) if self._engine is None else self._engine.room(model)

    def __enter__(self) -> Self:
        if self._iterator is not None:
            raise RuntimeError("a batch stream can be entered only once")
        progress = make_progress(self._progress_mode, sys.stderr, self._stats.total)
        self._engine = _Engine(self._client, self._dispatcher, self._stats, progress, self._max)
        self._iterator = self._engine.results(self._pull)
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> BatchResult:
        if self._iterator is None:
            raise RuntimeError("use `with client.batch.stream(...) as results:` before iterating")
        try:
            return next(self._iterator)
        except StopIteration:
            error = self._dispatcher.error
            if error is not None and not self._raised:
                self._raised = True
                raise error from None
            if self._engine is not None and self._engine.interrupted and not self._raised:
                self._raised = True
                raise KeyboardInterrupt from None
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._engine is not None and not self._dispatcher.done():
            self._dispatcher.stop("cancelled")
            self._engine.cancel()
        if self._iterator is not None:
            close = getattr(self._iterator, "close", None)
            if close is not None:
                close()

    @property
    def summary(self) -> BatchSummary:
        """The counts so far (final once the iteration ended)."""
        cancelled = self._engine is not None and self._engine.cancelled
        return summarise(self._stats, self._dispatcher, cancelled=cancelled)


@final
class Batch:
    """`client.batch`: OpenAI Batch JSONL jobs and in-memory batches on `Client`.

    ```python
    summary = client.batch.run("requests.jsonl", "results.jsonl")  # resumable

    with client.batch.stream(requests, max_concurrency=16) as results:
        for result in results:  # as they finish
            print(result.custom_id, result.response.text if result.ok else result.error)
    ```
    """

    __slots__ = ("_client",)

    def __init__(self, client: ClientLike) -> None:
        self._client = client

    def run(
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

        The same as `AsyncClient.batch.run` (see there), on a pool of `max_concurrency`
        threads. Ctrl-C stops sending, lets the requests in flight finish and be
        written, then raises `KeyboardInterrupt`; a second Ctrl-C does not wait for them.

        Raises:
            BatchFileError: invalid input lines, unreadable, corrupt or locked files
                (nothing was sent).
            OSError: a result could not be written (disk full...): the job stops.
        """
        job = open_job(input, output, errors, model=model, skip_invalid=skip_invalid, retry_errors=retry_errors)
        files, stats = job.files, job.stats
        try:
            lines = iter_requests(job.source, model=model, done=files.done, skip=job.scan.bad_lines)

            def pull() -> object:
                for item in lines:
                    if isinstance(item, BatchRequest):
                        return item
                    stats.invalid += 1  # changed since the first pass: not sent
                    stats.invalid_in_total += 1
                return _END

            shown = make_progress(progress, sys.stderr, stats.total) if progress else NoProgress()
            engine: _Engine | None = None

            def room(model: str | None) -> float:
                assert engine is not None
                return engine.room(model)

            dispatcher = Dispatcher(max_in_flight=max_concurrency, room=room, stats=stats)
            engine = _Engine(self._client, dispatcher, stats, shown, max_concurrency, files.sync)
            if control is not None:
                control.attach(engine)
            for result in engine.results(pull):
                files.write(result.to_openai(), ok=result.ok)
            if engine.interrupted:
                raise KeyboardInterrupt
            return summarise(stats, dispatcher, cancelled=engine.cancelled)
        finally:
            files.close()

    def stream(
        self,
        requests: BatchInput,
        *,
        model: str | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        progress: ProgressMode | bool = False,
    ) -> BatchResults:
        """Run in-memory requests; results as they finish (`with ... as results:`).

        The same as `AsyncClient.batch.stream` (see there), on a pool of threads.

        Returns:
            A context manager and iterator of `BatchResult`.
        """
        return BatchResults(self._client, requests, model=model, max_concurrency=max_concurrency, progress=progress)

    def check(
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
        return check_files(input, output, errors, model=model, retry_errors=retry_errors)
