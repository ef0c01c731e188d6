"""A pytest fixture for testing code that talks to W&B Inference, against a local server.

Enable it in a `conftest.py` (or with `pytest -p wandb_inference.server.pytest_plugin`):

```python
pytest_plugins = ["wandb_inference.server.pytest_plugin"]


def test_my_app(wandb_inference_server):
    app = MyApp(base_url=wandb_inference_server.base_url, api_key="any")
    wandb_inference_server.faults.push(Fault.status(503))
    ...
    assert wandb_inference_server.requests.last.body["model"] == "meta-llama/Llama-3.3-70B-Instruct"


@pytest.mark.wandb_inference_server(api_key="k", pace=0.01)
def test_with_options(wandb_inference_server): ...
```

The server runs in a background thread, so sync and async tests can use it alike; each
test gets a fresh one (own port, empty request log, no faults).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._run import LocalServer

__all__ = ["wandb_inference_server"]

_MARKER = "wandb_inference_server"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker that passes options to the fixture's `LocalServer`."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**options): keyword arguments for the wandb_inference_server fixture's LocalServer",
    )


@pytest.fixture
def wandb_inference_server(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """A running `LocalServer` on 127.0.0.1, stopped after the test.

    Options come from `@pytest.mark.wandb_inference_server(...)` (the `LocalServer`
    keyword arguments, e.g. `api_key`, `pace`, `concurrency_limits`).
    """
    marker = request.node.get_closest_marker(_MARKER)
    options = dict(marker.kwargs) if marker is not None else {}
    with LocalServer(**options) as server:
        yield server
