"""100 calls, 16 at a time, against a model that serves one request at a time.

    python benchmarks/one_in_flight.py

Compares the adaptive concurrency control with plain retries (adaptive_concurrency=False).
"""

from __future__ import annotations

import anyio

import wandb_inference as wi
from wandb_inference.server import LocalServer

MODEL = "meta-llama/Llama-3.3-70B-Instruct"


async def batch(adaptive: bool) -> None:
    with LocalServer(concurrency_limits={MODEL: 1}, pace=0.002) as srv:
        async with wi.AsyncClient("k", base_url=srv.base_url, max_retries=4, adaptive_concurrency=adaptive) as client:
            gate = anyio.Semaphore(16)
            ok = failed = 0

            async def one() -> None:
                nonlocal ok, failed
                async with gate:
                    try:
                        await client.chat.create(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=8)
                        ok += 1
                    except wi.RateLimitError:
                        failed += 1

            start = anyio.current_time()
            async with anyio.create_task_group() as tg:
                for _ in range(100):
                    tg.start_soon(one)
            elapsed = anyio.current_time() - start
        refused = sum(1 for r in srv.requests if r.status == 429)
    print(f"adaptive={adaptive}: {ok} ok, {failed} failed, {elapsed:.1f} s, {refused} concurrency 429s")


if __name__ == "__main__":
    for adaptive in (True, False):
        anyio.run(batch, adaptive)
