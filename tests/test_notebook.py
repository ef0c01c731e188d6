"""A real Jupyter kernel runs `Client` (and `AsyncClient` with top-level await)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from wandb_inference.server import LocalServer  # noqa: E402

KEY = "nb-secret-key-4242"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as srv:
        yield srv


def _notebook(base_url: str) -> Any:
    cells = [
        f"""
import asyncio, wandb_inference as wi
loop_running = asyncio.get_event_loop().is_running()
client = wi.Client(api_key={KEY!r}, base_url={base_url!r})
print("loop running:", loop_running)
""",
        f"""
reply = client.chat.create(model={MODEL!r}, messages=[{{"role": "user", "content": "hello"}}], max_tokens=8, seed=3)
print("TEXT:", reply.text)
reply
""",
        f"""
with client.chat.create(model={MODEL!r}, messages=[{{"role": "user", "content": "stream"}}], max_tokens=12, stream=True) as s:
    for piece in s.text_stream():
        print(piece, end="")
print()
print("STREAMED:", len(s.completion.text) > 0, s.closed)
""",
        """
try:
    client.chat.create(model="no-such/model", messages=[{"role": "user", "content": "x"}])
except wi.NotFoundError as exc:
    err = exc
print("ERROR:", type(err).__name__)
err
""",
        f"""
async with wi.AsyncClient(api_key={KEY!r}, base_url={base_url!r}) as aclient:
    areply = await aclient.chat.create(model={MODEL!r}, messages=[{{"role": "user", "content": "async"}}], max_tokens=5)
print("ASYNC:", areply.text)
repr(client), repr(aclient)
""",
        """
bad = wi.Client(api_key="wrong-key", base_url=client.base_url)
try:
    bad.models.list()
except wi.AuthenticationError as exc:
    print("AUTH:", type(exc).__name__)
client.close(); bad.close()
""",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c.strip()) for c in cells]
    return nb


def test_notebook_runs_client_in_a_real_kernel(server: LocalServer) -> None:
    nb = _notebook(server.base_url)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False)
    client.execute()
    outputs = json.dumps([cell.get("outputs", []) for cell in nb.cells])
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    assert "loop running: True" in text  # the kernel's loop is running: no asyncio.run anywhere
    assert "TEXT: " in text and "TEXT: \n" not in text
    assert "STREAMED: True True" in text
    assert "ERROR: NotFoundError" in text
    assert "ASYNC: " in text
    assert "AUTH: AuthenticationError" in text
    assert "text/markdown" in outputs  # results and errors render in the notebook
    assert KEY not in outputs
