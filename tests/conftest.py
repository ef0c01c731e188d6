"""Shared fixtures: clients of both colours over `httpx.MockTransport`, a fake sleep, and
the two transports of `AsyncClient`.

A module that sets `pytestmark = pytest.mark.usefixtures("async_transport")` runs each of
its async tests on both transports: every `AsyncClient` the test builds without
`http_client=` sends over httpx (`[...-httpx]`) and then over aiohttp
(`[...-aiohttp]`), through the documented switch (`transport=`, whose default the
fixture sets). Tests taking `kind` run as `async`, `async-aiohttp` and `sync`. Tests that
only ever build clients on `httpx.MockTransport` (`make_client`, or marked
`httpx_only`) and sync tests run once.
"""

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
    """Tests never see the developer's own key, project or netrc, nor other tests' clients."""
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
    # Each test's clients share limits only with each other (`_board.py`), never with
    # the clients of an earlier test at the same address.
    monkeypatch.setenv("WANDB_INFERENCE_PEER_DIR", str(tmp_path / "peers"))


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


@pytest.fixture
def kind(request: pytest.FixtureRequest) -> str:
    """The client's colour, "async" or "sync" (parametrized by `pytest_generate_tests`)."""
    return str(request.param)


TRANSPORTS = ("httpx", "aiohttp")


@pytest.fixture
def async_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The transport of every `AsyncClient` this test builds (the default of `transport=`)."""
    name = str(getattr(request, "param", "httpx"))
    defaults = wandb_inference.AsyncClient.__init__.__kwdefaults__
    assert defaults is not None and "transport" in defaults
    monkeypatch.setitem(defaults, "transport", name)
    # The switch really took: a client built with the defaults sends over `name`.
    client = wandb_inference.AsyncClient(api_key="k")
    assert type(client._http._transport).__module__.endswith("_aiohttp") == (name == "aiohttp")
    return name


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    both = "async_transport" in names and not (
        metafunc.definition.get_closest_marker("httpx_only") is not None or "make_client" in names
    )
    direct = {
        name.strip()
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in (marker.args[0].split(",") if isinstance(marker.args[0], str) else marker.args[0])
    }
    if "kind" in names and "kind" not in direct:  # not a test's own parameter named `kind`
        combos = (
            [("async", "httpx"), ("async", "aiohttp"), ("sync", "httpx")]
            if both
            else [("async", "httpx"), ("sync", "httpx")]
        )
        ids = [k if t == "httpx" else f"{k}-{t}" for k, t in combos]
        if "async_transport" in names:
            metafunc.parametrize(("kind", "async_transport"), combos, ids=ids, indirect=True)
        else:
            metafunc.parametrize("kind", [k for k, _ in combos], ids=ids, indirect=True)
    elif both and inspect.iscoroutinefunction(metafunc.function):
        metafunc.parametrize("async_transport", TRANSPORTS, indirect=True)


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
