"""The README's liveness and honesty promises, tested by misusing the SDK as real code does.

- A call never waits for ever: a slot wait is bounded (pool timeout, `total_timeout`), a
  caller is never blocked by the slots it holds itself (a call made while its own stream
  is open), and a forked child does not inherit the parent's in-flight counts.
- `total_timeout` bounds every attempt, wait and the reading of a reply.
- Every httpx failure is a typed error (a corrupt gzip body, a stream answered with an
  HTML page), slots are released on every path, a closed client says so.
- Messages claim retries only when the SDK retried.

Each test has an outer bound (a thread join or `anyio.fail_after`) so that a regression
fails instead of hanging the suite.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from _helpers import API_KEY, MESSAGES, MODEL, completion_body, error_body, json_response, sse
from conftest import Either, Sleeps
from test_hostile_server import Peer, RawServer, head, running_servers

import wandb_inference as wi
from wandb_inference._policy._concurrency import _MAX_MODELS, AsyncLimiter, SyncLimiter
from wandb_inference.server import Fault, LocalServer

# Async tests run on both transports of AsyncClient (httpx's and aiohttp's): conftest.py.
pytestmark = pytest.mark.usefixtures("async_transport")

MakeClient = Callable[..., Either]
CONCURRENCY_429 = Fault.status(429, kind="concurrency")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=API_KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LocalServer) -> None:
    server.faults.clear()
    server.requests.clear()


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    with running_servers() as start:
        yield start


def in_thread(fn: Callable[[], Any], seconds: float) -> Any:
    """Run `fn` in a daemon thread; fail (not hang) if it does not return in `seconds`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the call did not return within {seconds} s: it hangs"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# ----------------------------------------------------------------- own slots never block


def test_a_call_made_while_its_own_stream_is_open_survives_a_429(server: LocalServer) -> None:
    """'Summarise while streaming': a 429 lowers the limit to 1, which this thread's own
    open stream holds. The next attempt must not wait for that slot (it never frees)."""

    def scenario() -> str:
        with wi.Client(API_KEY, base_url=server.base_url, sleep=lambda _: None) as client:
            stream = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=40, stream=True)
            with stream:
                next(stream)  # the stream stays open: its slot is held
                server.faults.push(CONCURRENCY_429, times=1)
                text = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3).text
                assert stream.until_done().text
                return text

    assert in_thread(scenario, 20)
    assert len(server.requests) == 3  # the stream, the 429, the retry


async def test_an_async_call_inside_its_own_stream_survives_a_429(server: LocalServer) -> None:
    async def no_sleep(_: float) -> None:
        return None

    async with wi.AsyncClient(API_KEY, base_url=server.base_url, sleep=no_sleep) as client:
        stream = await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=40, stream=True)
        async with stream:
            server.faults.push(CONCURRENCY_429, times=2)
            with anyio.fail_after(20):
                reply = await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=3)
            assert reply.text
            assert [c async for c in stream]


async def test_a_stream_opened_in_its_own_task_and_dropped_frees_its_slot(server: LocalServer) -> None:
    """The task that took the slot returns the stream as its result: the gate must not
    keep that task (and through it the stream) alive, or the dropped stream's slot leaks."""
    import asyncio
    import gc

    async with wi.AsyncClient(API_KEY, base_url=server.base_url, max_concurrency=1) as client:
        task = asyncio.ensure_future(client.chat.create(model=MODEL, messages=MESSAGES, stream=True))
        await task
        del task  # the stream, the task's result, is dropped unread
        gc.collect()
        with anyio.fail_after(10):
            reply = await client.chat.create(
                model=MODEL, messages=MESSAGES, max_tokens=2, timeout=httpx.Timeout(10, pool=5)
            )
        assert reply.text


def test_a_slot_wait_ends_at_the_pool_timeout(server: LocalServer) -> None:
    """Another thread holds the only slot: the wait ends in a typed error, not for ever."""
    with wi.Client(API_KEY, base_url=server.base_url, max_concurrency=1) as client:
        holder = in_thread(lambda: client.chat.create(model=MODEL, messages=MESSAGES, stream=True), 20)
        try:
            started = time.monotonic()
            with pytest.raises(wi.APITimeoutError, match="concurrency slot") as info:
                in_thread(
                    lambda: client.chat.create(
                        model=MODEL, messages=MESSAGES, timeout=httpx.Timeout(10, pool=0.3), max_tokens=2
                    ),
                    20,
                )
            assert 0.25 < time.monotonic() - started < 10
            assert "limit 1, 1 in flight" in str(info.value)
            assert len(server.requests) == 1  # nothing sent for the call that waited
        finally:
            holder.close()
        assert client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2).text  # the slot came back


async def test_an_async_slot_wait_ends_at_total_timeout(server: LocalServer) -> None:
    policy = wi.RetryPolicy(total_timeout=0.5)
    async with wi.AsyncClient(API_KEY, base_url=server.base_url, max_concurrency=1, retry_policy=policy) as client:
        holder = await client.chat.create(model=MODEL, messages=MESSAGES, stream=True)
        async with holder:
            errors: list[Exception] = []

            async def other() -> None:
                try:
                    await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2)
                except Exception as exc:
                    errors.append(exc)

            started = time.monotonic()
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(other)  # another task: the holder's slot counts against it
            assert time.monotonic() - started < 5
            assert len(errors) == 1 and isinstance(errors[0], wi.APITimeoutError)
            assert "total_timeout=0.5s passed waiting for a concurrency slot" in str(errors[0])


def test_the_per_model_table_stays_bounded() -> None:
    """Limits, and the slots on the machine's boards with them (`_board.py`): a dropped
    model's slot is given back, not held open."""
    scope = ("https://api.example.test/v1", "team/project")
    for limiter in (SyncLimiter(8.0, True, False, scope), AsyncLimiter(8.0, True, False, scope)):
        boards = []
        for i in range(_MAX_MODELS * 3):
            limiter.limit_for(f"org/model-{i}")
            boards.append(limiter._boards[id(limiter._models[f"org/model-{i}"])])
        assert len(limiter._models) <= _MAX_MODELS
        assert len(limiter._boards) == len(limiter._models)
        closed = [board._view.closed for board in boards]
        assert closed.count(False) == len(limiter._models) and not any(closed[-_MAX_MODELS // 2 :])


# ----------------------------------------------------------------------------- fork


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_inherit_the_parents_in_flight_requests(server: LocalServer) -> None:
    """At fork time another thread has the only slot: the child's first call still runs."""
    server.faults.push(Fault.stall(3), times=1)
    with wi.Client(API_KEY, base_url=server.base_url, max_concurrency=1) as client:
        busy = threading.Thread(
            target=lambda: client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2), daemon=True
        )
        busy.start()
        deadline = time.monotonic() + 10
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)  # the parent's request is in flight (stalled on the server)
        assert server.requests
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                ok = client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=2, timeout=10).text
                code = 0 if ok else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's first call hung")
        assert os.waitstatus_to_exitcode(status) == 0
        busy.join(20)


# --------------------------------------------------------------------- total_timeout


@pytest.mark.parametrize("stream", [False, True])
async def test_total_timeout_bounds_a_stalled_attempt(server: LocalServer, kind: str, stream: bool) -> None:
    server.faults.push(Fault.stall(4), times=1)
    policy = wi.RetryPolicy(total_timeout=1.0)
    started = time.monotonic()
    with anyio.fail_after(10), pytest.raises(wi.APITimeoutError, match=r"total_timeout=1s passed"):
        await _call(kind, server.base_url, stream=stream, retry_policy=policy, max_retries=3)
    assert time.monotonic() - started < 2.5  # 1 s, plus a loaded machine's slack


async def test_total_timeout_bounds_a_run_of_503s(make_client: MakeClient, kind: str) -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return json_response(503, error_body("The engine is currently overloaded"))

    def real_sleep(seconds: float) -> None:
        time.sleep(seconds)

    async def real_asleep(seconds: float) -> None:
        await anyio.sleep(seconds)

    policy = wi.RetryPolicy(max_retries=50, initial_delay=0.2, max_delay=0.2, total_timeout=1.0)
    client = make_client(handler, retry_policy=policy, sleep=real_asleep if kind == "async" else real_sleep)
    started = time.monotonic()
    with pytest.raises(wi.ServiceUnavailableError, match=r"Not retried: total_timeout=1s would be exceeded"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert time.monotonic() - started < 1.5  # within the 1 s total, plus scheduling slack
    assert len(calls) >= 2


async def test_total_timeout_bounds_a_trickled_body(serve: Callable[..., RawServer], kind: str) -> None:
    """Headers at once, then the body a few bytes at a time for 6 s: cut at 1 s."""
    body = b'{"id": "x", "choices": []}' + b" " * 60

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(head("200 OK", "content-type: application/json", f"content-length: {len(body)}"))
        for i in range(0, len(body), 4):
            await peer.send(body[i : i + 4])
            await anyio.sleep(0.3)

    server = serve(handler)
    policy = wi.RetryPolicy(total_timeout=1.0)
    started = time.monotonic()
    with anyio.fail_after(10), pytest.raises(wi.APITimeoutError, match="while reading the response body"):
        await _call(kind, server.base_url, retry_policy=policy, max_retries=3)
    assert time.monotonic() - started < 2.5


async def test_a_stream_body_keeps_its_read_timeout_after_total_timeout(server: LocalServer, kind: str) -> None:
    """`total_timeout` bounds the wait for a stream's response, not its chunks: a stream
    whose chunks arrive after the total (but within the read timeout) is read whole."""
    server.faults.push(Fault.stall_stream(after=2, seconds=1.5), times=1)
    policy = wi.RetryPolicy(total_timeout=1.0)
    with anyio.fail_after(15):
        if kind == "async":
            async with wi.AsyncClient(API_KEY, base_url=server.base_url, retry_policy=policy) as aclient:
                stream = await aclient.chat.create(model=MODEL, messages=MESSAGES, stream=True, max_tokens=6)
                async with stream:
                    completion = await stream.until_done()
        else:
            with wi.Client(API_KEY, base_url=server.base_url, retry_policy=policy) as client:

                def read() -> Any:
                    with client.chat.create(model=MODEL, messages=MESSAGES, stream=True, max_tokens=6) as s:
                        return s.until_done()

                completion = await anyio.to_thread.run_sync(read)
    assert completion.text


# ----------------------------------------------------------------- typed errors


def _corrupt_gzip(payload: bytes) -> bytes:
    data = gzip.compress(payload)
    return data[:12] + b"\x00\xff" * 20 + data[12:]


def _gzip_server(serve: Callable[..., RawServer], replies: list[tuple[str, bytes, str]]) -> RawServer:
    """A real-socket peer answering each request with the next (status line, body, type)."""
    queue = list(replies)

    async def handler(peer: Peer) -> None:
        while queue:
            await peer.read_request()
            status, body, ctype = queue.pop(0)
            headers = [f"content-type: {ctype}", f"content-length: {len(body)}"]
            if not body.startswith(b"{"):
                headers.append("content-encoding: gzip")
            await peer.send(head(status, *headers) + body)

    return serve(handler)


async def _call(kind: str, base_url: str, stream: bool = False, **options: Any) -> Any:
    options.setdefault("max_retries", 0)
    if kind == "async":
        async with wi.AsyncClient(API_KEY, base_url=base_url, **options) as aclient:
            return await aclient.chat.create(model=MODEL, messages=MESSAGES, stream=stream)
    with wi.Client(API_KEY, base_url=base_url, **options) as client:
        return await anyio.to_thread.run_sync(lambda: client.chat.create(model=MODEL, messages=MESSAGES, stream=stream))


@pytest.mark.parametrize("stream", [False, True])
async def test_a_corrupt_gzip_reply_is_a_typed_error(serve: Callable[..., RawServer], kind: str, stream: bool) -> None:
    server = _gzip_server(serve, [("200 OK", _corrupt_gzip(b'{"id": "x"}' * 50), "application/json")])
    with anyio.fail_after(10), pytest.raises(wi.APIResponseValidationError, match="could not be decoded"):
        await _call(kind, server.base_url, stream=stream)


@pytest.mark.httpx_only  # its own httpx.MockTransport pool
async def test_a_corrupt_gzip_error_body_is_classified_and_frees_the_slot(kind: str) -> None:
    """A 500 whose gzip body is corrupt: still an InternalServerError, and its slot returns."""
    ok = json_response(200, completion_body())
    bad = _corrupt_gzip(b'{"error": {"message": "boom"}}' * 20)
    replies = iter([bad, None])

    def handler(request: httpx.Request) -> httpx.Response:
        body = next(replies)
        if body is None:
            return ok
        # A stream that is not pre-read, as from a socket: decoding fails as the SDK reads.
        return httpx.Response(500, stream=httpx.ByteStream(body), headers={"content-encoding": "gzip"})

    options: dict[str, Any] = {"max_retries": 0, "max_concurrency": 1, "api_key": API_KEY}
    pool = httpx.Timeout(5, pool=1)
    with anyio.fail_after(10):
        if kind == "async":
            async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
                aclient = wi.AsyncClient(http_client=http, **options)
                with pytest.raises(wi.InternalServerError):
                    await aclient.chat.create(model=MODEL, messages=MESSAGES)
                assert (await aclient.chat.create(model=MODEL, messages=MESSAGES, timeout=pool)).text
        else:
            with httpx.Client(transport=httpx.MockTransport(handler)) as shttp:
                client = wi.Client(http_client=shttp, **options)
                with pytest.raises(wi.InternalServerError):
                    client.chat.create(model=MODEL, messages=MESSAGES)
                assert client.chat.create(model=MODEL, messages=MESSAGES, timeout=pool).text


@pytest.mark.parametrize(
    ("ctype", "named"), [("text/html; charset=utf-8", "'text/html; charset=utf-8'"), (None, "no content type")]
)
async def test_a_stream_answered_with_a_page_names_its_content_type(
    make_client: MakeClient, ctype: str | None, named: str
) -> None:
    page = b"<html><body>Please log in to the proxy</body></html>"

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {} if ctype is None else {"content-type": ctype}
        return httpx.Response(200, content=page, headers=headers)

    client = make_client(handler)
    with pytest.raises(wi.APIResponseValidationError) as info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    assert not isinstance(info.value, wi.StreamError)
    assert named in str(info.value) and "text/event-stream" in str(info.value) and "log in" in str(info.value)


async def test_an_event_stream_content_type_is_accepted_with_parameters(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = sse({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": []})
        return httpx.Response(200, content=body, headers={"content-type": "Text/Event-Stream; charset=utf-8"})

    client = make_client(handler)
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    assert len(await client.collect(stream)) == 1


async def test_a_client_derived_from_a_closed_client_raises_a_typed_error(make_client: MakeClient) -> None:
    client = make_client(lambda request: json_response(200, completion_body()))
    derived = client.client.with_options(max_retries=0)
    target: Any = client.client
    if isinstance(target, wi.AsyncClient):
        await target._http.aclose()  # the http_client given to it, closed by its owner
    else:
        target._pool.get().close()
    for target in (client.client, derived):
        with pytest.raises(wi.APIConnectionError, match="is closed"):
            await Either(client.kind, target).call("chat.create", model=MODEL, messages=MESSAGES)


# ------------------------------------------------------------- honest messages


async def test_no_retry_is_claimed_when_none_was_made(make_client: MakeClient) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            raise httpx.ConnectError("refused", request=request)
        return json_response(503, error_body("overloaded"))

    client = make_client(handler, max_retries=0)
    with pytest.raises(wi.ServiceUnavailableError) as status_info:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    with pytest.raises(wi.APIConnectionError) as conn_info:
        await client.call("models.list")
    for error in (status_info.value, conn_info.value):
        assert "retried" not in str(error).lower()


async def test_retries_are_counted_in_the_message(make_client: MakeClient, sleeps: Sleeps) -> None:
    client = make_client(lambda request: json_response(503, error_body("overloaded")), max_retries=2)
    with pytest.raises(wi.ServiceUnavailableError, match="retried 2 times"):
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
    assert len(sleeps.delays) == 2


async def test_a_post_that_may_have_been_processed_is_not_resent(make_client: MakeClient, sleeps: Sleeps) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        raise httpx.ReadError("connection reset by peer", request=request)

    client = make_client(handler, max_retries=3)
    for path in ("chat.create", "embeddings.create"):
        kwargs: dict[str, Any] = (
            {"model": MODEL, "messages": MESSAGES} if path == "chat.create" else {"model": "BAAI/bge-m3", "input": "a"}
        )
        with pytest.raises(wi.APIConnectionError) as info:
            await client.call(path, **kwargs)
        assert info.value.may_have_been_processed
        assert "may have received and processed it" in str(info.value)
    assert sent == ["/v1/chat/completions", "/v1/embeddings"] and sleeps.delays == []
    # GET /models is idempotent: the same failure is retried.
    with pytest.raises(wi.APIConnectionError):
        await client.call("models.list")
    assert sent.count("/v1/models") == 4 and len(sleeps.delays) == 3
