"""A/B of 500 concurrent streams in one process: raw httpx vs wandb_inference.AsyncClient.

    python benchmarks/ab_streams.py

The server runs in its own process. Alternates the variants over 5 rounds and prints
the median wall time and client CPU of a round: where the SDK's per-stream and
per-chunk costs show against the same httpx pool.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time

import httpx

import wandb_inference as wi

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "Tell me about benchmarks."}]
STREAMS = 500
TOKENS = 20


async def raw_round(http: httpx.AsyncClient, url: str) -> None:
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": TOKENS, "stream": True, "ignore_eos": True}

    async def one() -> None:
        async with http.stream(
            "POST", url + "/chat/completions", json=body, headers={"Authorization": "Bearer k"}
        ) as r:
            async for line in r.aiter_lines():
                if line.startswith("data: "):
                    if line[6:] == "[DONE]":
                        break
                    json.loads(line[6:])

    await asyncio.gather(*(one() for _ in range(STREAMS)))


async def sdk_round(client: wi.AsyncClient) -> None:
    async def one() -> None:
        stream = await client.chat.create(
            model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True, extra_body={"ignore_eos": True}
        )
        async with stream:
            async for _ in stream:
                pass

    await asyncio.gather(*(one() for _ in range(STREAMS)))


async def main(url: str) -> None:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
    results: dict[str, list[tuple[float, float]]] = {"raw": [], "sdk": []}
    async with httpx.AsyncClient(timeout=120, limits=limits) as http, wi.AsyncClient("k", base_url=url) as client:
        await raw_round(http, url)
        await sdk_round(client)
        for _ in range(5):
            for name in ("raw", "sdk"):
                wall, cpu = time.perf_counter(), time.process_time()
                await (raw_round(http, url) if name == "raw" else sdk_round(client))
                results[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    for name, rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"{name}: wall {wall:.2f} s, client CPU {cpu:.2f} s")


if __name__ == "__main__":
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "wandb_inference", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2.5)
        asyncio.run(main(f"http://127.0.0.1:{port}/v1"))
    finally:
        server.terminate()
        server.wait()
