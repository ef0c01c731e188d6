"""A/B of one non-streamed call in one process: raw httpx vs wandb_inference.Client.

    python benchmarks/ab_nonstream.py

Alternates the variants over 6 rounds of 200 calls and prints the median client CPU per
call: a finer view of the SDK's own overhead than the suite's separate processes.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time

import httpx

import wandb_inference as wi

s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
proc = subprocess.Popen(
    [sys.executable, "-m", "wandb_inference", "serve", "--port", str(port)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
time.sleep(2.5)
url = f"http://127.0.0.1:{port}/v1"
M = "meta-llama/Llama-3.3-70B-Instruct"
MS = [{"role": "user", "content": "Tell me about benchmarks."}]
h = httpx.Client(timeout=60)
c = wi.Client(api_key="k", base_url=url)
body = {"model": M, "messages": MS, "max_tokens": 16}


def raw() -> object:
    r = h.post(url + "/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"]


def raw_stream_read() -> object:
    req = h.build_request("POST", url + "/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    r = h.send(req, stream=True)
    chunks = []
    for b in r.iter_bytes():
        chunks.append(b)
    r.close()
    import json

    return json.loads(b"".join(chunks))["choices"][0]["message"]["content"]


def raw_stream_readall() -> object:
    req = h.build_request("POST", url + "/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    r = h.send(req, stream=True)
    data = r.read()
    r.close()
    import json

    return json.loads(data)["choices"][0]["message"]["content"]


def ours() -> object:
    return c.chat.create(model=M, messages=MS, max_tokens=16).text


res: dict[str, list[float]] = {}
for _ in range(6):
    for f in (raw, raw_stream_read, raw_stream_readall, ours):
        for _ in range(10):
            f()
        t = time.process_time()
        for _ in range(200):
            f()
        res.setdefault(f.__name__, []).append((time.process_time() - t) / 200 * 1e6)
print({k: round(statistics.median(v)) for k, v in res.items()})
proc.terminate()
