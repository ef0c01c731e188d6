"""Batch jobs: throughput against the concurrency oracle, memory, and the Ray path.

    python benchmarks/batch.py                 # 10,000 requests, limit 8, ~6 minutes
    python benchmarks/batch.py --quick         # 2,000 requests
    python benchmarks/batch.py --rss 1000000   # peak RSS of a 1,000,000-line job (dry run, real run)

The local server runs in its own process with a per-model concurrency limit (LIMIT
requests in flight; more get the service's 429) and a pace that makes each request take
~50 ms, so the limit, not the CPU, bounds throughput. Every scenario runs in a fresh
process (its peak RSS is its own) on the same input file and checks its output: every
`custom_id` exactly once.

- `raw-exact`: the oracle: hand-written httpx + a semaphore of exactly LIMIT, results
  appended as JSONL (not resumable, no retries: told the limit, it needs none).
- `sdk-exact`: `AsyncClient(max_concurrency=LIMIT).batch.run(max_concurrency=LIMIT)`.
- `sdk-adaptive`: `AsyncClient().batch.run(max_concurrency=64)`: not told the limit;
  the client's gate finds it from the 429s.
- `sync-adaptive`: the same on `Client` (64 threads).
- `ray`: `RayBatchProcessor` on a local Ray instance (2 CPUs), 2 actors with
  `max_concurrency=32` each: read_text -> map_batches -> write_parquet (wall time from
  `ray.init` to the files written, and without the start-up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
KEY = "bench-key"
LIMIT = 8
PACE = 0.01  # seconds per token: 5 tokens -> ~50 ms a request
MAX_TOKENS = 5


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_input(path: Path, n: int) -> None:
    with path.open("w") as handle:
        for i in range(n):
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"item {i}"}], "max_tokens": MAX_TOKENS}
            handle.write(
                json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": body})
            )
            handle.write("\n")


def check_output(path: Path, n: int) -> str:
    counts: Counter[str] = Counter()
    if path.is_dir():  # Ray's Parquet files
        import pyarrow.parquet as pq

        table = pq.read_table(str(path), columns=["custom_id", "error"])
        counts.update(table.column("custom_id").to_pylist())
        failed = sum(1 for e in table.column("error").to_pylist() if e is not None)
    else:
        failed = 0
        with path.open() as handle:
            for line in handle:
                record = json.loads(line)
                counts[record["custom_id"]] += 1
                failed += record.get("error") is not None
    once = len(counts) == n and max(counts.values()) == 1
    return "ok" if once and not failed else f"BAD: {len(counts)} ids, max {max(counts.values())}x, {failed} failed"


# --------------------------------------------------------------------------- scenarios (child)


async def _raw(url: str, source: Path, out: Path) -> dict[str, Any]:
    import httpx

    gate = asyncio.Semaphore(LIMIT)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=200)) as http:
        with source.open() as lines, out.open("a") as results:

            async def one(line: dict[str, Any]) -> None:
                try:
                    r = await http.post(url + "/chat/completions", json=line["body"], headers=headers)
                    record = {
                        "id": "batch_req_x",
                        "custom_id": line["custom_id"],
                        "response": {"status_code": r.status_code, "request_id": None, "body": r.json()},
                        "error": None if r.is_success else {"code": str(r.status_code), "message": r.text},
                    }
                    results.write(json.dumps(record) + "\n")
                    results.flush()
                finally:
                    gate.release()

            async with asyncio.TaskGroup() as tg:
                for raw in lines:
                    await gate.acquire()
                    tg.create_task(one(json.loads(raw)))
    return {}


def child(scenario: str, url: str, source: Path, out: Path) -> dict[str, Any]:
    import wandb_inference as wi

    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if scenario == "raw-exact":
        asyncio.run(_raw(url, source, out))
    elif scenario in ("sdk-exact", "sdk-adaptive"):
        exact = scenario == "sdk-exact"

        async def main() -> wi.BatchSummary:
            options = {"max_concurrency": LIMIT} if exact else {}
            async with wi.AsyncClient(KEY, base_url=url, max_retries=8, **options) as client:
                return await client.batch.run(source, out, max_concurrency=LIMIT if exact else 64)

        summary = asyncio.run(main())
        extra = {"rate_limited": summary.rate_limited, "requeued": summary.requeued}
    elif scenario == "sync-adaptive":
        with wi.Client(KEY, base_url=url, max_retries=8) as sync_client:
            summary = sync_client.batch.run(source, out, max_concurrency=64)
        extra = {"rate_limited": summary.rate_limited, "requeued": summary.requeued}
    elif scenario == "check":
        check = wi.Client(KEY).batch.check(source, out)
        extra = {"to_send": check.to_send}
    elif scenario == "ray":
        import ray
        import ray.data

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        ready = time.perf_counter()
        ray.data.read_text(str(source)).map_batches(
            wi.RayBatchProcessor,
            fn_constructor_kwargs={
                "api_key": KEY,
                "base_url": url,
                "max_concurrency": 32,
                "client_options": {"max_retries": 8},
            },
            compute=ray.data.ActorPoolStrategy(size=2),
            num_cpus=0.5,
            batch_size=256,
        ).write_parquet(str(out))
        extra = {"pipeline_s": time.perf_counter() - ready}
        ray.shutdown()
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    return {"wall_s": time.perf_counter() - start, "rss_mb": _rss_mb(), **extra}


# --------------------------------------------------------------------------- driver


def start_server(limit: int | None, pace: float) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    limits = {MODEL: limit} if limit else None
    code = (
        "import threading\nfrom wandb_inference.server import LocalServer\n"
        f"with LocalServer(port={port}, concurrency_limits={limits!r}, pace={pace}):\n"
        "    print('ready', flush=True); threading.Event().wait()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        raise SystemExit("the local server did not start (is the [server] extra installed?)")
    return proc, f"http://127.0.0.1:{port}/v1"


def run_child(scenario: str, url: str, source: Path, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", scenario, url, str(source), str(out)],
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def throughput(n: int, quick: bool, workdir: Path) -> None:
    source = workdir / "in.jsonl"
    write_input(source, n)
    server, url = start_server(LIMIT, PACE)
    rows = []
    try:
        for scenario in ("raw-exact", "sdk-exact", "sdk-adaptive", "sync-adaptive", "ray"):
            out = workdir / f"{scenario}.{'parquet' if scenario == 'ray' else 'jsonl'}"
            result = run_child(scenario, url, source, out)
            result["check"] = check_output(out, n) if "error" not in result else result["error"]
            rows.append((scenario, result))
            print(scenario, json.dumps(result), flush=True)
    finally:
        server.kill()
        server.wait()
    oracle = rows[0][1].get("wall_s")
    print(f"\n{n:,} requests, server limit {LIMIT} in flight, ~{PACE * MAX_TOKENS * 1000:.0f} ms a request")
    print("| scenario | wall s | req/s | vs oracle (raw httpx, exact limit) | 429s | requeued | peak RSS MB | output |")
    print("|---|---|---|---|---|---|---|---|")
    for scenario, r in rows:
        wall = r.get("pipeline_s", r.get("wall_s"))
        if wall is None:
            print(f"| {scenario} | error: {r.get('error')} |")
            continue
        ratio = f"{oracle / wall:.2f}" if oracle else "-"
        note = f" ({r['wall_s']:.1f} with Ray start-up)" if "pipeline_s" in r else ""
        print(
            f"| {scenario} | {wall:.1f}{note} | {n / wall:.0f} | {ratio} | {r.get('rate_limited', '-')} | "
            f"{r.get('requeued', '-')} | {r['rss_mb']:.0f} | {r['check']} |"
        )


def rss(n: int, workdir: Path) -> None:
    source = workdir / "big.jsonl"
    write_input(source, n)
    size = source.stat().st_size / 1e6
    print(f"input: {n:,} lines, {size:.0f} MB", flush=True)
    result = run_child("check", "http://127.0.0.1:9/v1", source, workdir / "none.jsonl")
    print("dry run (check):", json.dumps(result), flush=True)
    server, url = start_server(None, 0.0)
    try:
        out = workdir / "big-out.jsonl"
        result = run_child("sdk-adaptive", url, source, out)
        result["check"] = check_output(out, n) if "error" not in result else result["error"]
        print("real run (AsyncClient.batch.run, max_concurrency=64):", json.dumps(result), flush=True)
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 requests instead of 10,000")
    parser.add_argument("--rss", type=int, metavar="LINES", help="measure peak RSS on a job of this many lines")
    parser.add_argument("--child", nargs=4, metavar=("SCENARIO", "URL", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help="where to write the files (default: a temporary directory)")
    args = parser.parse_args()
    if args.child:
        scenario, url, source, out = args.child
        print(json.dumps(child(scenario, url, Path(source), Path(out))))
        return
    import tempfile

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        if args.rss:
            rss(args.rss, workdir)
        else:
            throughput(2_000 if args.quick else 10_000, args.quick, workdir)


if __name__ == "__main__":
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    main()
