"""Fault soak: thousands of calls at high concurrency with random faults (fixed seed).

Every call must end within its deadline, either with the right result or with the right
typed error; retries stay within bounds; partial stream text is on every stream error;
afterwards no connection, task or file descriptor is left behind, and no request the
server may have processed (a reset after it was received) was sent twice.

Margins are for a loaded 2-core machine: the read timeout (6 s) is far above a normal
reply's time, and the stalls (12 s) far above the read timeout.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

import wandb_inference as wi
from wandb_inference.server import LocalServer

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "soak"}]
CALLS = 2000
CONCURRENCY = 48
MAX_RETRIES = 2
READ_TIMEOUT = 6.0
STALL = 12
DEADLINE = 40.0

# (weight, header template or None, streamed?, expected outcome)
# Outcomes: "ok", or the exception class the call must raise.
SCENARIOS: list[tuple[int, str | None, bool | None, object]] = [
    (30, None, None, "ok"),
    (6, "429;kind=concurrency;retry_after_ms=5;times=1", None, "ok"),
    (5, "429;kind=concurrency;times=2", None, "ok"),
    (3, "429;kind=concurrency", False, wi.RateLimitError),
    (3, "429;kind=quota", False, wi.QuotaExceededError),
    (4, "500;times=1", None, "ok"),
    (3, "503", False, wi.ServiceUnavailableError),
    (4, "html;status=502;times=1", None, "ok"),
    (2, "html;status=502", False, wi.InternalServerError),
    # Reset after the server read the request: it may have been processed, never re-sent.
    (4, "reset;times=1", None, wi.APIConnectionError),
    (2, "402", False, wi.QuotaExceededError),
    (1, f"stall;seconds={STALL}", False, wi.APITimeoutError),
    (4, "cut;after=3;utf8", True, wi.StreamInterruptedError),
    (3, "no-done", True, wi.StreamInterruptedError),
    (3, "error;after=2", True, wi.StreamEventError),
    (2, "error;after=2;event", True, wi.StreamEventError),
    (4, "awkward", True, "ok"),
    (1, f"stall-stream;after=2;seconds={STALL}", True, wi.StreamInterruptedError),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, owner: _CountingTransport) -> None:
        self.inner = inner
        self.owner = owner
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self.inner:
            yield part

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.open -= 1
        await self.inner.aclose()


class _CountingTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, counting responses not yet closed (public httpx API only)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=200))
        self.open = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        self.open += 1
        response.stream = _CountedStream(response.stream, self)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.slow
@pytest.mark.timeout(600)  # about 40 s on an idle 2-core machine; a loaded one takes several times that
async def test_fault_soak(server: LocalServer) -> None:
    rng = random.Random(20261122)
    weights = [w for w, *_ in SCENARIOS]
    plan = [rng.choices(SCENARIOS, weights)[0] for _ in range(CALLS)]
    policy = wi.RetryPolicy(max_retries=MAX_RETRIES, initial_delay=0.005, max_delay=0.02, total_timeout=DEADLINE)
    timeout = httpx.Timeout(5.0, read=READ_TIMEOUT)
    fds_before = _open_fds()
    tasks_before = len(asyncio.all_tasks())
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    call_ids: dict[str, tuple[str | None, object]] = {}

    transport = _CountingTransport()
    http = httpx.AsyncClient(transport=transport, follow_redirects=False)
    async with (
        http,
        wi.AsyncClient(
            "soak-key",
            base_url=server.base_url,
            retry_policy=policy,
            timeout=timeout,
            adaptive_concurrency=False,
            http_client=http,
        ) as client,
    ):
        gate = anyio.Semaphore(CONCURRENCY)

        async def one(i: int) -> None:
            _, template, streamed, expected = plan[i]
            stream = streamed if streamed is not None else bool(i % 2)
            call_id = uuid.uuid4().hex
            headers = {"X-Call-Id": call_id}
            if template is not None:
                headers["X-Wandb-Fault"] = template + (f";id={call_id}" if "times=" in template else "")
            call_ids[call_id] = (template, expected)
            seen: list[str] = []
            async with gate:
                try:
                    with anyio.fail_after(DEADLINE + 2):
                        if stream:
                            s = await client.chat.create(
                                model=MODEL, messages=MESSAGES, max_tokens=12, stream=True, extra_headers=headers
                            )
                            async with s:
                                async for chunk in s:
                                    seen.append(chunk.text)
                        else:
                            reply = await client.chat.create(
                                model=MODEL, messages=MESSAGES, max_tokens=12, extra_headers=headers
                            )
                            assert reply.text
                    outcome: object = "ok"
                except TimeoutError:
                    failures.append(f"call {i} ({template}) hung past its deadline")
                    return
                except wi.WandbInferenceError as exc:
                    outcome = type(exc)
                    if isinstance(exc, wi.StreamError) and stream and exc.text != "".join(seen):
                        failures.append(f"call {i} ({template}): partial text lost")
            outcomes[getattr(outcome, "__name__", str(outcome))] += 1
            if outcome is not expected and not (
                isinstance(expected, type) and isinstance(outcome, type) and issubclass(outcome, expected)
            ):
                failures.append(f"call {i} ({template}, stream={stream}): got {outcome}, expected {expected}")

        async with anyio.create_task_group() as tg:
            for i in range(CALLS):
                tg.start_soon(one, i)

        assert transport.open == 0, "a response was left open"

    assert not failures, failures[:10]
    # Retries stayed within bounds: no call id reached the server more than 1 + MAX_RETRIES times.
    attempts = Counter(dict(r.headers).get("x-call-id") for r in server.requests)
    assert max(attempts.values()) <= 1 + MAX_RETRIES
    assert len(attempts) == CALLS
    reset = [cid for cid, (template, _) in call_ids.items() if template and template.startswith("reset")]
    assert reset and all(attempts[cid] == 1 for cid in reset), "a request the server received was sent again"
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) <= tasks_before
    assert _open_fds() <= fds_before + 2  # the closed pool released its sockets
    assert outcomes["ok"] > CALLS // 3
    # Every kind of outcome was exercised.
    expected_kinds = {getattr(e, "__name__", e) for *_, e in SCENARIOS}
    assert expected_kinds <= set(outcomes), (expected_kinds, outcomes)


@pytest.mark.slow
async def test_batch_against_a_one_in_flight_model_completes() -> None:
    """100 calls, 16 at a time, to a model that serves one request at a time."""
    with LocalServer(concurrency_limits={MODEL: 1}, pace=0.002) as srv:
        async with wi.AsyncClient("k", base_url=srv.base_url, max_retries=4) as client:
            gate = anyio.Semaphore(16)
            texts: list[str] = []

            async def one() -> None:
                async with gate:
                    reply = await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=8)
                    texts.append(reply.text)

            started = anyio.current_time()
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one)
            elapsed = anyio.current_time() - started
        refused = sum(1 for r in srv.requests if r.status == 429)
    assert len(texts) == 100
    assert elapsed < 60
    print(f"\none-in-flight batch: 100 calls in {elapsed:.1f} s, {refused} concurrency 429s absorbed")
