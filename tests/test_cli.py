"""The `wandb-inference` command, driven as a user would: subprocesses and a terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wandb_inference._cli._main import EXIT_CODES
from wandb_inference.server import Fault, LocalServer

KEY = "cli-secret-key-31337"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as srv:
        yield srv


def run(
    server: LocalServer | None, *args: str, stdin: str | None = None, key: str | None = KEY
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env["HOME"] = "/nonexistent-home"
    if key is not None:
        env["WANDB_API_KEY"] = key
    if server is not None:
        env["WANDB_INFERENCE_BASE_URL"] = server.base_url
    return subprocess.run(
        [sys.executable, "-m", "wandb_inference", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wandb-inference: error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr + result.stdout


def test_models_table_and_json(server: LocalServer) -> None:
    table = run(server, "models")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["ID", "NAME", "CONTEXT", "STAGE"]
    assert MODEL in table.stdout
    as_json = run(server, "models", "--json")
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert any(r["id"] == MODEL and r["catalog"]["context_window"] for r in rows)


def test_chat_streams_and_reads_stdin(server: LocalServer) -> None:
    streamed = run(server, "chat", "-m", MODEL, "--max-tokens", "10", "Say", "hi")
    assert streamed.returncode == 0 and streamed.stdout.strip()
    whole = run(server, "chat", "-m", MODEL, "--max-tokens", "10", "--no-stream", "Say", "hi")
    assert whole.stdout == streamed.stdout  # deterministic server, same text either way
    piped = run(server, "chat", "-m", MODEL, "--max-tokens", "10", "--system", "be brief", stdin="Say hi\n")
    assert piped.returncode == 0 and piped.stdout.strip()
    as_json = run(server, "chat", "-m", MODEL, "--max-tokens", "5", "--json", "hi")
    assert json.loads(as_json.stdout)["object"] == "chat.completion"


def test_chat_reasoning_goes_to_stderr(server: LocalServer) -> None:
    result = run(server, "chat", "-m", "openai/gpt-oss-20b", "--max-tokens", "300", "why?")
    assert result.returncode == 0
    assert result.stdout.strip() and result.stderr.strip()
    hidden = run(server, "chat", "-m", "openai/gpt-oss-20b", "--max-tokens", "300", "--hide-reasoning", "why?")
    assert hidden.stderr.strip() == ""


def test_embed_args_and_stdin_lines(server: LocalServer) -> None:
    result = run(server, "embed", "-m", "BAAI/bge-m3", "first", "second", "--dimensions", "4")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["first", "second"]
    assert all(len(r["embedding"]) == 4 for r in rows)
    piped = run(server, "embed", "-m", "BAAI/bge-m3", stdin="one\n\ntwo\nthree\n")
    assert [json.loads(line)["index"] for line in piped.stdout.splitlines()] == [0, 1, 2]


def test_flags_override_environment(server: LocalServer) -> None:
    result = run(None, "models", "--api-key", KEY, "--base-url", server.base_url, "--project", "team/proj", key=None)
    assert result.returncode == 0
    assert any(dict(r.headers).get("openai-project") == "team/proj" for r in server.requests)


def test_bad_key_is_one_line(server: LocalServer) -> None:
    assert_one_line_error(run(server, "models", key="wrong-key"), 1, "401")


def test_unknown_model_is_one_line(server: LocalServer) -> None:
    assert_one_line_error(run(server, "chat", "-m", "nobody/model", "hi"), 1, "models")


def test_no_key_is_one_line() -> None:
    assert_one_line_error(run(None, "models", key=None), 3, "No W&B API key")


def test_no_network_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(None, "models", "--base-url", f"http://127.0.0.1:{port}/v1", "--max-retries", "0")
    assert_one_line_error(result, 4, "Could not reach")


def test_bad_arguments_exit_2() -> None:
    result = run(None, "chat", "hi")
    assert result.returncode == 2 and "required" in result.stderr and "Traceback" not in result.stderr
    bad_temp = run(None, "chat", "-m", MODEL, "--temperature", "9", "hi")
    assert bad_temp.returncode == 2 and "temperature" in bad_temp.stderr


@pytest.mark.parametrize("sub", ["", "models", "chat", "embed", "serve", "demo"])
def test_help_everywhere(sub: str) -> None:
    result = run(None, *([sub] if sub else []), "--help")
    assert result.returncode == 0 and "usage: wandb-inference" in result.stdout
    if sub not in ("serve",):
        assert "exit codes" in result.stdout or sub == "demo"


# What the README's "Command line" section says each exit code means, word for word.
README_EXIT_MEANINGS = {
    1: "API error",
    2: "usage",
    3: "configuration",
    4: "connection",
    5: "broken stream",
    6: "a batch finished with failed lines",
    130: "Ctrl-C",
}


def _readme_exit_codes() -> dict[int, str]:
    """The README sentence `... exit with: 1 API error, 2 usage, ..., 130 Ctrl-C.` as a dict."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = re.search(r"exit with: (.*?)\.\n", readme, re.DOTALL)
    assert found, "the README no longer lists the exit codes"
    pairs = re.findall(r"(\d+) ([^,]+)", " ".join(found.group(1).split()))
    return {int(code): meaning.strip() for code, meaning in pairs}


def _code_for(meaning: str) -> int:
    """The exit code the README gives for `meaning`."""
    return {what: code for code, what in _readme_exit_codes().items()}[meaning]


def test_readme_gives_each_exit_code_its_meaning() -> None:
    assert _readme_exit_codes() == README_EXIT_MEANINGS
    assert set(EXIT_CODES) == {0, *README_EXIT_MEANINGS}  # and the CLI has no other


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


@pytest.mark.parametrize("meaning", [m for m in README_EXIT_MEANINGS.values() if m != "Ctrl-C"])
def test_each_exit_code_means_what_the_readme_says(server: LocalServer, meaning: str) -> None:
    """Provoke each failure for real; the CLI exits with the code the README maps it to.

    Ctrl-C (130) is provoked in a terminal, in `test_ctrl_c_during_a_stream_in_a_terminal`.
    """
    code = _code_for(meaning)
    if meaning == "API error":
        assert_one_line_error(run(server, "models", key="wrong-key"), code, "401")
        assert_one_line_error(run(server, "chat", "-m", "nobody/model", "hi"), code, "404")
    elif meaning == "usage":
        missing = run(None, "chat", "hi")  # no -m: argparse
        assert missing.returncode == code and "required" in missing.stderr
        assert_one_line_error(run(None, "chat", "-m", MODEL, stdin=""), code, "empty")  # the SDK's check
    elif meaning == "configuration":
        assert_one_line_error(run(None, "models", key=None), code, "No W&B API key")
    elif meaning == "connection":
        result = run(None, "models", "--base-url", _closed_port_url(), "--max-retries", "0")
        assert_one_line_error(result, code, "Could not reach")
    elif meaning == "a batch finished with failed lines":
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "in.jsonl"
            lines = [
                {"custom_id": m, "url": "/v1/chat/completions", "body": {"model": m, "messages": MESSAGES}}
                for m in (MODEL, "nobody/model")
            ]
            source.write_text("".join(json.dumps(line) + "\n" for line in lines))
            result = run(server, "batch", str(source), "--output", str(Path(tmp) / "out.jsonl"))
            assert result.returncode == code, result.stderr
            assert "1 succeeded, 1 failed" in result.stderr
    else:
        assert meaning == "broken stream"
        server.faults.push(Fault.cut_stream(after=3), times=1)
        result = run(server, "chat", "-m", MODEL, "--max-tokens", "50", "tell me")
        assert_one_line_error(result, code, "stream")
        assert result.stdout.strip()  # the text received before the cut was printed


def test_ctrl_c_during_a_stream_in_a_terminal(server: LocalServer) -> None:
    server.faults.push(Fault.stall_stream(after=3, seconds=30), times=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env.update(WANDB_API_KEY=KEY, WANDB_INFERENCE_BASE_URL=server.base_url, NO_COLOR="1")
    master, slave = pty.openpty()
    # CI may run us with SIGINT ignored (a background job), and a child inherits that:
    # give the CLI the default Ctrl-C behaviour a terminal user has.
    launcher = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv = ['wandb-inference', *sys.argv[1:]]; runpy.run_module('wandb_inference', run_name='__main__')"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "chat", "-m", MODEL, "--max-tokens", "50", "tell me"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and len(seen.strip()) < 3:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 1024)
        assert seen.strip(), "no streamed text before the stall"
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        # Keep draining the terminal while waiting: a full pty buffer would block the child.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the child closed its end
                    data = b""
                seen += data
                if not data and proc.poll() is not None:
                    break
            elif proc.poll() is not None:
                break
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = seen.decode(errors="replace")
    assert proc.returncode == _code_for("Ctrl-C") == 130
    assert "interrupted" in text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text


def test_demo_runs_against_a_local_server() -> None:
    result = run(None, "demo", "--local", key=None)
    assert result.returncode == 0, result.stderr
    for needle in ("models.list()", "chat.create", "stream=True", "embeddings.create", "429", "attempt 3", "Done."):
        assert needle in result.stdout, needle


def test_pytest_plugin_gives_users_a_server(tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(
        """
import pytest
import wandb_inference as wi
from wandb_inference.server import Fault


def test_app(wandb_inference_server):
    wandb_inference_server.faults.push(Fault.status(503), times=1)
    with wi.Client(api_key="k", base_url=wandb_inference_server.base_url, sleep=lambda s: None) as c:
        assert c.chat.create(model="meta-llama/Llama-3.3-70B-Instruct", messages=[{"role": "user", "content": "x"}]).text
    assert len(wandb_inference_server.requests) == 2


@pytest.mark.wandb_inference_server(api_key="secret")
def test_with_key(wandb_inference_server):
    with wi.Client(api_key="wrong", base_url=wandb_inference_server.base_url) as c:
        with pytest.raises(wi.AuthenticationError):
            c.models.list()
"""
    )
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["wandb_inference.server.pytest_plugin"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
