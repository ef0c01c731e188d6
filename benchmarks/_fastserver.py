"""A fast fake server for the benchmarks: canned OpenAI-compatible replies over raw asyncio.

    python benchmarks/_fastserver.py --port 8000 [--cpu 1]

The local server (`wandb_inference serve`: Starlette, uvicorn, the API document's checks)
costs far more per request and per event than any client, so in a burst of 500 streams it
is the bottleneck, and it sends each event in its own packet. This one does only what
the clients need: an HTTP/1.1 keep-alive server (asyncio protocol, no framework) that
answers

- `POST .../chat/completions`: a canned completion (the local server's shape and size),
  or with `"stream": true` a `text/event-stream` (chunked) of `max_tokens` chunks of the
  local server's shape: a role chunk, the tokens, a finish chunk, `data: [DONE]`;
- `POST .../embeddings`: one vector of 1024 floats per input (base64 when asked, as the
  SDK and openai do by default).

How the events are written is chosen by the path before `/v1`, so every client, whatever
it lets one configure, is steered by its base URL alone (`http://host:port/e4-p60/v1`):

- `eN`: N events per write (default 1): one network read then carries N events, as a
  busy vLLM or a gateway sends them;
- `pU`: pace the writes U microseconds apart (default 0: as fast as the socket takes
  them). A client that keeps up then gets exactly one write per read, as it does from
  a real service (tokens come slower than any client decodes them); unpaced, a slow
  client's reads pile many writes together, which would measure throughput instead.
  The wait is a spin (the event loop's timers have a 1 ms grain): one paced stream at a
  time keeps this process's core busy, and the benchmark pins it to a core of its own
  (`--cpu`).

Nothing here is checked or validated: it is a peer for measuring clients, not a model
of the API (that is the local server's job).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import random
import re
import struct
import time
from typing import Any

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
# The words of the local server's reply to the benchmark's prompt.
WORDS = ["That", "harbor", "describes", "each", "curious", "benchmarks", "with", "the", "idea,", "but"]
WORDS += ["the", "benchmarks", "holds", "a", "patient", "team."]
_ids = itertools.count()
_MODE = re.compile(rb"^/(?:([a-z0-9-]+)/)?v1/")
_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-6105fd9379cf4cbebfcf59d3",
        "object": "chat.completion",
        "created": 1796558677,
        "model": MODEL,
        "system_fingerprint": "fp_wandb_inference_local",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " ".join(WORDS), "reasoning": None},
                "logprobs": None,
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 16, "total_tokens": 30},
    },
    separators=(",", ":"),
).encode()


def _vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.gauss(0, 1) for _ in range(1024)]
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


_FLOATS = [_vector(i) for i in range(16)]
# Each vector as a JSON list, and as `encoding_format: base64` sends it (the little-endian
# float32 bytes in base64, a JSON string), as the local server does.
_VECTORS = {
    False: [json.dumps(v).replace(" ", "").encode() for v in _FLOATS],
    True: [b'"%s"' % base64.b64encode(struct.pack(f"<{len(v)}f", *v)) for v in _FLOATS],
}


def _embeddings(count: int, as_base64: bool) -> bytes:
    vectors = _VECTORS[as_base64]
    items = b",".join(
        b'{"object":"embedding","index":%d,"embedding":%s}' % (i, vectors[i % len(vectors)]) for i in range(count)
    )
    usage = b'"usage":{"prompt_tokens":%d,"total_tokens":%d}' % (count * 8, count * 8)
    return b'{"object":"list","data":[%s],"model":"BAAI/bge-m3",%s}' % (items, usage)


def _head(status: int, content_type: bytes, length: int | None) -> bytes:
    reason = {200: b"OK", 404: b"Not Found", 400: b"Bad Request"}.get(status, b"Error")
    lines = [
        b"HTTP/1.1 %d %s" % (status, reason),
        b"date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode(),
        b"server: fastserver",
        b"content-type: " + content_type,
        b"x-request-id: req_%024x" % next(_ids),
    ]
    if length is None:
        lines += [b"cache-control: no-cache", b"transfer-encoding: chunked"]
    else:
        lines.append(b"content-length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _events(max_tokens: int) -> list[bytes]:
    """The `data: ...\\n\\n` events of a stream of `max_tokens` tokens (the local server's shape)."""
    prefix = (
        b'data: {"id":"chatcmpl-%024x","object":"chat.completion.chunk","created":1796558677,'
        b'"model":"%s","system_fingerprint":"fp_wandb_inference_local","choices":[{"index":0,"delta":'
        % (next(_ids), MODEL.encode())
    )
    suffix = b',"logprobs":null,"finish_reason":null}]}\n\n'
    words = [b'{"content":%s}' % json.dumps((" " if i else "") + w).encode() for i, w in enumerate(WORDS)]
    out = [prefix + b'{"role":"assistant","content":""}' + suffix]
    out += [prefix + words[i % len(words)] + suffix for i in range(max_tokens)]
    out.append(prefix + b'{},"logprobs":null,"finish_reason":"length"}]}\n\n')
    out.append(b"data: [DONE]\n\n")
    return out


def _mode(name: bytes | None) -> tuple[int, float]:
    per_write, pace = 1, 0.0
    for part in (name or b"").decode().split("-"):
        if part[:1] == "e" and part[1:].isdigit():
            per_write = max(1, int(part[1:]))
        elif part[:1] == "p" and part[1:].isdigit():
            pace = int(part[1:]) / 1e6
    return per_write, pace


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as they come, answered one after the other."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[bytes, bytes] | None] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024)
        self.task = asyncio.get_running_loop().create_task(self.serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(None)
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end])
            match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            length = int(match.group(1)) if match else 0
            if len(buffer) < end + 4 + length:
                return
            body = bytes(buffer[end + 4 : end + 4 + length])
            del buffer[: end + 4 + length]
            self.queue.put_nowait((head, body))

    async def serve(self) -> None:
        transport = self.transport
        assert transport is not None
        while (item := await self.queue.get()) is not None:
            head, body = item
            target = head.split(b" ", 2)[1]
            match = _MODE.match(target)
            path = target[match.end() - 1 :] if match else target
            try:
                request: Any = json.loads(body) if body else {}
            except ValueError:
                request = {}
            if path.endswith(b"/chat/completions") and request.get("stream") is True:
                await self.stream(request, *_mode(match.group(1) if match else None))
            elif path.endswith(b"/chat/completions"):
                transport.write(_head(200, b"application/json", len(_COMPLETION)) + _COMPLETION)
            elif path.endswith(b"/embeddings"):
                inputs = request.get("input")
                as_base64 = request.get("encoding_format") == "base64"
                reply = _embeddings(len(inputs) if isinstance(inputs, list) else 1, as_base64)
                transport.write(_head(200, b"application/json", len(reply)) + reply)
            else:
                reply = b'{"error":{"message":"not found"}}'
                transport.write(_head(404, b"application/json", len(reply)) + reply)
            if transport.is_closing():
                return

    async def stream(self, request: dict[str, Any], per_write: int, pace: float) -> None:
        transport = self.transport
        assert transport is not None
        tokens = request.get("max_tokens")
        events = _events(tokens if isinstance(tokens, int) and tokens > 0 else 16)
        transport.write(_head(200, b"text/event-stream; charset=utf-8", None))
        clock = time.perf_counter
        due = clock()
        for start in range(0, len(events), per_write):
            data = b"".join(events[start : start + per_write])
            if pace:
                due += pace
                while clock() < due:  # spin: the loop's timers are too coarse
                    pass
            transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            if not self.writable.is_set():
                await self.writable.wait()
            else:
                await asyncio.sleep(0)  # let other connections write too
            if transport.is_closing():
                return
        transport.write(b"0\r\n\r\n")


async def _main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", port, backlog=2048, reuse_address=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(_main(args.port))


if __name__ == "__main__":
    main()
