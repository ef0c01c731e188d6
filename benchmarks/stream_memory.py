"""Memory per live stream: raw httpx against wandb_inference (both transports), one process each.

    python benchmarks/stream_memory.py [--streams 300] [--after 1] [--top 12]

Opens `--streams` streams at once against the local server, which sends each `--after`
chunks and then stalls (a fault header), reads those chunks from every stream (with 3 or
more, the SDK has a stream's template: `_streaming/_processor.py`), and measures
what the live streams hold: the growth of resident memory (one batch), and Python
allocations (tracemalloc, exact and noise-free; another batch), each divided by the number
of streams. The streams are then closed. With
`--top`, lists where the SDK's allocations per stream come from (by source line), beside
raw httpx's. Each client runs in its own fresh process.

Answers: does a burst of streams through the SDK take more memory because each live
stream is bigger, or because more of them are alive at once (the SDK reads and closes a
stream sooner)?
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "Tell me about memory."}]
KEY = "bench-key"
AFTER = [1]  # chunks sent (and read) before the server stalls: `--after`


def _stall() -> dict[str, str]:
    return {"X-Wandb-Fault": f"stall-stream;after={AFTER[0]};seconds=30"}


PEERS = ["httpx", "wandb_inference", "httpx-aiohttp", "wandb_inference-aiohttp"]


def _rss_kb() -> float:
    """This process's resident memory now (Linux), in KiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1024


async def _raw(url: str, n: int, aiohttp_transport: bool) -> tuple[Any, list[Any]]:
    import httpx

    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    if aiohttp_transport:
        from httpx_aiohttp import HttpxAiohttpClient

        http: httpx.AsyncClient = HttpxAiohttpClient(timeout=120, limits=limits)
    else:
        http = httpx.AsyncClient(timeout=120, limits=limits)
    stack = contextlib.AsyncExitStack()
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 50, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", **_stall()}

    async def one() -> Any:
        response = await stack.enter_async_context(
            http.stream("POST", url + "/chat/completions", json=body, headers=headers)
        )
        lines = response.aiter_lines()
        count = 0
        async for line in lines:  # the events sent before the stall
            if line.startswith("data: "):
                json.loads(line[6:])
                count += 1
                if count == AFTER[0]:
                    break
        return lines

    held = await asyncio.gather(*(one() for _ in range(n)))
    return (http, stack), held


async def _sdk(url: str, n: int, transport: str) -> tuple[Any, list[Any]]:
    import wandb_inference

    # Without the adaptive gate: it would hold the streams beyond its starting limit back
    # (all stall, none frees its slot), and what is measured is a live stream's memory.
    client = wandb_inference.AsyncClient(
        api_key=KEY,
        base_url=url,
        transport=transport,  # type: ignore[arg-type]
        adaptive_concurrency=False,
    )

    async def one() -> Any:
        stream = await client.chat.create(
            model=MODEL, messages=MESSAGES, max_tokens=50, stream=True, extra_headers=_stall()
        )
        for _ in range(AFTER[0]):  # the chunks sent before the stall
            await anext(stream)
        return stream

    held = await asyncio.gather(*(one() for _ in range(n)))
    return client, held


async def _close(peer: str, owner: Any, held: list[Any]) -> None:
    if peer.startswith("wandb_inference"):
        for stream in held:
            await stream.aclose()
        await owner.aclose()
    else:
        http, stack = owner
        await stack.aclose()
        await http.aclose()


async def _measure(peer: str, url: str, n: int, top: int) -> dict[str, Any]:
    openers = {
        "httpx": lambda k: _raw(url, k, False),
        "httpx-aiohttp": lambda k: _raw(url, k, True),
        "wandb_inference": lambda k: _sdk(url, k, "httpx"),
        "wandb_inference-aiohttp": lambda k: _sdk(url, k, "aiohttp"),
    }

    def opener() -> Any:
        return openers[peer](n)

    # Warm up: one stream opened and closed, so imports and caches are not counted (and
    # every client starts its measured batch from the same state).
    owner, held = await openers[peer](1)
    await _close(peer, owner, held)
    # RSS, without tracemalloc (which costs memory per allocation): the first batch of
    # live streams. (A second batch is no better: a client whose first batch gave its
    # arenas back to the system grows again, one that kept them does not.)
    gc.collect()
    rss_before = _rss_kb()
    owner, held = await opener()
    gc.collect()
    rss_growth = _rss_kb() - rss_before
    await _close(peer, owner, held)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot() if top else None
    base = tracemalloc.get_traced_memory()[0]
    owner, held = await opener()
    gc.collect()
    live = tracemalloc.get_traced_memory()[0] - base
    after = tracemalloc.take_snapshot() if top else None
    tracemalloc.stop()
    result: dict[str, Any] = {
        "peer": peer,
        "streams": n,
        "bytes_per_stream": live / n,
        "rss_growth_kb_per_stream": rss_growth / n,
    }
    if before is not None and after is not None:
        stats = after.compare_to(before, "lineno")
        result["top"] = [
            (
                f"{Path(s.traceback[0].filename).parent.name}/{Path(s.traceback[0].filename).name}:{s.traceback[0].lineno}",
                s.size_diff / n,
            )
            for s in stats[:top]
        ]
    await _close(peer, owner, held)
    return result


sys.path.insert(0, str(HERE))
from run import PYTHONPATH  # noqa: E402 - run.py is beside this file


def _server() -> tuple[subprocess.Popen[bytes], str]:
    from run import _start_local_server

    return _start_local_server()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--after", type=int, default=1, help="chunks each stream reads before the stall")
    parser.add_argument("--top", type=int, default=0, help="list the top allocation sites per stream")
    parser.add_argument("--peer", help=argparse.SUPPRESS)  # one measurement, in this process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    AFTER[0] = args.after
    if args.peer:
        print(json.dumps(asyncio.run(_measure(args.peer, args.url, args.streams, args.top))))
        return 0
    proc, url = _server()
    try:
        rows = []
        for peer in PEERS:
            started = time.monotonic()
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--peer",
                    peer,
                    "--url",
                    url,
                    "--streams",
                    str(args.streams),
                    "--top",
                    str(args.top),
                    "--after",
                    str(args.after),
                ],
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "PYTHONPATH": PYTHONPATH},  # this checkout's code
            )
            if out.returncode != 0:
                print(f"{peer}: failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["seconds"] = time.monotonic() - started
            rows.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"\n{args.streams} live streams ({args.after} chunk(s) read, the server stalling), per stream:\n")
    print("| client | Python allocations | RSS growth |")
    print("|---|---|---|")
    for row in rows:
        print(
            f"| {row['peer']} | {row['bytes_per_stream'] / 1024:.1f} KiB | {row['rss_growth_kb_per_stream']:.1f} KiB |"
        )
    for row in rows:
        if "top" in row:
            print(f"\n{row['peer']}: where the bytes of one live stream come from")
            for site, size in row["top"]:
                print(f"  {size:9.0f} B  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
