"""Shared fixtures: clients of both colours over `httpx.MockTransport`, and a fake sleep."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from _helpers import API_KEY, BASE_URL

import wandb_inference

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Tests never see the developer's own key, project or netrc."""
    for name in (
        "WANDB_API_KEY",
        "WANDB_INFERENCE_BASE_URL",
        "WANDB_INFERENCE_PROJECT",
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "WANDB_BASE_URL",
        "NETRC",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


class Sleeps:
    """Records the waits the client asked for; never really waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sync(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def async_(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


class Either:
    """One facade over `Client` and `AsyncClient` so a test body runs against both."""

    def __init__(self, kind: str, client: wandb_inference.Client | wandb_inference.AsyncClient):
        self.kind = kind
        self.client = client

    async def call(self, path: str, **kwargs: Any) -> Any:
        target: Any = self.client
        for part in path.split("."):
            target = getattr(target, part)
        result = target(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def collect(self, stream: Any) -> list[Any]:
        if self.kind == "async":
            return [chunk async for chunk in stream]
        return list(stream)

    async def close(self) -> None:
        if isinstance(self.client, wandb_inference.AsyncClient):
            await self.client.aclose()
        else:
            self.client.close()


@pytest.fixture(params=["async", "sync"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_client(kind: str, sleeps: Sleeps) -> AsyncIterator[Callable[..., Either]]:
    """Build a client of the parametrized colour whose transport is `handler`."""
    made: list[tuple[Either, httpx.Client | httpx.AsyncClient]] = []

    def make(handler: Handler, **options: Any) -> Either:
        options.setdefault("api_key", API_KEY)
        options.setdefault("base_url", BASE_URL)
        transport = httpx.MockTransport(handler)
        client: wandb_inference.Client | wandb_inference.AsyncClient
        http: httpx.Client | httpx.AsyncClient
        if kind == "async":
            options.setdefault("sleep", sleeps.async_)
            http = httpx.AsyncClient(transport=transport)
            client = wandb_inference.AsyncClient(http_client=http, **options)
        else:
            options.setdefault("sleep", sleeps.sync)
            http = httpx.Client(transport=transport)
            client = wandb_inference.Client(http_client=http, **options)
        either = Either(kind, client)
        made.append((either, http))
        return either

    yield make
    for either, http in made:
        await either.close()
        if isinstance(http, httpx.AsyncClient):
            await http.aclose()
        else:
            http.close()
