"""Running the local server: thread and task modes, clean stops, `serve()` under signals,
the pytest plugin as a user enables it, and the public door of `wandb_inference.server`."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

import wandb_inference.server
from wandb_inference.server import Fault, LocalServer

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "meta-llama/Llama-3.3-70B-Instruct", "messages": [{"role": "user", "content": "hi"}]}


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _running(server: LocalServer) -> bool:
    # A call, not the property: mypy would keep `server.running` narrowed to True.
    return server.running


def test_public_door() -> None:
    assert wandb_inference.server.__all__ == sorted(wandb_inference.server.__all__)
    assert wandb_inference.server.__all__ == [
        "FAULT_HEADER",
        "Fault",
        "FaultQueue",
        "LocalServer",
        "RecordedRequest",
        "RequestLog",
        "StreamFault",
        "serve",
    ]
    for name in wandb_inference.server.__all__:
        assert getattr(wandb_inference.server, name) is not None


def test_import_wandb_inference_never_imports_the_server() -> None:
    code = "import sys, wandb_inference; print(sorted(m for m in sys.modules if m.startswith(('wandb_inference.server', 'starlette', 'uvicorn'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_thread_mode_starts_serves_and_stops_cleanly() -> None:
    threads_before = set(threading.enumerate())
    server = LocalServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server:
        port = server.port
        assert port != 0 and server.running
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        assert server.url == f"http://127.0.0.1:{port}"
        assert repr(server) == f"LocalServer(http://127.0.0.1:{port}/v1)"
        with httpx.Client() as client:
            assert client.get(f"{server.base_url}/models").status_code == 200
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    assert not _running(server)
    assert _refused(port)
    assert set(threading.enumerate()) == threads_before
    # The same instance can run again (on a new port); state is kept.
    with server, httpx.Client() as client:
        assert client.get(f"{server.base_url}/models").status_code == 200
    assert len(server.requests) == 2


def test_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with LocalServer(port=port) as server:
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            LocalServer(port=port).start()


async def test_task_mode_runs_in_the_current_loop() -> None:
    async with LocalServer(api_key="k") as server, httpx.AsyncClient(base_url=server.base_url) as client:
        assert server.running
        response = await client.post("/chat/completions", json=BODY, headers={"Authorization": "Bearer k"})
        assert response.status_code == 200
        server.faults.push(Fault.reset())
        with pytest.raises(httpx.ReadError):
            await client.post("/chat/completions", json=BODY, headers={"Authorization": "Bearer k"})
        port = server.port
    assert not _running(server)
    assert _refused(port)
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_task_mode_stops_with_an_open_stream() -> None:
    async with LocalServer(pace=0.05) as server:
        client = httpx.AsyncClient(base_url=server.base_url)
        response = await client.send(
            client.build_request("POST", "/chat/completions", json={**BODY, "stream": True}), stream=True
        )
        assert response.status_code == 200
        await response.aclose()
        await client.aclose()


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="pace"):
        LocalServer(pace=-1)
    with pytest.raises(ValueError, match="port"):
        LocalServer(port=70000)
    with pytest.raises(ValueError, match="concurrency limit"):
        LocalServer(concurrency_limits={"m": 0})
    with pytest.raises(ValueError, match="reasoning_field"):
        LocalServer(reasoning_field="thoughts")  # type: ignore[arg-type]


async def test_the_app_alone_runs_under_asgi_transport() -> None:
    server = LocalServer()
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://local/v1") as client:
        response = await client.post("/chat/completions", json=BODY)
        assert response.status_code == 200
        assert server.requests.last.status == 200
        server.faults.push(Fault.reset())
        with pytest.raises(ConnectionAbortedError, match="LocalServer"):
            await client.post("/chat/completions", json=BODY)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_prints_the_url_and_stops_on_signals(sig: signal.Signals) -> None:
    code = "from wandb_inference.server import serve; serve(port=0, api_key='k', access_log=False)"
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        assert line.startswith("wandb-inference local server: http://127.0.0.1:")
        base_url = line.split(": ", 1)[1].strip()
        with httpx.Client(base_url=base_url) as client:
            assert client.get("/models").status_code == 401
            assert client.get("/models", headers={"Authorization": "Bearer k"}).status_code == 200
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stderr.read()


def test_pytest_plugin_as_a_user_enables_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.pytest.ini_options]
            asyncio_mode = "auto"
            asyncio_default_fixture_loop_scope = "function"
            filterwarnings = ["error"]
            addopts = "--strict-markers"
            """
        )
    )
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["wandb_inference.server.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import httpx
            import pytest
            from wandb_inference.server import Fault

            def test_default(wandb_inference_server):
                with httpx.Client(base_url=wandb_inference_server.base_url) as client:
                    assert client.get("/models").status_code == 200
                    wandb_inference_server.faults.push(Fault.status(503))
                    assert client.get("/models").status_code == 503
                assert len(wandb_inference_server.requests) == 2

            @pytest.mark.wandb_inference_server(api_key="secret")
            async def test_marker_options(wandb_inference_server):
                async with httpx.AsyncClient(base_url=wandb_inference_server.base_url) as client:
                    assert (await client.get("/models")).status_code == 401

            def test_fresh_per_test(wandb_inference_server):
                assert len(wandb_inference_server.requests) == 0
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
