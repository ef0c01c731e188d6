"""Adaptive concurrency against a service that limits requests in flight: the SDK's
defaults against an "oracle" told the exact limit.

    python benchmarks/concurrency.py [--quick] [--out benchmarks/report]

The local server runs in its own process with a per-model limit L (more requests in
flight get the service's concurrency 429 at once) and a fixed service time per request.
Each scenario runs a batch of calls through `AsyncClient` twice: with the defaults
(adaptive, no `max_concurrency`) and as the oracle (`max_concurrency=L,
adaptive_concurrency=False`), alternately, and compares wall times. Scenarios:

- single: one client, L in 1, 4, 8, 32, 128 and 16 to 256 workers;
- shared: 2, 3 and 4 client processes (one project) sharing L, started together on
  this machine (so they see each other's levels on its board, `_policy/_board.py`; set
  `WANDB_INFERENCE_PEER_DIR=off` to measure clients on different machines); the oracle
  is the same processes, each told its share of L; fairness is the slowest client's
  throughput over the fastest's (each does the same number of calls);
- streams: long streams (holding their slot until closed) mixed with short calls;
- changing limit: L goes 32 -> 8 -> 32 while one client works; the seconds until it
  follows each change, and a chart of requests in flight against the limit; then the
  same with 4 client processes (the seconds until they hold 90% of the raised limit).

Every call must succeed under the default retries; the 429 rate is the refused share
of all requests the server received (the burst at start included; "steady" leaves out
the first second). Writes `concurrency.md`, `concurrency.json` and `concurrency.png`
(with matplotlib) to --out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "x"}]
HERE = Path(__file__).resolve().parent
# Service times keep the local server below this many requests a second, so its own CPU
# (on a small, shared machine) does not decide the throughput of either side.
MAX_RATE = float(os.environ.get("CONCURRENCY_BENCH_MAX_RATE", "150"))


def service_time(limit: int) -> float:
    """50 ms, longer where L / 50 ms would load the local server's CPU."""
    return max(0.05, limit / MAX_RATE)


# --------------------------------------------------------------------------- server


def _server_main(conn: Connection, limit: int, service: float, pace: float) -> None:
    from wandb_inference.server import LocalServer

    samples: list[tuple[float, int, int]] = []
    sampling = threading.Event()

    def sample() -> None:
        while sampling.is_set():
            samples.append((time.monotonic(), srv.in_flight(MODEL), limits[0]))
            time.sleep(0.005)

    limits = [limit]
    with LocalServer(concurrency_limits={MODEL: limit}, service_time=service, pace=pace) as srv:
        conn.send(srv.base_url)
        sampler: threading.Thread | None = None
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "limit":
                limits[0] = arg
                srv.set_concurrency_limit(MODEL, arg)
                conn.send(time.monotonic())
            elif command == "stats":
                statuses = [(r.status, r.received_at) for r in srv.requests if r.path.endswith("/chat/completions")]
                srv.requests.clear()
                conn.send(statuses)
            elif command == "sample":
                samples.clear()
                sampling.set()
                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                conn.send(None)
            elif command == "samples":
                sampling.clear()
                if sampler is not None:
                    sampler.join()
                conn.send(list(samples))


class Server:
    """The local server in a child process, driven over a pipe."""

    def __init__(self, limit: int, service: float, pace: float = 0.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_server_main, args=(child, limit, service, pace), daemon=True)
        self._proc.start()
        self.base_url: str = self._conn.recv()

    def call(self, command: str, arg: Any = None) -> Any:
        self._conn.send((command, arg))
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send(("stop", None))
        self._proc.join(15)
        if self._proc.is_alive():
            self._proc.kill()


# --------------------------------------------------------------------------- clients


@dataclass
class Job:
    """What one client process does: `calls` calls from `workers` tasks."""

    base_url: str
    workers: int
    calls: int
    start_at: float  # time.monotonic() (system-wide) when to begin
    oracle_limit: int | None = None  # max_concurrency=L, adaptive off
    stream_every: int = 0  # every n-th call is a stream of `stream_tokens`
    stream_tokens: int = 0
    trace: bool = False


@dataclass
class Outcome:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    limits: list[tuple[float, float, int]] = field(default_factory=list)  # (t, limit, in flight)


async def _run_job(job: Job) -> Outcome:
    import anyio

    import wandb_inference as wi

    options: dict[str, Any] = {}
    if job.oracle_limit is not None:
        options = {"max_concurrency": job.oracle_limit, "adaptive_concurrency": False}
    out = Outcome()
    async with wi.AsyncClient("bench-key", base_url=job.base_url, **options) as client:
        await client.models.list()  # connect and load what a call needs before timing
        left = job.calls
        counter = 0

        async def one(index: int) -> None:
            if job.stream_every and index % job.stream_every == 0:
                stream = await client.chat.create(
                    model=MODEL,
                    messages=MESSAGES,
                    max_tokens=job.stream_tokens,
                    stream=True,
                    extra_body={"ignore_eos": True},
                )
                async with stream:
                    async for _ in stream:
                        pass
            else:
                await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1)

        async def worker() -> None:
            nonlocal left, counter
            while left > 0:
                left -= 1
                counter += 1
                try:
                    await one(counter)
                    out.ok += 1
                except wi.WandbInferenceError as exc:
                    out.failed += 1
                    if len(out.errors) < 5:
                        out.errors.append(f"{type(exc).__name__}: {exc}"[:300])

        async def tracer() -> None:
            limiter = client._limiter
            while True:
                state = limiter._models.get(MODEL) if limiter is not None else None
                if state is not None:
                    out.limits.append((time.monotonic(), state.limit, state.in_flight))
                await anyio.sleep(0.01)

        delay = job.start_at - time.monotonic()
        if delay > 0:
            await anyio.sleep(delay)
        out.started = time.monotonic()
        async with anyio.create_task_group() as outer:
            if job.trace:
                outer.start_soon(tracer)
            async with anyio.create_task_group() as tg:
                for _ in range(job.workers):
                    tg.start_soon(worker)
            out.ended = time.monotonic()
            outer.cancel_scope.cancel()
    return out


def _client_main(job: Job, queue: Any) -> None:
    import anyio

    queue.put(asdict(anyio.run(_run_job, job)))


def run_clients(jobs: list[Job]) -> list[Outcome]:
    """Run each job in its own process (one job: in this one); return their outcomes."""
    if len(jobs) == 1:
        import anyio

        return [anyio.run(_run_job, jobs[0])]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_client_main, args=(job, queue), daemon=True) for job in jobs]
    for proc in procs:
        proc.start()
    results = [Outcome(**queue.get(timeout=600)) for _ in procs]
    for proc in procs:
        proc.join(30)
    return results


# --------------------------------------------------------------------------- scenarios


def _rates(statuses: list[tuple[int, float]], service: float) -> tuple[float, float]:
    """(429 share of all requests, of those after the start: the first second or three
    service times, whichever is longer)."""
    start = min((t for _, t in statuses), default=0.0)
    refused = sum(1 for s, _ in statuses if s == 429)
    later = [s for s, t in statuses if t >= start + max(1.0, 3 * service)]
    return refused / max(1, len(statuses)), sum(1 for s in later if s == 429) / max(1, len(later))


@dataclass
class Run:
    wall: float
    failed: int
    rate429: float
    steady429: float
    per_client: list[float]
    errors: list[str]


def measure(
    server: Server,
    limit: int,
    workers: int,
    calls: int,
    clients: int = 1,
    oracle: bool = False,
    service: float = 0.0,
    **extra: Any,
) -> Run:
    """One batch: `clients` processes share `calls` (and `workers` each). The oracle's
    clients are each told their share of the limit (`max_concurrency`, adaptation off)."""
    start_at = time.monotonic() + (2.0 if clients > 1 else 0.1)  # processes start meanwhile
    shares = [limit // clients + (1 if i < limit % clients else 0) for i in range(clients)]
    jobs = [
        Job(server.base_url, workers, calls // clients, start_at, oracle_limit=share if oracle else None, **extra)
        for share in shares
    ]
    server.call("stats")  # forget the requests before this batch
    outcomes = run_clients(jobs)
    statuses = server.call("stats")
    began = min(o.started for o in outcomes)
    rate, steady = _rates(statuses, service)
    return Run(
        wall=max(o.ended for o in outcomes) - began,
        failed=sum(o.failed for o in outcomes),
        rate429=rate,
        steady429=steady,
        per_client=[(job.calls / (o.ended - o.started)) for job, o in zip(jobs, outcomes, strict=True)],
        errors=[e for o in outcomes for e in o.errors],
    )


def compare(limit: int, workers: int, calls: int, clients: int, repeats: int, **extra: Any) -> dict[str, Any]:
    """Oracle and defaults, alternately, `repeats` times each; medians."""
    service = service_time(min(limit, workers * clients))  # no more in flight than workers
    server = Server(limit, service, pace=extra.pop("pace", 0.0))
    try:
        oracle: list[Run] = []
        ours: list[Run] = []
        for _ in range(repeats):
            oracle.append(measure(server, limit, workers, calls, clients, oracle=True, service=service, **extra))
            ours.append(measure(server, limit, workers, calls, clients, service=service, **extra))
    finally:
        server.close()
    ratios = [o.wall / a.wall for o, a in zip(oracle, ours, strict=True)]
    fairness = [min(a.per_client) / max(a.per_client) for a in ours]
    return {
        "limit": limit,
        "workers": workers,
        "clients": clients,
        "calls": calls,
        "service_s": service,
        "oracle_s": statistics.median(o.wall for o in oracle),
        "ours_s": statistics.median(a.wall for a in ours),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "fairness": statistics.median(fairness),
        "fairness_min": min(fairness),
        "rate429": statistics.median(a.rate429 for a in ours),
        "steady429": statistics.median(a.steady429 for a in ours),
        "failed": sum(a.failed for a in ours),
        "oracle_failed": sum(o.failed for o in oracle),
        "errors": [e for a in ours for e in a.errors][:5],
    }


def changing_limit(phase: float, workers: int, clients: int = 1) -> dict[str, Any]:
    """L = 32, then 8, then 32 again, `phase` seconds each, `clients` processes working
    (the first one's limit is traced)."""
    high, low = 32, 8
    service = service_time(high)
    server = Server(high, service)
    try:
        server.call("stats")
        start_at = time.monotonic() + 2.0
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        # About enough calls for the three phases at the limits' pace.
        calls = int((2 * high + low) * phase / service * 0.95) // clients
        jobs = [Job(server.base_url, workers, calls=calls, start_at=start_at, trace=i == 0) for i in range(clients)]
        procs = [ctx.Process(target=_client_main, args=(job, queue), daemon=True) for job in jobs]
        for proc in procs:
            proc.start()
        time.sleep(max(0.0, start_at - time.monotonic()))
        server.call("sample")
        time.sleep(phase)
        down = server.call("limit", low)
        time.sleep(phase)
        up = server.call("limit", high)
        outcomes = [Outcome(**queue.get(timeout=600)) for _ in procs]
        outcome = next(o for o in outcomes if o.limits)
        outcome.failed = sum(o.failed for o in outcomes)
        for proc in procs:
            proc.join(30)
        samples = server.call("samples")
        statuses = server.call("stats")
    finally:
        server.close()
    t0 = samples[0][0]
    limits = [(t, lim, n) for t, lim, n in outcome.limits]
    # Down: until the client's own limit is at most the new limit (it stops sending more;
    # one of several: not measured).
    follow_down = float("nan")
    if clients == 1:
        follow_down = next((t - down for t, lim, _ in limits if t >= down and lim <= low), float("nan"))
    # Up: until the server holds at least 90% of the new limit for 100 ms.
    follow_up = float("nan")
    window = [(t, n) for t, n, _ in samples if t >= up]
    for i, (t, _) in enumerate(window):
        span = [n for tt, n in window[i:] if tt <= t + 0.1]
        if span and min(span) >= 0.9 * high:
            follow_up = t - up
            break
    refused = sum(1 for s, _ in statuses if s == 429)
    return {
        "phase_s": phase,
        "service_s": service,
        "workers": workers,
        "down_s": follow_down,
        "up_s": follow_up,
        "failed": outcome.failed,
        "rate429": refused / max(1, len(statuses)),
        "samples": [(t - t0, n, lim) for t, n, lim in samples],
        "client": [(t - t0, lim if lim != float("inf") else None, n) for t, lim, n in limits],
        "changes": [down - t0, up - t0],
        "errors": outcome.errors,
    }


# --------------------------------------------------------------------------- report


def _table(rows: list[dict[str, Any]], shared: bool) -> list[str]:
    head = "| L | workers | service | oracle | defaults | vs oracle (min) | 429 all / steady | failed |"
    if shared:
        head = "| clients | L | workers each | oracle | together | vs oracle (min) | fairness (min) | 429 all / steady | failed |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        common = f"{r['oracle_s']:.2f} s | {r['ours_s']:.2f} s | {r['ratio']:.2f} ({r['ratio_min']:.2f}) | "
        rates = f"{100 * r['rate429']:.1f}% / {100 * r['steady429']:.1f}% | {r['failed']} |"
        if shared:
            lines.append(
                f"| {r['clients']} | {r['limit']} | {r['workers']} | {common}"
                f"{r['fairness']:.2f} ({r['fairness_min']:.2f}) | {rates}"
            )
        else:
            lines.append(f"| {r['limit']} | {r['workers']} | {1000 * r['service_s']:.0f} ms | {common}{rates}")
    return lines


def chart(change: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(9, 4))
    t = [s[0] for s in change["samples"]]
    ax.plot(t, [s[1] for s in change["samples"]], lw=0.8, color="tab:blue", label="requests in flight (server)")
    ax.step(t, [s[2] for s in change["samples"]], where="post", color="black", lw=1.5, label="server's limit")
    client = [(c[0], c[1]) for c in change["client"] if c[1] is not None]
    if client:
        ax.step(
            [c[0] for c in client],
            [c[1] for c in client],
            where="post",
            color="tab:orange",
            lw=1,
            label="client's limit",
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests")
    ax.set_ylim(0, 48)
    ax.set_title(
        f"Adaptive concurrency, limit 32 -> 8 -> 32 ({1000 * change['service_s']:.0f} ms per request, "
        f"{change['workers']} workers): "
        f"down in {change['down_s']:.2f} s, up in {change['up_s']:.2f} s",
        fontsize=9,
    )
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cases, one repetition (about a minute)")
    parser.add_argument("--out", type=Path, default=HERE / "report")
    parser.add_argument("--repeats", type=int, default=None, help="runs per case (default 2, quick 1)")
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    args.out.mkdir(parents=True, exist_ok=True)

    def calls_for(limit: int) -> int:
        # 1,200 calls (the measurement) where that is at most ~10 s; at small
        # limits (or few workers) 40 rounds' worth (200 at least).
        return min(1200, max(200, 40 * limit))

    if args.quick:
        single_cases = [(1, 16), (8, 64), (32, 64), (128, 256)]
        shared_cases = [(2, 8, 32), (2, 32, 64), (4, 32, 32)]
    else:
        single_cases = [(limit, w) for limit in (1, 4, 8, 32, 128) for w in (16, 64, 256)]
        shared_cases = [(n, limit, w) for n in (2, 4) for limit in (8, 32) for w in (32, 64)]
        shared_cases += [(3, 48, 48), (4, 64, 64)]  # shapes the values were not chosen on

    results: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "repeats": repeats}
    single = []
    for limit, workers in single_cases:
        row = compare(limit, workers, calls_for(min(limit, workers)), 1, repeats)
        single.append(row)
        print(_table([row], False)[-1], flush=True)
    shared = []
    for clients, limit, workers in shared_cases:
        row = compare(limit, workers, 1200 // clients * clients, clients, repeats)
        shared.append(row)
        print(_table([row], True)[-1], flush=True)
    streams = compare(16, 64, 400, 1, repeats, stream_every=4, stream_tokens=20, pace=0.02)
    print(
        f"streams: {streams['ratio']:.2f} of the oracle, 429 {100 * streams['rate429']:.1f}%, failed {streams['failed']}",
        flush=True,
    )
    change = changing_limit(3.0 if args.quick else 5.0, 64)
    shared_change = changing_limit(3.0 if args.quick else 5.0, 32, clients=4)
    print(
        f"changing limit, 4 clients: up in {shared_change['up_s']:.2f} s, failed {shared_change['failed']}", flush=True
    )
    print(
        f"changing limit: down in {change['down_s']:.2f} s, up in {change['up_s']:.2f} s, failed {change['failed']}",
        flush=True,
    )
    results.update(
        single=single,
        shared=shared,
        streams=streams,
        changing={k: v for k, v in change.items() if k not in ("samples", "client")},
        changing_shared={k: v for k, v in shared_change.items() if k not in ("samples", "client")},
    )

    lines = [
        "# Adaptive concurrency against an in-flight limit",
        "",
        f"Run {results['when']} on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{'quick' if args.quick else 'full'} mode, {repeats} run(s) per case (medians; min in brackets). "
        "`python benchmarks/concurrency.py` reproduces it. The oracle is the same SDK told the exact limit "
        "(`max_concurrency=L, adaptive_concurrency=False`); `vs oracle` is the oracle's wall time over the "
        "defaults' (1.00: as fast). 429 rates: refused share of all requests the server received "
        "(steady: after the first second or three service times, whichever is longer). Calls per run: one client min(1200, max(200, 40 L)); "
        "clients sharing a limit 1,200 in all, split evenly.",
        "",
        "## One client",
        "",
        *_table(single, False),
        "",
        "## Clients sharing one limit (processes started together)",
        "",
        "The processes run on this machine, so they see each other's levels on its board "
        "(`wandb_inference/_policy/_board.py`; `WANDB_INFERENCE_PEER_DIR=off` measures clients on "
        "different machines). The oracle: the same client processes, each told its share of L. "
        "Fairness: the slowest client's throughput (its calls over its wall time) over the fastest's.",
        "",
        *_table(shared, True),
        "",
        "## Streams mixed with short calls",
        "",
        f"L = 16, 64 workers, 400 calls, every 4th a stream of 20 tokens (0.4 s), the rest 50 ms: "
        f"{streams['ratio']:.2f} of the oracle ({streams['ours_s']:.2f} s vs {streams['oracle_s']:.2f} s), "
        f"429 {100 * streams['rate429']:.1f}%, {streams['failed']} failed.",
        "",
        "## A limit that changes: 32 -> 8 -> 32",
        "",
        f"64 workers, {1000 * change['service_s']:.0f} ms per request, {change['phase_s']:.0f} s per phase: "
        "the client's limit is at or below "
        f"the new limit {change['down_s']:.2f} s after the drop; the server holds >= 90% of the raised limit "
        f"{change['up_s']:.2f} s after the rise; 429 {100 * change['rate429']:.1f}% overall, {change['failed']} failed.",
        "",
        f"The same with 4 client processes of 32 workers each (on this machine): the server holds >= 90% of the "
        f"raised limit {shared_change['up_s']:.2f} s after the rise; 429 {100 * shared_change['rate429']:.1f}% "
        f"overall, {shared_change['failed']} failed.",
        "",
    ]
    if chart(change, args.out / "concurrency.png"):
        lines.append("![requests in flight against the limit](concurrency.png)")
    (args.out / "concurrency.md").write_text("\n".join(lines) + "\n")
    (args.out / "concurrency.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    failed = sum(r["failed"] for r in single + shared) + streams["failed"] + change["failed"] + shared_change["failed"]
    print(f"wrote {args.out / 'concurrency.md'}; failed calls: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
