"""The Ray Data path on a local Ray instance (2 CPUs, no network beyond loopback): the same
batch lines as a Dataset through `RayBatchProcessor`, against the local server with a
concurrency limit; Parquet out and back. Skipped only when the `ray` extra is absent."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wandb_inference as wi
from wandb_inference.server import LocalServer

ray = pytest.importorskip("ray")
ray_data = pytest.importorskip("ray.data")
pytestmark = [
    pytest.mark.slow,  # ~15 s: starting Ray dominates
    # Ray's own modules warn about Ray's own deprecated settings when they start.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
]

KEY = "ray-secret-key-777"
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
LIMIT = 3


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray_data.DataContext.get_current()
    context.enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()


def line(custom_id: str, model: str = MODEL) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": f"cid={custom_id}"}], "max_tokens": 3}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def test_a_dataset_of_batch_lines_runs_across_actors_with_errors_as_columns(local_ray: None, tmp_path: Path) -> None:
    lines = [line(f"r{i}") for i in range(120)]
    lines.append(line("gone", model="no/such-model"))
    lines.append('{"custom_id": "broken", "url": "/v1/chat/completions"}')
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(lines) + "\n")
    with LocalServer(api_key=KEY, concurrency_limits={MODEL: LIMIT}, pace=0.005) as server:
        ds = ray_data.read_text(str(source))
        out = ds.map_batches(
            wi.RayBatchProcessor,
            fn_constructor_kwargs={"api_key": KEY, "base_url": server.base_url, "max_concurrency": 8},
            compute=ray_data.ActorPoolStrategy(size=2),
            num_cpus=0.5,  # the actors wait on the network: leave CPUs to reading and writing
            batch_size=16,
        )
        out.write_parquet(str(tmp_path / "results"))
        log = server.requests.snapshot()
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = pq.read_table(str(tmp_path / "results")).to_pylist()
    by_id = {row["custom_id"]: row for row in rows}
    assert len(rows) == len(by_id) == 122
    ok = [row for row in rows if row["error"] is None]
    assert len(ok) == 120
    for row in ok:
        assert row["status_code"] == 200 and row["text"] and row["request_id"]
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] == 3
        assert json.loads(row["response"])["object"] == "chat.completion"
    assert by_id["gone"]["status_code"] == 404 and by_id["gone"]["error_code"] == "model_not_found"
    assert by_id["broken"]["error_code"] == "invalid_request" and "body" in by_id["broken"]["error"]
    # Several requests in flight per batch; the server's limit was met (429s) and absorbed
    # by the clients' retries and gates: every row succeeded, none was answered twice.
    answered = Counter(json.loads(r.content)["messages"][0]["content"] for r in log if r.status == 200)
    assert len(answered) == 120 and max(answered.values()) == 1
    refused = sum(1 for r in log if r.status == 429)
    assert refused > 0  # more than the limit were in flight at once: the gates took it back
    assert len(log) == 121 + refused  # every row once ("broken" was never sent), plus the refusals
    assert KEY not in json.dumps(rows)


def test_rows_with_custom_id_and_body_columns(local_ray: None) -> None:
    items = [
        {
            "custom_id": f"b{i}",
            "tag": i,
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"cid=b{i}"}]},
        }
        for i in range(6)
    ]
    with LocalServer(api_key=KEY) as server:
        rows = (
            ray_data.from_items(items)
            .map_batches(
                wi.RayBatchProcessor,
                fn_constructor_kwargs={"api_key": KEY, "base_url": server.base_url},
                compute=ray_data.ActorPoolStrategy(size=1),
                num_cpus=0.5,
                batch_size=4,
            )
            .take_all()
        )
    by_id = {row["custom_id"]: row for row in rows}
    assert sorted(by_id) == [f"b{i}" for i in range(6)]
    assert all(by_id[f"b{i}"]["text"] and by_id[f"b{i}"]["tag"] == i for i in range(6))  # other columns kept
    assert "body" not in rows[0]


async def test_the_processor_takes_columns_of_json_text_without_ray() -> None:
    """What Ray hands over: dicts of columns (numpy arrays, lists), pandas or pyarrow."""
    import numpy as np

    with LocalServer(api_key=KEY) as server:
        processor = wi.RayBatchProcessor(api_key=KEY, base_url=server.base_url, max_concurrency=2)
        body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "cid=j"}]})
        try:
            table = await processor({"custom_id": np.array(["j", "k"]), "body": np.array([body, '{"model": "m"}'])})
        finally:
            await processor.aclose()
    out = table.to_pydict()
    assert out["custom_id"] == ["j", "k"] and out["status_code"][0] == 200 and out["text"][0]
    assert out["error"][0] is None and out["error_code"][1] == "invalid_request"
    assert set(out) >= {"response", "prompt_tokens", "completion_tokens", "request_id", "latency_s"}
