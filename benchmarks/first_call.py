"""Client CPU of the first call in a fresh process: raw httpx vs wandb_inference.

    python benchmarks/first_call.py [--runs 5]

Starts the local server, then in fresh interpreters builds a client (not timed) and
times the client CPU of a first 5-token stream (what a cold serverless function or a
short script pays on top of import: the modules the call loads), then of a second one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from run import PYTHONPATH, _start_local_server

HERE = Path(__file__).resolve().parent
CODE = """
import asyncio, json, sys, time
sys.path.insert(0, {here!r})
import _worker
async def main():
    client = _worker.ASYNC_PEERS[{peer!r}]({url!r})
    times = []
    for _ in range(2):
        cpu = time.process_time()
        await client.stream(5)
        times.append((time.process_time() - cpu) * 1e3)
    await client.close()
    print(json.dumps(times))
asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    server, url = _start_local_server()
    try:
        for peer in ("httpx", "wandb_inference"):
            firsts, seconds = [], []
            for _ in range(runs):
                code = CODE.format(here=str(HERE), peer=peer, url=url)
                out = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "PYTHONPATH": PYTHONPATH},  # this checkout's code
                )
                first, second = json.loads(out.stdout)
                firsts.append(first)
                seconds.append(second)
            print(
                f"{peer:16s} first call {statistics.median(firsts):.1f} ms, "
                f"second {statistics.median(seconds):.1f} ms (medians of {runs})"
            )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
