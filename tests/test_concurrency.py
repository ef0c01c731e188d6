"""Client-side concurrency control: both gates (the policy: test_adaptive_concurrency.py)."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel
import httpx
import pytest
from _helpers import API_KEY, BASE_URL, MESSAGES, MODEL, completion_body, error_body, json_response

import wandb_inference as wi


class OneAtATime:
    """A server that answers 429 when more than `capacity` requests overlap."""

    def __init__(self, capacity: int, delay: float) -> None:
        self.capacity = capacity
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.rejected = 0
        self.lock = threading.Lock()

    def enter(self) -> bool:
        with self.lock:
            if self.active >= self.capacity:
                self.rejected += 1
                return False
            self.active += 1
            self.peak = max(self.peak, self.active)
            return True

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


def _limited() -> httpx.Response:
    return json_response(
        429, error_body("Concurrency limit reached for requests: m-project limit reached", "rate_limit_exceeded")
    )


async def test_async_batch_completes_against_a_one_in_flight_model() -> None:
    server = OneAtATime(capacity=1, delay=0.002)

    async def handler(request: httpx.Request) -> httpx.Response:
        if not server.enter():
            return _limited()
        try:
            await anyio.sleep(server.delay)
        finally:
            server.leave()
        return json_response(200, completion_body())

    async def no_sleep(_: float) -> None:
        await anyio.lowlevel.checkpoint()

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with wi.AsyncClient(API_KEY, base_url=BASE_URL, http_client=http, sleep=no_sleep, max_retries=5) as client:
        results: list[str] = []

        async def one() -> None:
            reply = await client.chat.create(model=MODEL, messages=MESSAGES)
            results.append(reply.text)

        async with anyio.create_task_group() as tg:
            for _ in range(100):
                tg.start_soon(one)
        assert len(results) == 100
        assert client._limiter is not None and client._limiter.limit_for(MODEL) <= 2
    await http.aclose()
    assert server.peak == 1


def test_sync_max_concurrency_is_respected_across_threads() -> None:
    server = OneAtATime(capacity=100, delay=0.05)

    def handler(request: httpx.Request) -> httpx.Response:
        assert server.enter()
        try:
            time.sleep(server.delay)
        finally:
            server.leave()
        return json_response(200, completion_body())

    http = httpx.Client(transport=httpx.MockTransport(handler))
    texts: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            texts.append(client.chat.create(model=MODEL, messages=MESSAGES).text)
        except BaseException as exc:
            errors.append(exc)

    with wi.Client(API_KEY, base_url=BASE_URL, http_client=http, max_concurrency=3) as client:
        threads = [threading.Thread(target=one) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    http.close()
    # Every call completed (a test of a limit that passes when every call fails proves
    # nothing), and the limit was reached but never passed.
    assert errors == [] and texts == ["Hello there"] * 24
    assert server.peak == 3


@pytest.mark.parametrize("adaptive", [False, True])
def test_sync_adaptive_switch(adaptive: bool) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda request: _limited()))
    with wi.Client(
        API_KEY,
        base_url=BASE_URL,
        http_client=http,
        max_concurrency=8,
        adaptive_concurrency=adaptive,
        max_retries=0,
    ) as client:
        with pytest.raises(wi.RateLimitError):
            client.chat.create(model=MODEL, messages=MESSAGES)
        assert client._limiter is not None
        assert client._limiter.limit_for(MODEL) == (1 if adaptive else 8)
    http.close()
