"""The benchmark suite: wandb_inference against raw httpx, aiohttp and the openai SDK, one run.

    python benchmarks/run.py [--quick] [--out benchmarks/report] [--only stream,concurrent]

Starts a fast fake server (`_fastserver.py`: raw asyncio, canned replies) in its own
process, pinned to a core of its own, so the scenarios measure the clients and not the
server; then measures every peer through the same scenarios, each measurement in a fresh
process (so imports, caches and RSS do not leak between peers) pinned to the other
cores, repeated, and reports medians, spreads and ratios to raw httpx measured in the
same run (machines here are shared and noisy: only ratios compare). The retry scenario
needs the local server's injectable faults: it runs against the local server, started
for it at the end. Writes `report.md`, `results.json` and `chart.png` (with matplotlib)
to --out, and exits 1 when a budget is missed.

The workers import this checkout's `wandb_inference` (and `generated/`), whatever the
virtualenv's editable install points at.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "_worker.py"
FASTSERVER = HERE / "_fastserver.py"
# This checkout's code first, for the workers, the local server and `_compile_sdk`.
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "generated"), *filter(None, [os.environ.get("PYTHONPATH")])])
sys.path[:0] = [str(ROOT), str(ROOT / "generated")]

# How the fast server writes a stream, by scenario (the path before `/v1`, see
# `_fastserver.py`): `stream` and `concurrent` get one event per HTTP chunk, as vLLM and
# the local server write them, at the server's full speed (a client that falls behind
# reads many at once); `stream_batched` four events per write.
STREAM_MODES = {"stream": "e1", "stream_batched": "e4", "concurrent": "e1"}

ASYNC = ["httpx", "httpx-sse", "openai", "wandb_inference"]
# The aiohttp family: raw aiohttp, raw httpx on httpx-aiohttp's transport, openai with
# `DefaultAioHttpClient`, and the SDK with `transport="aiohttp"`.
AIOHTTP = ["aiohttp", "httpx-aiohttp", "openai-aiohttp", "wandb_inference-aiohttp"]
SYNC = ["httpx-sync", "openai-sync", "wandb_inference-sync"]
# The SDK again with an OpenTelemetry SDK provider set (no-op exporter): what tracing costs.
TRACED = {"wandb_inference-traced": "wandb_inference", "wandb_inference-sync-traced": "wandb_inference-sync"}

# Budgets: wandb_inference / raw httpx in the same run (sync against httpx.Client).
BUDGETS = {"import": 1.3, "nonstream": 1.3, "stream": 1.5, "concurrent": 1.1, "concurrent_rss": 1.3, "embeddings": 1.2}
# Budgets of `transport="aiohttp"`: (scenario, baseline peer, limit), the SDK's figure over
# the baseline's in the same run. Raw httpx on httpx-aiohttp's transport is the practical
# floor of an SDK that keeps httpx's types; raw httpx is what the SDK must beat.
AIOHTTP_BUDGETS = [
    ("nonstream", "httpx-aiohttp", 1.15),
    ("stream", "httpx-aiohttp", 1.15),
    ("concurrent", "httpx-aiohttp", 1.15),
    ("concurrent_rss", "httpx-aiohttp", 1.15),
    ("nonstream", "httpx", 0.75),
    ("stream", "httpx", 0.6),
    ("concurrent", "httpx", 0.5),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpus() -> tuple[int | None, set[int] | None]:
    """The server's core and the clients' cores: the last core for the server, the rest
    for the clients (None, None: one core only, or no affinity on this system)."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[-1], set(cpus[:-1])


SERVER_CPU, CLIENT_CPUS = _cpus()


def _start(command: list[str], what: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not start")


def _start_fast_server() -> tuple[subprocess.Popen[bytes], str]:
    pin = [] if SERVER_CPU is None else ["--cpu", str(SERVER_CPU)]
    return _start([sys.executable, str(FASTSERVER), *pin], "the fast server")


def _start_local_server() -> tuple[subprocess.Popen[bytes], str]:
    proc, url = _start(
        [sys.executable, "-m", "wandb_inference", "serve"], "the local server (is the [server] extra installed?)"
    )
    return proc, url + "/v1"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def _available(peer: str) -> bool:
    modules = {
        "httpx-sse": ["httpx_sse"],
        "openai": ["openai"],
        "openai-sync": ["openai"],
        "litellm": ["litellm"],
        "aiohttp": ["aiohttp"],
        "httpx-aiohttp": ["httpx_aiohttp"],
        "openai-aiohttp": ["openai", "httpx_aiohttp"],
        "wandb_inference-aiohttp": ["aiohttp"],
    }.get(peer, [])
    if peer in TRACED:
        modules = ["opentelemetry.sdk"]
    return all(importlib.util.find_spec(module) is not None for module in modules)


def _worker(peer: str, scenario: str, url: str, n: int, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(WORKER), peer, scenario, url, str(n), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": PYTHONPATH,
            **({"BENCH_CPUS": ",".join(map(str, sorted(CLIENT_CPUS)))} if CLIENT_CPUS else {}),
        },
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _compile_sdk() -> str:
    """Cache the SDK's bytecode, as `pip install` of a wheel does for every package.

    The peers come from wheels, compiled at install; an editable install of this project
    is not, and where PYTHONDONTWRITEBYTECODE is set (as on these machines) Python would
    compile its sources again in every fresh interpreter of the run.
    """
    import compileall
    import importlib.util

    dirs = []
    for name in ("wandb_inference", "wandb_inference_generated"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend(spec.submodule_search_locations)
    ok = all(compileall.compile_dir(d, quiet=1) for d in dirs)
    return f"bytecode of the SDK cached ({'ok' if ok else 'some files failed'}): {', '.join(dirs)}"


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(base: str, quick: bool, only: set[str] | None = None) -> dict[str, Any]:
    """Every scenario against the fast server at `base` (the retry one against the local server)."""
    reps = 3 if quick else 7
    sizes = {
        "nonstream": 150 if quick else 1000,
        "stream": 20_000,
        "concurrent": 500,
        "embeddings": 40 if quick else 200,
    }
    peers = [p for p in ASYNC + AIOHTTP + SYNC if _available(p)]
    traced = [p for p in TRACED if _available(p)]
    results: dict[str, Any] = {"peers": peers + traced, "scenarios": {}, "modes": STREAM_MODES}
    plan: list[tuple[str, str, list[str], int]] = [
        ("import", "seconds", [*peers, *(["litellm"] if _available("litellm") else [])], 0),
        ("nonstream", "cpu_per_call_us", peers + traced, sizes["nonstream"]),
        ("stream", "cpu_per_chunk_us", peers + traced, sizes["stream"]),
        ("stream_batched", "cpu_per_chunk_us", peers, sizes["stream"]),
        ("concurrent", "wall_s", [p for p in peers if p not in SYNC], sizes["concurrent"]),
        ("embeddings", "cpu_per_call_us", peers, sizes["embeddings"]),
    ]
    for scenario, metric, scenario_peers, n in plan:
        if only is not None and scenario not in only:
            continue
        mode = STREAM_MODES.get(scenario)
        url = f"{base}/{mode}/v1" if mode else f"{base}/v1"
        kind = "stream" if scenario == "stream_batched" else scenario
        table: dict[str, Any] = {}
        # Imports are noisy, and a burst of 500 streams takes well under a second against
        # the fast server: more repetitions for the median.
        r = reps * 2 if scenario == "import" else reps * 2 - 1 if scenario == "concurrent" else reps
        for _ in range(r):  # interleave peers across repetitions: drift hits all alike
            for peer in scenario_peers:
                row = table.setdefault(
                    peer, {"values": [], "errors": 0, "rss": [], "burst": [], "live": [], "notes": []}
                )
                res = _worker(peer, kind, url, n)
                if "error" in res:
                    row["notes"].append(res["error"])
                    continue
                row["values"].append(res[metric])
                row["errors"] += int(res.get("errors", 0))
                if "peak_rss_mb" in res:
                    row["rss"].append(res["peak_rss_mb"])
                if res.get("peak_live") is not None:
                    row["live"].append(res["peak_live"])
                if "rss_before_mb" in res:
                    row["burst"].append(res["peak_rss_mb"] - res["rss_before_mb"])
        for row in table.values():
            row["stats"] = _stats(row["values"]) if row["values"] else None
            row["rss_stats"] = _stats(row["rss"]) if row["rss"] else None
        results["scenarios"][scenario] = {"metric": metric, "n": n, "table": table}
        print(f"  {scenario}: done", flush=True)
    if only is None or "retry" in only:
        retry_peers = ("wandb_inference", "wandb_inference-sync", "openai", "openai-sync")
        proc, url = _start_local_server()
        try:
            results["retry"] = {p: _retry(url, p) for p in retry_peers if _available(p)}
        finally:
            _stop(proc)
    return results


def _retry(url: str, peer: str) -> dict[str, Any]:
    fault_id = uuid.uuid4().hex
    header = {"X-Wandb-Fault": f"429;kind=concurrency;retry_after=1;times=2;id={fault_id}"}
    return _worker(peer, "retry", url, 0, json.dumps(header))


def _baseline(peer: str) -> str:
    return "httpx-sync" if "-sync" in peer else "httpx"


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for scenario, data in results["scenarios"].items():
        table = data["table"]
        out[scenario] = {}
        for peer, row in table.items():
            base = table.get(_baseline(peer) if peer != "litellm" else "httpx")
            if row["stats"] and base and base["stats"]:
                out[scenario][peer] = row["stats"]["median"] / base["stats"]["median"]
            else:
                out[scenario][peer] = None
        if scenario == "concurrent":
            base = table.get("httpx")
            out["concurrent_rss"] = {
                peer: (row["rss_stats"]["median"] / base["rss_stats"]["median"])
                if row["rss_stats"] and base and base["rss_stats"]
                else None
                for peer, row in table.items()
            }
    return out


def ratio_to(results: dict[str, Any], scenario: str, peer: str, base: str) -> float | None:
    """`peer`'s median over `base`'s in one scenario (`concurrent_rss`: peak RSS)."""
    key, name = ("rss_stats", "concurrent") if scenario == "concurrent_rss" else ("stats", scenario)
    table = results["scenarios"].get(name, {}).get("table", {})
    mine, theirs = table.get(peer, {}).get(key), table.get(base, {}).get(key)
    return mine["median"] / theirs["median"] if mine and theirs else None


def budgets(
    rat: dict[str, dict[str, float | None]], results: dict[str, Any]
) -> list[tuple[str, str, float | None, float, bool]]:
    checks = []
    concurrent = results["scenarios"].get("concurrent", {}).get("table", {})
    for scenario, limit in BUDGETS.items():
        for peer in ("wandb_inference", "wandb_inference-sync"):
            value = rat.get(scenario, {}).get(peer)
            if value is None and peer.endswith("-sync") and scenario.startswith("concurrent"):
                continue
            ok = value is not None and value <= limit
            if scenario == "concurrent":
                ok = ok and concurrent.get(peer, {}).get("errors", 1) == 0
            checks.append((scenario, peer, value, limit, ok))
    peer = "wandb_inference-aiohttp"
    if peer in results["peers"]:
        for scenario, base, limit in AIOHTTP_BUDGETS:
            value = ratio_to(results, scenario, peer, base)
            ok = value is not None and value <= limit
            if scenario == "concurrent":
                ok = ok and concurrent.get(peer, {}).get("errors", 1) == 0
            checks.append((f"{scenario} / {base}", peer, value, limit, ok))
    return checks


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: dict[str, Any], rat: dict[str, Any], checks: list[Any], out: Path, quick: bool) -> str:
    units = {
        "import": ("ms", 1e3),
        "nonstream": ("us", 1),
        "stream": ("us", 1),
        "stream_batched": ("us", 1),
        "concurrent": ("s", 1),
        "embeddings": ("us", 1),
    }
    lines = [
        "# wandb-inference benchmarks",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, {'quick' if quick else 'full'} mode. A fast fake server "
        f"(`benchmarks/_fastserver.py`: raw asyncio, canned replies) in its own process"
        f"{f' on core {SERVER_CPU}, the clients on the others' if SERVER_CPU is not None else ''}, "
        "loopback HTTP/1.1; `stream` and `concurrent`: one event per HTTP chunk at the server's full "
        "speed, `stream_batched`: four events per write; the retry scenario against the local "
        "server. Client CPU time only. Ratios are to raw httpx (async peers) or "
        "raw `httpx.Client` (sync peers) measured in the same run: lower is better. "
        "The SDK's bytecode is cached first, as a wheel install does for every peer.",
        "",
        "| scenario | peer | median | min - max | ratio |",
        "|---|---|---|---|---|",
    ]
    for scenario, data in results["scenarios"].items():
        unit, scale = units[scenario]
        for peer, row in data["table"].items():
            st = row["stats"]
            if st is None:
                lines.append(f"| {scenario} | {peer} | failed: {row['notes'][:1]} | | |")
                continue
            cell = f"{st['median'] * scale:.1f} {unit}"
            spread = f"{st['min'] * scale:.1f} - {st['max'] * scale:.1f}"
            extra = ""
            if scenario == "concurrent":
                burst = f" = {statistics.median(row['burst']):.1f} MB for the burst" if row.get("burst") else ""
                live = f", at most {statistics.median(row['live']):.0f} held at once" if row.get("live") else ""
                extra = (
                    f" (errors {row['errors']}, peak RSS {row['rss_stats']['median']:.0f} MB{burst}{live})"
                    if row["rss_stats"]
                    else ""
                )
            lines.append(f"| {scenario} | {peer} | {cell}{extra} | {spread} | {_fmt(rat[scenario].get(peer))} |")
    family = [p for p in AIOHTTP if p in results["peers"]]
    if "httpx-aiohttp" in family:
        lines += [
            "",
            "## The aiohttp family: ratios to raw httpx on httpx-aiohttp's transport (same run)",
            "",
            "| scenario | " + " | ".join(family) + " |",
            "|---|" + "---|" * len(family),
        ]
        for scenario in ("nonstream", "stream", "stream_batched", "concurrent", "concurrent_rss", "embeddings"):
            cells = [_fmt(ratio_to(results, scenario, p, "httpx-aiohttp")) for p in family]
            lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Budgets (wandb_inference / raw httpx; the aiohttp transport also / httpx-aiohttp)",
        "",
        "| budget | client | ratio | limit | |",
        "|---|---|---|---|---|",
    ]
    for scenario, peer, value, limit, ok in checks:
        lines.append(f"| {scenario} | {peer} | {_fmt(value)} | {limit} | {'pass' if ok else '**MISS**'} |")
    peer = "wandb_inference-aiohttp"
    for scenario, base, limit in AIOHTTP_BUDGETS:
        if scenario == "stream" and "stream_batched" in results["scenarios"]:
            value = ratio_to(results, "stream_batched", peer, base)
            mark = "within" if value is not None and value <= limit else "over"
            lines.append(f"| stream_batched / {base} (not a budget) | {peer} | {_fmt(value)} | {limit} | {mark} |")
    lines += [
        "",
        "## Tracing (an OpenTelemetry SDK provider set, spans to a no-op exporter) / untraced",
        "",
        "| scenario | client | traced / untraced |",
        "|---|---|---|",
    ]
    for scenario in ("nonstream", "stream"):
        table = results["scenarios"].get(scenario, {}).get("table", {})
        for peer, plain in TRACED.items():
            row, base = table.get(peer), table.get(plain)
            if row and base and row["stats"] and base["stats"]:
                value = row["stats"]["median"] / base["stats"]["median"]
                lines.append(f"| {scenario} | {plain} | {value:.2f} |")
    lines += [
        "",
        "## Retry scenario (429 with Retry-After: 1 twice, then 200)",
        "",
        "Attempts as they left the client (an httpx request hook); gaps between them.",
        "",
        "| peer | attempts | gaps | wall |",
        "|---|---|---|---|",
    ]
    for peer, res in results.get("retry", {}).items():
        if "error" in res:
            lines.append(f"| {peer} | failed: {res['error']} | | |")
            continue
        gaps = ", ".join(f"{g:.2f} s" for g in res.get("gaps_s", []))
        lines.append(f"| {peer} | {res.get('attempts', '-')} | {gaps} | {res['wall_s']:.2f} s |")
    lines += ["", "![ratios](chart.png)", ""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


def chart(rat: dict[str, dict[str, float | None]], out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no chart; pip install 'wandb-inference[bench]')")
        return
    scenarios = [
        s
        for s in ("import", "nonstream", "stream", "stream_batched", "concurrent", "concurrent_rss", "embeddings")
        if s in rat
    ]
    peers = [
        p
        for p in (
            "httpx-sse",
            "openai",
            "openai-sync",
            "wandb_inference",
            "wandb_inference-sync",
            "aiohttp",
            "httpx-aiohttp",
            "openai-aiohttp",
            "wandb_inference-aiohttp",
        )
        if any(rat[s].get(p) for s in scenarios)
    ]
    fig, ax = plt.subplots(figsize=(12, 4.8))
    width = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        values = [rat[s].get(peer) or 0 for s in scenarios]
        ax.bar([x + i * width for x in range(len(scenarios))], values, width, label=peer)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([x + width * (len(peers) - 1) / 2 for x in range(len(scenarios))], scenarios)
    ax.set_ylabel("ratio to raw httpx (lower is better)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("wandb-inference (httpx and aiohttp transports) vs openai, aiohttp and raw httpx (same run)")
    fig.tight_layout()
    fig.savefig(out / "chart.png", dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 5 minutes)")
    parser.add_argument("--out", type=Path, default=HERE / "report", help="output directory")
    parser.add_argument("--only", default=None, help="comma-separated scenarios (for a partial look; budgets need all)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    print(_compile_sdk(), flush=True)
    proc, url = _start_fast_server()
    started = time.monotonic()
    try:
        print(f"fast server at {url} (core {SERVER_CPU}, clients on {CLIENT_CPUS}); measuring...", flush=True)
        results = measure(url, args.quick, only)
    finally:
        _stop(proc)
    rat = ratios(results)
    checks = budgets(rat, results)
    results["ratios"] = rat
    results["elapsed_s"] = time.monotonic() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(report(results, rat, checks, args.out, args.quick))
    chart(rat, args.out)
    print(f"\nwrote {args.out}/report.md, results.json, chart.png in {results['elapsed_s']:.0f} s")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
