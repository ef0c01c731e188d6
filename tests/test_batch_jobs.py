"""Batch jobs against the local server (real sockets), on both clients: files and
in-memory requests, resumes, failures, requeues, job errors, stopping, fsync cadence."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import wandb_inference as wi
from wandb_inference.server import Fault, LocalServer

KEY = "batch-secret-key-4242"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
CHAT = "/v1/chat/completions"
BUSY = "openai/gpt-oss-20b"
ID_IN_PROMPT = re.compile(r"cid=([\w-]+)")


class Sleeps:
    """The client's retry waits, not really waited (the dispatcher's own waits are real)."""

    def __init__(self) -> None:
        self.count = 0

    def sync(self, seconds: float) -> None:
        self.count += 1

    async def async_(self, seconds: float) -> None:
        self.count += 1
        await anyio.lowlevel.checkpoint()


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


def request_line(custom_id: str, model: str = MODEL, **body: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": f"cid={custom_id}"}], "max_tokens": 4, **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def write_input(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def sent(server: LocalServer) -> Counter[str]:
    """custom_id -> requests the server received for it (any outcome)."""
    counts: Counter[str] = Counter()
    for record in server.requests:
        body = record.body if isinstance(record.body, dict) else {}
        text = json.dumps(body.get("messages") or body.get("input"))
        match = ID_IN_PROMPT.search(text)
        if match:
            counts[match.group(1)] += 1
    return counts


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def ids_in(*paths: Path) -> Counter[str]:
    return Counter(line["custom_id"] for path in paths for line in read_lines(path))


class Runner:
    """Runs a file job or a stream on the parametrized client colour."""

    summary: wi.BatchSummary
    got: list[wi.BatchResult]

    def __init__(self, kind: str, server: LocalServer | None, **options: Any) -> None:
        self.kind = kind
        self.sleeps = Sleeps()
        options.setdefault("api_key", KEY)
        if server is not None:
            options.setdefault("base_url", server.base_url)
        self.options = options

    async def run(self, *args: Any, **kwargs: Any) -> wi.BatchSummary:
        if self.kind == "async":
            async with wi.AsyncClient(sleep=self.sleeps.async_, **self.options) as client:
                return await client.batch.run(*args, **kwargs)
        with wi.Client(sleep=self.sleeps.sync, **self.options) as sync_client:
            return sync_client.batch.run(*args, **kwargs)

    async def stream(self, requests: Any, stop_after: int | None = None, **kwargs: Any) -> list[wi.BatchResult]:
        got = self.got = []
        if self.kind == "async":
            async with (
                wi.AsyncClient(sleep=self.sleeps.async_, **self.options) as client,
                client.batch.stream(requests, **kwargs) as results,
            ):
                try:
                    async for result in results:
                        got.append(result)
                        if stop_after is not None and len(got) >= stop_after:
                            break
                finally:
                    self.summary = results.summary
            return got
        with (
            wi.Client(sleep=self.sleeps.sync, **self.options) as sync_client,
            sync_client.batch.stream(requests, **kwargs) as sync_results,
        ):
            try:
                for result in sync_results:
                    got.append(result)
                    if stop_after is not None and len(got) >= stop_after:
                        break
            finally:
                self.summary = sync_results.summary
        return got


# --------------------------------------------------------------------------- files


async def test_a_job_writes_each_result_once_in_openai_s_format(kind: str, server: LocalServer, tmp_path: Path) -> None:
    lines = [request_line(f"c{i}") for i in range(30)]
    lines.append({"custom_id": "e1", "url": "/embeddings", "body": {"model": "BAAI/bge-m3", "input": ["a", "b"]}})
    source = write_input(tmp_path / "in.jsonl", lines)
    out, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    summary = await Runner(kind, server).run(source, out, max_concurrency=8)

    assert summary.ok and (summary.total, summary.succeeded, summary.failed) == (31, 31, 0)
    assert summary.prompt_tokens > 0 and summary.completion_tokens == 30 * 4
    assert summary.p50_latency is not None and summary.p95_latency is not None
    written = read_lines(out)
    assert Counter(line["custom_id"] for line in written) == Counter({line["custom_id"]: 1 for line in lines})
    assert read_lines(errors) == []
    server_ids = {record.request_id for record in server.requests}
    assert len(server.requests) == 31  # one request per line, nothing twice
    for line in written:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["id"].startswith("batch_req_") and line["error"] is None
        response = line["response"]
        assert set(response) == {"status_code", "request_id", "body"}
        assert response["status_code"] == 200 and response["request_id"] in server_ids
        if line["custom_id"] == "e1":
            vectors = [item["embedding"] for item in response["body"]["data"]]
            assert len(vectors) == 2 and all(isinstance(x, float) for x in vectors[0])
        else:
            assert response["body"]["object"] == "chat.completion"
            assert response["body"]["choices"][0]["message"]["content"]
    assert KEY not in out.read_text()


async def test_running_it_again_sends_nothing(kind: str, server: LocalServer, tmp_path: Path) -> None:
    source = write_input(tmp_path / "in.jsonl", [request_line(f"c{i}") for i in range(12)])
    runner = Runner(kind, server)
    await runner.run(source, tmp_path / "out.jsonl")
    server.requests.clear()
    again = await runner.run(source, tmp_path / "out.jsonl")
    assert len(server.requests) == 0
    assert (again.done_before, again.succeeded, again.total) == (12, 0, 0) and again.ok
    assert ids_in(tmp_path / "out.jsonl") == Counter({f"c{i}": 1 for i in range(12)})


async def test_invalid_lines_stop_the_job_before_anything_is_sent(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    lines = [request_line("a"), request_line("b", temperature=7), request_line("a"), request_line("c")]
    source = write_input(tmp_path / "in.jsonl", lines)
    with (tmp_path / "in.jsonl").open("a") as handle:
        handle.write("{broken\n")
    runner = Runner(kind, server)
    with pytest.raises(wi.BatchFileError) as info:
        await runner.run(source, tmp_path / "out.jsonl")
    assert [(line, cid) for line, cid, _ in info.value.problems] == [(2, "b"), (3, "a"), (5, None)]
    message = str(info.value)
    assert (
        "line 2 ('b'): temperature" in message and "line 3 ('a'): duplicate custom_id 'a' (first on line 1)" in message
    )
    assert len(server.requests) == 0

    summary = await runner.run(source, tmp_path / "out.jsonl", skip_invalid=True)
    assert (summary.succeeded, summary.invalid) == (2, 3)
    assert sent(server) == Counter({"a": 1, "c": 1})  # the first "a" only


async def test_failed_lines_go_to_the_errors_file_with_the_error_response(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    server.faults.push(Fault.status(500), times=None, model="flaky/model")
    lines = [
        request_line("ok1"),
        request_line("gone", model="no/such-model"),
        request_line("boom", model="flaky/model"),
    ]
    source = write_input(tmp_path / "in.jsonl", lines)
    runner = Runner(kind, server)
    summary = await runner.run(source, tmp_path / "out.jsonl")
    assert (summary.succeeded, summary.failed, summary.stopped) == (1, 2, None) and not summary.ok
    failures = {line["custom_id"]: line for line in read_lines(tmp_path / "out.errors.jsonl")}
    assert set(failures) == {"gone", "boom"}
    gone = failures["gone"]
    assert gone["response"]["status_code"] == 404 and gone["error"]["code"] == "model_not_found"
    assert gone["response"]["body"]["error"]["message"].startswith("model not found")
    assert failures["boom"]["response"]["status_code"] == 500 and failures["boom"]["error"]["code"]
    assert sent(server)["boom"] == 4  # the client's own retries: 1 + 3, then written as failed
    assert ids_in(tmp_path / "out.jsonl") == Counter({"ok1": 1})
    server.requests.clear()
    retried = await runner.run(source, tmp_path / "out.jsonl", retry_errors=True)
    assert retried.failed == 2 and set(sent(server)) == {"gone", "boom"}
    assert (tmp_path / "out.errors.jsonl.retried").exists()
    assert ids_in(tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl") == Counter({"ok1": 1, "gone": 1, "boom": 1})


async def test_concurrency_refusals_past_the_client_s_retries_are_requeued(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    server.faults.push(Fault.status(429, kind="concurrency"), times=5, model=BUSY)
    lines = [request_line("busy", model=BUSY), request_line("calm")]
    source = write_input(tmp_path / "in.jsonl", lines)
    summary = await Runner(kind, server).run(source, tmp_path / "out.jsonl")
    # 4 attempts refused (1 + 3 retries), requeued, refused once more, then answered.
    assert (summary.succeeded, summary.failed, summary.requeued) == (2, 0, 1)
    assert summary.rate_limited == 5 == sum(1 for r in server.requests if r.status == 429)
    assert sent(server) == Counter({"busy": 6, "calm": 1})
    assert ids_in(tmp_path / "out.jsonl") == Counter({"busy": 1, "calm": 1})


async def test_a_quota_error_stops_the_job_and_the_same_run_finishes_it_later(
    kind: str, server: LocalServer, tmp_path: Path
) -> None:
    server.faults.push(Fault.stall(0.0), times=15)  # the first 15 requests go through
    server.faults.push(Fault.status(402), times=None)  # then the credits run out
    source = write_input(tmp_path / "in.jsonl", [request_line(f"q{i}") for i in range(60)])
    out, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    runner = Runner(kind, server)
    summary = await runner.run(source, out, max_concurrency=4)
    assert summary.stopped == "error" and isinstance(summary.error, wi.QuotaExceededError)
    assert summary.succeeded == 15 and summary.failed == 0 and summary.not_sent == 45
    refused = [r for r in server.requests if r.status == 402]
    assert 1 <= len(refused) <= 4  # only what was in flight when the first 402 came back
    assert len(server.requests) <= 15 + 4
    assert read_lines(errors) == []  # a job error is not the line's: nothing written for it
    done_first = set(ids_in(out))

    server.faults.clear()
    server.requests.clear()
    finished = await runner.run(source, out, max_concurrency=4)
    assert finished.ok and finished.done_before == 15 and finished.succeeded == 45
    assert not set(sent(server)) & done_first  # nothing written was sent again
    assert ids_in(out, errors) == Counter({f"q{i}": 1 for i in range(60)})


async def test_a_personal_account_s_429_stops_the_job(kind: str, tmp_path: Path) -> None:
    with LocalServer(api_key=KEY, projects={"team/project"}) as strict:
        source = write_input(tmp_path / "in.jsonl", [request_line(f"p{i}") for i in range(20)])
        summary = await Runner(kind, strict).run(source, tmp_path / "out.jsonl", max_concurrency=2)
        assert isinstance(summary.error, wi.PersonalAccountError) and summary.not_sent == 20
        assert len(strict.requests) <= 2
        assert read_lines(tmp_path / "out.jsonl") == read_lines(tmp_path / "out.errors.jsonl") == []


async def test_an_unreachable_service_stops_the_job_instead_of_failing_every_line(kind: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    source = write_input(tmp_path / "in.jsonl", [request_line(f"u{i}") for i in range(200)])
    runner = Runner(kind, None, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    started = time.monotonic()
    summary = await runner.run(source, tmp_path / "out.jsonl", max_concurrency=4)
    assert time.monotonic() - started < 20
    assert summary.stopped == "error" and isinstance(summary.error, wi.APIConnectionError)
    assert summary.not_sent == 200 and read_lines(tmp_path / "out.errors.jsonl") == []


async def test_the_429s_the_client_absorbed_are_counted_exactly(kind: str, tmp_path: Path) -> None:
    with LocalServer(api_key=KEY, concurrency_limits={MODEL: 2}, pace=0.003) as limited:
        source = write_input(tmp_path / "in.jsonl", [request_line(f"l{i}") for i in range(40)])
        summary = await Runner(kind, limited, max_retries=8).run(source, tmp_path / "out.jsonl", max_concurrency=12)
        refused = sum(1 for r in limited.requests if r.status == 429)
        assert summary.ok and summary.succeeded == 40
        assert refused > 0 and summary.rate_limited == refused
        assert ids_in(tmp_path / "out.jsonl") == Counter({f"l{i}": 1 for i in range(40)})


async def test_the_model_override_applies_to_every_line(kind: str, server: LocalServer, tmp_path: Path) -> None:
    lines = [
        request_line("m0"),
        {"custom_id": "m1", "url": CHAT, "body": {"messages": [{"role": "user", "content": "x"}]}},
    ]
    source = write_input(tmp_path / "in.jsonl", lines)
    summary = await Runner(kind, server).run(source, tmp_path / "out.jsonl", model=BUSY)
    assert summary.ok and [r.model for r in server.requests] == [BUSY, BUSY]


def test_stopping_a_sync_job_lets_the_requests_in_flight_finish_and_be_written(tmp_path: Path) -> None:
    with LocalServer(api_key=KEY, pace=0.05) as slow:
        source = write_input(tmp_path / "in.jsonl", [request_line(f"s{i}") for i in range(100)])
        control = wi.BatchControl()
        threading.Timer(0.6, control.stop).start()
        with wi.Client(api_key=KEY, base_url=slow.base_url) as client:
            summary = client.batch.run(source, tmp_path / "out.jsonl", max_concurrency=4, control=control)
        assert summary.stopped == "interrupted" and 0 < summary.succeeded < 100
        answered = [r for r in slow.requests if r.status == 200]
        assert len(answered) == len(read_lines(tmp_path / "out.jsonl")) == summary.succeeded


async def test_stopping_and_cancelling_an_async_job(tmp_path: Path) -> None:
    with LocalServer(api_key=KEY, pace=0.05) as slow:
        source = write_input(tmp_path / "in.jsonl", [request_line(f"s{i}") for i in range(100)])
        async with wi.AsyncClient(api_key=KEY, base_url=slow.base_url) as client:
            control = wi.BatchControl()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _later(0.6, control.stop))
                summary = await client.batch.run(source, tmp_path / "out.jsonl", max_concurrency=4, control=control)
            assert summary.stopped == "interrupted" and 0 < summary.succeeded < 100
            assert len([r for r in slow.requests if r.status == 200]) == summary.succeeded

            slow.requests.clear()
            control = wi.BatchControl()
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: _later(0.6, control.cancel))
                cancelled = await client.batch.run(source, tmp_path / "out.jsonl", max_concurrency=4, control=control)
            assert cancelled.stopped == "cancelled"
            # The cancelled requests were sent but their results not written: a re-run sends them.
            assert cancelled.succeeded < len(slow.requests)
            slow.requests.clear()
            final = await client.batch.run(source, tmp_path / "out.jsonl", max_concurrency=8)
            assert final.ok
    assert ids_in(tmp_path / "out.jsonl") == Counter({f"s{i}": 1 for i in range(100)})


async def _later(seconds: float, action: Any) -> None:
    await anyio.sleep(seconds)
    action()


async def test_results_reach_the_disk_within_about_a_second(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsync at least once a second while lines are being written (not only at the end)."""
    syncs: list[tuple[float, int]] = []
    real_fsync = os.fsync

    def watched(fd: int) -> None:
        syncs.append((time.monotonic(), os.fstat(fd).st_size))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watched)
    out = tmp_path / "out.jsonl"
    samples: list[tuple[float, int]] = []
    running = True

    def watch() -> None:
        while running:
            samples.append((time.monotonic(), out.stat().st_size if out.exists() else 0))
            time.sleep(0.02)

    with LocalServer(api_key=KEY, pace=0.02) as slow:
        source = write_input(tmp_path / "in.jsonl", [request_line(f"f{i}") for i in range(60)])
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            summary = await Runner(kind, slow).run(source, out, max_concurrency=2)
        finally:
            running = False
            watcher.join()
    assert summary.ok and summary.wall_time > 2.5
    end = time.monotonic()
    checked = 0
    for when, size in samples:
        if size and when < end - 1.5:
            checked += 1
            assert any(t <= when + 1.3 and synced >= size for t, synced in syncs), (when, size)
    assert checked > 20


# --------------------------------------------------------------------------- in memory


async def test_in_memory_requests_come_back_typed_as_they_finish(kind: str, server: LocalServer) -> None:
    requests: list[Any] = [request_line(f"r{i}") for i in range(10)]
    requests.append(wi.BatchRequest.chat("typed", model=MODEL, messages=[{"role": "user", "content": "cid=typed"}]))
    requests.append(wi.BatchRequest.embeddings("vec", model="BAAI/bge-m3", input="cid=vec"))
    requests.append({"custom_id": "broken", "url": CHAT, "body": {"model": MODEL}})
    requests.append(request_line("r3"))  # repeated
    results = await Runner(kind, server).stream(requests, max_concurrency=4)
    by_id: dict[str, list[wi.BatchResult]] = {}
    for result in results:
        by_id.setdefault(result.custom_id, []).append(result)
    assert sorted(by_id) == sorted([f"r{i}" for i in range(10)] + ["typed", "vec", "broken"])
    assert isinstance(by_id["r0"][0].response, wi.ChatCompletion) and by_id["r0"][0].response.text
    assert isinstance(by_id["vec"][0].response, wi.EmbeddingResponse)
    assert by_id["typed"][0].ok and by_id["typed"][0].request_id
    (broken,) = by_id["broken"]
    assert isinstance(broken.error, wi.InvalidRequestError) and broken.line == 13
    first, again = sorted(by_id["r3"], key=lambda result: result.line or 0)  # completion order otherwise
    assert first.ok and isinstance(again.error, wi.InvalidRequestError) and "duplicate" in str(again.error)
    assert len(server.requests) == 12  # the invalid and the repeated one were not sent
    assert sum(sent(server).values()) == 12


async def test_an_async_iterable_is_read_as_it_goes(server: LocalServer) -> None:
    produced = 0

    async def produce() -> AsyncIterator[dict[str, Any]]:
        nonlocal produced
        for i in range(30):
            produced += 1
            yield request_line(f"g{i}")

    async with (
        wi.AsyncClient(api_key=KEY, base_url=server.base_url) as client,
        client.batch.stream(produce(), max_concurrency=2) as results,
    ):
        first = await anext(results)
        assert first.ok and produced < 30  # not drained up front
        rest = [result async for result in results]
    assert len(rest) == 29 and results.summary.succeeded == 30


async def test_leaving_a_stream_early_stops_sending(kind: str, tmp_path: Path) -> None:
    with LocalServer(api_key=KEY, pace=0.02) as slow:
        runner = Runner(kind, slow)
        results = await runner.stream([request_line(f"x{i}") for i in range(200)], stop_after=3, max_concurrency=4)
        assert len(results) == 3
        await anyio.sleep(0.3)
        received = len(slow.requests)
        assert received < 20
        await anyio.sleep(0.3)
        assert len(slow.requests) == received  # nothing more after leaving


async def test_a_job_error_ends_a_stream_by_raising_it(kind: str, server: LocalServer) -> None:
    server.faults.push(Fault.stall(0.0), times=5)
    server.faults.push(Fault.status(402), times=None)
    runner = Runner(kind, server)
    with pytest.raises(wi.QuotaExceededError):
        await runner.stream([request_line(f"q{i}") for i in range(40)], max_concurrency=2)
    # Everything that succeeded was yielded before the error was raised.
    assert len(runner.got) == runner.summary.succeeded == 5 and all(r.ok for r in runner.got)
    assert runner.summary.stopped == "error" and runner.summary.not_sent >= 33
    assert len(server.requests) <= 5 + 2


def test_ctrl_c_in_a_sync_run_drains_then_raises_keyboard_interrupt(tmp_path: Path) -> None:
    """Python code (not the CLI): the first Ctrl-C stops sending, the requests in flight are
    written, then `KeyboardInterrupt` propagates as Python code expects."""
    import signal
    import subprocess
    import sys

    source = write_input(tmp_path / "in.jsonl", [request_line(f"k{i}") for i in range(200)])
    out = tmp_path / "out.jsonl"
    script = (
        "import signal, sys, wandb_inference as wi\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "client = wi.Client(api_key=sys.argv[1], base_url=sys.argv[2])\n"
        "try:\n"
        "    client.batch.run(sys.argv[3], sys.argv[4], max_concurrency=4)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    with LocalServer(api_key=KEY, pace=0.03) as slow:
        proc = subprocess.Popen(
            [sys.executable, "-c", script, KEY, slow.base_url, str(source), str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while len(slow.requests) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        answered = [r for r in slow.requests if r.status == 200]
    assert stdout.strip() == "interrupted", stderr
    assert 10 <= len(answered) == len(read_lines(out)) < 200  # in flight: written; then stopped
