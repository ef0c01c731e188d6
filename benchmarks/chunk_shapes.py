"""Client CPU per streamed chunk, by chunk shape: raw httpx loop vs wandb_inference.

    python benchmarks/chunk_shapes.py [--chunks 20000]

Over `httpx.MockTransport` (no sockets, no server): what remains is each client's own
work per chunk, the same bytes for both. Shapes: our local server's, OpenAI's (extra
top-level keys), vLLM with every delta field present, a reasoning model's. Also prints
what the SDK's accumulator and typed parse cost in place, by switching each off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import httpx

import wandb_inference as wi
from wandb_inference._streaming import _accumulate
from wandb_inference._types import _chunk

_BASE = '"id":"chatcmpl-5b8dd714e4f54915bd29c5ab","object":"chat.completion.chunk","created":1796454674'
SHAPES = {
    "local server": "{"
    + _BASE
    + ',"model":"m","system_fingerprint":"fp_local","choices":[{"index":0,"delta":{"content":" word"},'
    '"logprobs":null,"finish_reason":null}]}',
    "openai-like": "{"
    + _BASE
    + ',"model":"m","service_tier":"default","system_fingerprint":"fp_abc","choices":[{"index":0,'
    '"delta":{"content":" word"},"logprobs":null,"finish_reason":null}],"obfuscation":"abcd"}',
    "vllm all-fields": "{"
    + _BASE
    + ',"model":"m","choices":[{"index":0,"delta":{"role":null,"content":" word","reasoning_content":null,'
    '"tool_calls":[]},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null,'
    '"prompt_token_ids":null}',
    "reasoning": "{"
    + _BASE
    + ',"model":"m","choices":[{"index":0,"delta":{"reasoning":" word"},"logprobs":null,"finish_reason":null}]}',
}


def _transport(event: bytes, n: int) -> httpx.MockTransport:
    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(n):
                yield event
            yield b"data: [DONE]\n\n"

    return httpx.MockTransport(
        lambda request: httpx.Response(200, stream=Body(), headers={"content-type": "text/event-stream"})
    )


async def _raw(http: httpx.AsyncClient) -> None:
    async with http.stream("POST", "http://x/v1/chat/completions", json={}) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line[6:]
                if data == "[DONE]":
                    break
                json.loads(data)


async def _sdk(client: wi.AsyncClient) -> None:
    stream = await client.chat.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True)
    async with stream:
        async for _ in stream:
            pass


async def _per_chunk(run: Callable[[], Coroutine[Any, Any, None]], n: int) -> float:
    await run()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        await run()
        times.append((time.perf_counter() - start) / n * 1e6)
    return min(times)


async def measure(event: bytes, n: int) -> dict[str, float]:
    http = httpx.AsyncClient(transport=_transport(event, n))
    client = wi.AsyncClient(
        api_key="k", base_url="http://x/v1", http_client=httpx.AsyncClient(transport=_transport(event, n))
    )
    out = {"raw": await _per_chunk(lambda: _raw(http), n), "sdk": await _per_chunk(lambda: _sdk(client), n)}
    add, parse = _accumulate.ChatCompletionAccumulator.add, _chunk.parse_chunk
    try:
        _accumulate.ChatCompletionAccumulator.add = lambda self, chunk: None  # type: ignore[method-assign]
        out["sdk, no accumulator"] = await _per_chunk(lambda: _sdk(client), n)
        _accumulate.ChatCompletionAccumulator.add = add  # type: ignore[method-assign]
        _chunk.parse_chunk = lambda data: data  # type: ignore[assignment,return-value]
        out["sdk, no typed parse"] = await _per_chunk(lambda: _sdk(client), n)
    finally:
        _accumulate.ChatCompletionAccumulator.add = add  # type: ignore[method-assign]
        _chunk.parse_chunk = parse
    await http.aclose()
    await client.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    n = parser.parse_args().chunks
    print(f"us per chunk (best of 5 streams of {n} chunks, mock transport)")
    for name, body in SHAPES.items():
        result = asyncio.run(measure(f"data: {body}\n\n".encode(), n))
        cells = ", ".join(f"{k} {v:.2f}" for k, v in result.items())
        print(f"{name:16s} {cells}; sdk/raw {result['sdk'] / result['raw']:.2f}")


if __name__ == "__main__":
    main()
