"""`wandb-inference batch`, driven as a user would: subprocesses killed with SIGKILL and
interrupted with SIGINT at random points, then run again; the local server's request log
proves that nothing already written was sent again."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wandb_inference.server import Fault, LocalServer

KEY = "cli-batch-secret-9876"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
ID_IN_PROMPT = re.compile(r"cid=([\w-]+)")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _fresh(server: LocalServer) -> Iterator[None]:
    server.faults.clear()
    server.requests.clear()
    yield
    server.faults.clear()


def env_for(server: LocalServer | None, base_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB")}
    env["HOME"] = "/nonexistent-home"
    env["WANDB_API_KEY"] = KEY
    if server is not None or base_url is not None:
        env["WANDB_INFERENCE_BASE_URL"] = base_url or server.base_url  # type: ignore[union-attr]
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wandb_inference", "batch", *args]


def run(server: LocalServer | None, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, env=env_for(server, base_url), timeout=120)


def start(server: LocalServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(server)
    )


def write_input(path: Path, ids: list[str], model: str = MODEL, max_tokens: int = 4) -> Path:
    with path.open("w") as handle:
        for custom_id in ids:
            body = {
                "model": model,
                "messages": [{"role": "user", "content": f"cid={custom_id}"}],
                "max_tokens": max_tokens,
            }
            handle.write(
                json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            handle.write("\n")
    return path


def request_ids(records: list[Any]) -> list[str]:
    out = []
    for record in records:
        body = record.body if isinstance(record.body, dict) else {}
        match = ID_IN_PROMPT.search(json.dumps(body.get("messages")))
        if match:
            out.append(match.group(1))
    return out


def written(*paths: Path) -> Counter[str]:
    """custom_id -> complete result lines, as the next run reads them."""
    counts: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            continue
        for raw in path.read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
            counts[json.loads(raw)["custom_id"]] += 1  # every complete line is a whole result
    return counts


def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_kill_9_at_random_moments_then_a_rerun_leaves_each_custom_id_exactly_once(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ids = [f"k{i}" for i in range(400)]
    source = write_input(tmp_path / "in.jsonl", ids)
    out, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    with LocalServer(api_key=KEY, pace=0.004) as slow:  # a request takes ~16 ms
        slow.faults.push(Fault.status(404, message="model not found: {model}"), times=None, model="gone/model")
        with source.open("a") as handle:  # a few lines fail, to exercise the errors file
            for i in range(5):
                body = {"model": "gone/model", "messages": [{"role": "user", "content": f"cid=g{i}"}]}
                handle.write(json.dumps({"custom_id": f"g{i}", "url": "/v1/chat/completions", "body": body}) + "\n")
        ids += [f"g{i}" for i in range(5)]
        rounds: list[tuple[int, set[str]]] = []
        for _ in range(4):
            proc = start(slow, str(source), "--output", str(out), "--max-concurrency", "8", "-q")
            before = len(slow.requests)
            target = before + rng.randrange(5, 60)
            wait_for(lambda: len(slow.requests) >= target or proc.poll() is not None)  # noqa: B023
            time.sleep(rng.random() * 0.05)
            proc.kill()  # SIGKILL: no cleanup of any kind
            proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
            rounds.append((len(slow.requests), set(written(out, errors))))
            assert max(written(out, errors).values(), default=1) == 1, f"seed {seed}"
        # A write torn by a kill (rare by chance, so made here): part of a result line for a
        # line not written yet, no newline. The next run cuts it off and sends that line.
        torn = next(custom_id for custom_id in reversed(ids) if custom_id not in rounds[-1][1])
        with out.open("ab") as handle:
            handle.write(b'{"id":"batch_req_' + b"1" * 32 + b'","custom_id":"' + torn.encode() + b'","respon')
        final = run(slow, str(source), "--output", str(out), "--max-concurrency", "8")
        assert final.returncode == 6, final.stderr  # the g* lines failed (404), all else succeeded
        assert "cut a torn last line" in final.stderr
        log = slow.requests.snapshot()
    result = written(out, errors)
    assert result == Counter(dict.fromkeys(ids, 1)), f"seed {seed}"
    assert set(written(errors)) == {f"g{i}" for i in range(5)}
    assert out.read_bytes().endswith(b"\n")
    # No request for a line already written when a run was killed was sent afterwards.
    for index, done in rounds:
        again = set(request_ids(log[index:])) & done
        assert again == set(), f"seed {seed}: sent again after being written: {sorted(again)[:5]}"
    # Every request sent was for a line with no result yet, so each line was sent once,
    # or again only when a kill hit it in flight (at most once per kill).
    sends = Counter(request_ids(log))
    assert max(sends.values()) <= 1 + len(rounds), f"seed {seed}"


def test_ctrl_c_once_lets_the_requests_in_flight_finish_and_be_written(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [f"c{i}" for i in range(300)])
    out = tmp_path / "out.jsonl"
    with LocalServer(api_key=KEY, pace=0.03) as slow:  # ~0.12 s a request
        proc = start(slow, str(source), "--output", str(out), "--max-concurrency", "8")
        wait_for(lambda: len(slow.requests) >= 20)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "stopping: no new requests" in stderr and "Run the same command to resume" in stderr
        assert "Traceback" not in stderr and KEY not in stderr
        first = slow.requests.snapshot()
        answered = [r for r in first if r.status == 200]
        # Everything sent was answered and written: in-flight requests were let finish.
        assert len(answered) == len(first) == sum(written(out).values())
        again = run(slow, str(source), "--output", str(out), "--max-concurrency", "8", "-q")
        assert again.returncode == 0, again.stderr
        second = slow.requests.snapshot()[len(first) :]
    assert not set(request_ids(second)) & set(request_ids(first))
    assert written(out) == Counter({f"c{i}": 1 for i in range(300)})


def test_ctrl_c_twice_cancels_the_requests_in_flight(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [f"d{i}" for i in range(40)])
    out = tmp_path / "out.jsonl"
    with LocalServer(api_key=KEY, pace=1.0) as slow:  # 4 s a request
        proc = start(slow, str(source), "--output", str(out), "--max-concurrency", "4")
        wait_for(lambda: len(slow.requests) >= 4)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        assert time.monotonic() - stopped < 3  # did not wait for the 4 s replies
        assert proc.returncode == 130, stderr
        assert "cancelling the requests in flight" in stderr
        assert sum(written(out).values()) == 0 and len(slow.requests) == 4


def test_a_quota_error_mid_job_stops_it_with_exit_1_and_a_rerun_finishes(server: LocalServer, tmp_path: Path) -> None:
    server.faults.push(Fault.stall(0.0), times=30)
    server.faults.push(Fault.status(402), times=None)
    source = write_input(tmp_path / "in.jsonl", [f"q{i}" for i in range(100)])
    out = tmp_path / "out.jsonl"
    result = run(server, str(source), "--output", str(out), "--max-concurrency", "4")
    assert result.returncode == 1, result.stderr
    assert "stopped early" in result.stderr and "quota" in result.stderr.lower()
    assert "run the same command to send the rest" in result.stderr
    assert len(server.requests) <= 30 + 4
    first = set(written(out))
    assert len(first) == 30
    server.faults.clear()
    server.requests.clear()
    again = run(server, str(source), "--output", str(out), "-q")
    assert again.returncode == 0, again.stderr
    assert not set(request_ids(server.requests.snapshot())) & first
    assert written(out, tmp_path / "out.errors.jsonl") == Counter({f"q{i}": 1 for i in range(100)})


def test_invalid_lines_are_listed_with_their_numbers_and_nothing_is_sent(server: LocalServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ["a", "b", "a"])
    with source.open("a") as handle:
        handle.write('{"custom_id": "z", "url": "/v1/audio", "body": {}}\n')
    result = run(server, str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert "line 3 ('a'): duplicate custom_id 'a' (first on line 1)" in result.stderr
    assert "line 4 ('z'): url must be" in result.stderr and "--skip-invalid" in result.stderr
    assert len(server.requests) == 0
    skipped = run(server, str(source), "--output", str(tmp_path / "out.jsonl"), "--skip-invalid")
    assert skipped.returncode == 0 and "2 invalid or duplicate lines" in skipped.stderr
    assert Counter(request_ids(server.requests.snapshot())) == Counter({"a": 1, "b": 1})


def test_a_dry_run_counts_and_checks_but_sends_and_creates_nothing(server: LocalServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ["a", "b", "c"])
    out = tmp_path / "out.jsonl"
    result = run(server, str(source), "--output", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "3 lines; 3 to send, 0 already done" in result.stdout and f"model {MODEL}: 3" in result.stdout
    assert len(server.requests) == 0 and not out.exists() and not (tmp_path / "out.errors.jsonl").exists()
    with source.open("a") as handle:
        handle.write("nope\n")
    assert run(server, str(source), "--output", str(out), "--dry-run").returncode == 2


def test_failed_lines_exit_6_and_the_key_is_never_shown(server: LocalServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ["ok"])
    with source.open("a") as handle:
        body = {"model": "no/such-model", "messages": [{"role": "user", "content": "cid=bad"}]}
        handle.write(json.dumps({"custom_id": "bad", "url": "/chat/completions", "body": body}) + "\n")
    out = tmp_path / "out.jsonl"
    result = subprocess.run(
        command(str(source), "--output", str(out), "--api-key", KEY),
        capture_output=True,
        text=True,
        env={**env_for(server), "WANDB_API_KEY": ""},
        timeout=60,
    )
    assert result.returncode == 6, result.stderr
    assert "1 succeeded, 1 failed" in result.stderr
    errors = tmp_path / "out.errors.jsonl"
    for text in (result.stdout, result.stderr, out.read_text(), errors.read_text()):
        assert KEY not in text
    (line,) = [json.loads(raw) for raw in errors.read_text().splitlines()]
    assert line["custom_id"] == "bad" and line["response"]["status_code"] == 404


def test_an_unreachable_service_exits_4_without_failing_the_lines(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = write_input(tmp_path / "in.jsonl", [f"u{i}" for i in range(50)])
    result = run(
        None,
        str(source),
        "--output",
        str(tmp_path / "out.jsonl"),
        "--max-retries",
        "0",
        "--max-concurrency",
        "4",
        base_url=f"http://127.0.0.1:{port}/v1",
    )
    assert result.returncode == 4, result.stderr
    assert "stopped early" in result.stderr
    assert sum(written(tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl").values()) == 0


def test_a_second_job_on_the_same_output_is_refused(server: LocalServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", ["a"])
    out = tmp_path / "out.jsonl"
    with out.open("a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running job holds it
        result = run(server, str(source), "--output", str(out))
    assert result.returncode == 3
    assert "another batch job is writing to" in result.stderr and len(server.requests) == 0


def test_a_terminal_shows_a_progress_bar(tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [f"p{i}" for i in range(60)])
    with LocalServer(api_key=KEY, pace=0.02, concurrency_limits={MODEL: 2}) as slow:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.environ.clear()
            os.environ.update(env_for(slow))
            os.execv(sys.executable, command(str(source), "--output", str(tmp_path / "out.jsonl")))
        screen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = screen.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "━" in text and "60/60" in text  # rich's bar and done/total
    assert re.search(r"\d+\.\d/s", text) and "429s" in text and "tok " in text
    assert "batch: 60 requests in" in text and "latency p50" in text
