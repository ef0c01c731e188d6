"""A/B of two source trees of the SDK: client CPU per call and per stream chunk.

    git archive <commit> | tar -x -C /tmp/before
    python benchmarks/ab_trees.py /tmp/before . [--rounds 7]

Runs the same async workload (a `MockTransport`: no sockets, no server) under each tree in
its own interpreter, alternating over the rounds, and prints medians: how a change moved
the cost of a call (e.g. the tracing hook, with no provider set) without the noise of a
server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import asyncio, json, time, httpx
import wandb_inference
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "x"}]
COMPLETION = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Benchmarks measure."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}).encode()
CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
         "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}]}
N = 2000
STREAM = (("data: " + json.dumps(CHUNK) + "\n\n") * N + "data: [DONE]\n\n").encode()

def reply(request):
    if b'"stream":true' in request.content:
        return httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

async def main():
    c = wandb_inference.AsyncClient(api_key="k", http_client=httpx.AsyncClient(transport=httpx.MockTransport(reply)))
    for _ in range(50):
        await c.chat.create(model=MODEL, messages=MESSAGES)
    t = time.process_time()
    for _ in range(1000):
        await c.chat.create(model=MODEL, messages=MESSAGES)
    call = (time.process_time() - t) / 1000
    t = time.process_time()
    for _ in range(8):
        async for _ in await c.chat.create(model=MODEL, messages=MESSAGES, stream=True):
            pass
    print(json.dumps([call, (time.process_time() - t) / (8 * N)]))

asyncio.run(main())
"""


def _run(tree: Path) -> list[float]:
    env = {"PYTHONPATH": f"{tree}:{tree / 'generated'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, env=env)
    result: list[float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    trees = [args.before.resolve(), args.after.resolve()]
    rows: dict[Path, list[list[float]]] = {t: [] for t in trees}
    for _ in range(args.rounds):
        for tree in trees:
            rows[tree].append(_run(tree))
    base = rows[trees[0]]
    for tree, values in rows.items():
        call = statistics.median(v[0] for v in values)
        chunk = statistics.median(v[1] for v in values)
        ratio_call = call / statistics.median(v[0] for v in base)
        ratio_chunk = chunk / statistics.median(v[1] for v in base)
        print(f"{tree}: {call * 1e6:.1f} us/call ({ratio_call:.3f}), {chunk * 1e6:.2f} us/chunk ({ratio_chunk:.3f})")


if __name__ == "__main__":
    main()
