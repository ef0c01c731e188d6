"""One benchmark measurement in a fresh process: `python _worker.py PEER SCENARIO URL N`.

Prints one JSON object. Peers: httpx, httpx-sync, httpx-sse, openai, openai-sync,
wandb_inference, wandb_inference-sync, the aiohttp family: aiohttp (raw aiohttp),
httpx-aiohttp (raw httpx on httpx-aiohttp's transport), openai-aiohttp (openai with
`DefaultAioHttpClient`), wandb_inference-aiohttp (`transport="aiohttp"`), and the SDK's
two clients traced (`-traced`: an OpenTelemetry SDK tracer provider with a batching no-op
exporter and a meter provider, as an application that traces would have). CPU is this
process's CPU time only (the server runs in another process), so it measures the client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
EMBED_MODEL = "BAAI/bge-m3"
MESSAGES = [{"role": "user", "content": "Tell me about benchmarks."}]
KEY = "bench-key"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_now_mb() -> float:
    """Resident memory now (Linux; the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / (1 << 20)
    except OSError:
        return _rss_mb()


class _Live:
    """Streams with a response in hand and not yet closed (from the response to the end of
    its close): now, and at most at once.

    The burst of 500 streams starts every request at once; how many replies are held at
    the same moment is what the peak RSS follows (`benchmarks/stream_memory.py` measures
    what each one holds).
    """

    now = 0
    peak = 0

    @classmethod
    def enter(cls) -> None:
        cls.now += 1
        cls.peak = max(cls.peak, cls.now)

    @classmethod
    def leave(cls) -> None:
        cls.now -= 1


# --------------------------------------------------------------------------- raw httpx


def _sse_json(lines: Any) -> Any:
    """The hand-written SSE loop of the raw-httpx baseline."""
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                return
            yield json.loads(data)


class RawAsync:
    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        )
        self.headers = {"Authorization": f"Bearer {KEY}"}

    async def chat(self) -> str:
        r = await self.http.post(
            self.url + "/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 16},
            headers=self.headers,
        )
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    async def stream(self, max_tokens: int) -> int:
        n = 0
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
        try:
            async with self.http.stream("POST", self.url + "/chat/completions", json=body, headers=self.headers) as r:
                _Live.enter()
                r.raise_for_status()
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        data = line[6:]
                        if data == "[DONE]":
                            break
                        json.loads(data)
                        n += 1
        finally:
            _Live.leave()  # once closed
        return n

    async def embed(self, texts: list[str]) -> int:
        r = await self.http.post(
            self.url + "/embeddings",
            json={"model": EMBED_MODEL, "input": texts},
            headers=self.headers,
        )
        r.raise_for_status()
        return len(r.json()["data"])

    async def close(self) -> None:
        await self.http.aclose()


class RawHttpxAiohttp(RawAsync):
    """The same hand-written httpx client, on httpx-aiohttp's transport."""

    def __init__(self, url: str) -> None:
        import httpx
        from httpx_aiohttp import HttpxAiohttpClient

        self.url = url
        self.http = HttpxAiohttpClient(
            timeout=120, limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        )
        self.headers = {"Authorization": f"Bearer {KEY}"}


class RawAiohttp:
    """A hand-written aiohttp client: the same calls and SSE loop as the raw httpx one."""

    def __init__(self, url: str) -> None:
        import aiohttp

        self.url = url
        self.headers = {"Authorization": f"Bearer {KEY}"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000), timeout=aiohttp.ClientTimeout(total=120)
        )

    async def chat(self) -> str:
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 16}
        async with self.session.post(self.url + "/chat/completions", json=body, headers=self.headers) as r:
            r.raise_for_status()
            return str((await r.json())["choices"][0]["message"]["content"])

    async def stream(self, max_tokens: int) -> int:
        n = 0
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
        try:
            async with self.session.post(self.url + "/chat/completions", json=body, headers=self.headers) as r:
                _Live.enter()
                r.raise_for_status()
                async for raw in r.content:  # one line at a time
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("data: "):
                        data = line[6:]
                        if data == "[DONE]":
                            break
                        json.loads(data)
                        n += 1
        finally:
            _Live.leave()  # once closed
        return n

    async def embed(self, texts: list[str]) -> int:
        body = {"model": EMBED_MODEL, "input": texts}
        async with self.session.post(self.url + "/embeddings", json=body, headers=self.headers) as r:
            r.raise_for_status()
            return len((await r.json())["data"])

    async def close(self) -> None:
        await self.session.close()


class RawSync:
    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=120)
        self.headers = {"Authorization": f"Bearer {KEY}"}

    def chat(self) -> str:
        r = self.http.post(
            self.url + "/chat/completions",
            json={"model": MODEL, "messages": MESSAGES, "max_tokens": 16},
            headers=self.headers,
        )
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    def stream(self, max_tokens: int) -> int:
        n = 0
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
        with self.http.stream("POST", self.url + "/chat/completions", json=body, headers=self.headers) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data: "):
                    data = line[6:]
                    if data == "[DONE]":
                        break
                    json.loads(data)
                    n += 1
        return n

    def embed(self, texts: list[str]) -> int:
        r = self.http.post(self.url + "/embeddings", json={"model": EMBED_MODEL, "input": texts}, headers=self.headers)
        r.raise_for_status()
        return len(r.json()["data"])

    def close(self) -> None:
        self.http.close()


class HttpxSSEAsync(RawAsync):
    async def stream(self, max_tokens: int) -> int:
        from httpx_sse import aconnect_sse

        n = 0
        body = {"model": MODEL, "messages": MESSAGES, "max_tokens": max_tokens, "stream": True, "ignore_eos": True}
        async with aconnect_sse(
            self.http, "POST", self.url + "/chat/completions", json=body, headers=self.headers
        ) as source:
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    break
                json.loads(event.data)
                n += 1
        return n


# --------------------------------------------------------------------------- openai


class OpenAIAsync:
    def __init__(self, url: str, max_retries: int = 0) -> None:
        import openai

        self.client = openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=max_retries, timeout=120)

    async def chat(self) -> str:
        r = await self.client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
        return str(r.choices[0].message.content)

    async def stream(self, max_tokens: int) -> int:
        n = 0
        s: Any = await self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        _Live.enter()
        try:
            async for _chunk in s:
                n += 1
        finally:
            _Live.leave()
        return n

    async def embed(self, texts: list[str]) -> int:
        r = await self.client.embeddings.create(model=EMBED_MODEL, input=texts)
        return len(r.data)

    async def close(self) -> None:
        await self.client.close()


class OpenAIAiohttp(OpenAIAsync):
    """openai with its aiohttp transport (`openai[aiohttp]`'s `DefaultAioHttpClient`)."""

    def __init__(self, url: str, max_retries: int = 0) -> None:
        import openai

        self.client = openai.AsyncOpenAI(
            api_key=KEY, base_url=url, max_retries=max_retries, timeout=120, http_client=openai.DefaultAioHttpClient()
        )


class OpenAISync:
    def __init__(self, url: str, max_retries: int = 0) -> None:
        import openai

        self.client = openai.OpenAI(api_key=KEY, base_url=url, max_retries=max_retries, timeout=120)

    def chat(self) -> str:
        r = self.client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
        return str(r.choices[0].message.content)

    def stream(self, max_tokens: int) -> int:
        n = 0
        s: Any = self.client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        for _chunk in s:
            n += 1
        return n

    def embed(self, texts: list[str]) -> int:
        return len(self.client.embeddings.create(model=EMBED_MODEL, input=texts).data)

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- wandb_inference


class WIAsync:
    transport = "httpx"

    def __init__(self, url: str, max_retries: int = 0) -> None:
        import wandb_inference

        self.client = wandb_inference.AsyncClient(
            api_key=KEY, base_url=url, max_retries=max_retries, transport=self.transport
        )

    async def chat(self) -> str:
        r = await self.client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=16)
        return r.text

    async def stream(self, max_tokens: int) -> int:
        n = 0
        s = await self.client.chat.create(
            model=MODEL, messages=MESSAGES, max_tokens=max_tokens, stream=True, extra_body={"ignore_eos": True}
        )
        _Live.enter()
        try:
            async with s:
                async for _chunk in s:
                    n += 1
        finally:
            _Live.leave()  # once closed
        return n

    async def embed(self, texts: list[str]) -> int:
        r = await self.client.embeddings.create(model=EMBED_MODEL, input=texts)
        return len(r.data)

    async def close(self) -> None:
        await self.client.aclose()


class WIAiohttp(WIAsync):
    transport = "aiohttp"


class WISync:
    def __init__(self, url: str, max_retries: int = 0) -> None:
        import wandb_inference

        self.client = wandb_inference.Client(api_key=KEY, base_url=url, max_retries=max_retries)

    def chat(self) -> str:
        return self.client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=16).text

    def stream(self, max_tokens: int) -> int:
        n = 0
        with self.client.chat.create(
            model=MODEL, messages=MESSAGES, max_tokens=max_tokens, stream=True, extra_body={"ignore_eos": True}
        ) as s:
            for _chunk in s:
                n += 1
        return n

    def embed(self, texts: list[str]) -> int:
        return len(self.client.embeddings.create(model=EMBED_MODEL, input=texts).data)

    def close(self) -> None:
        self.client.close()


def _set_up_tracing() -> None:
    """What an application that traces has: SDK providers (the spans go to a no-op exporter)."""
    from collections.abc import Sequence

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NoOpExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoOpExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def _traced(peer: Callable[[str], Any]) -> Callable[[str], Any]:
    def make(url: str) -> Any:
        _set_up_tracing()
        return peer(url)

    return make


ASYNC_PEERS: dict[str, Callable[[str], Any]] = {
    "httpx": RawAsync,
    "httpx-sse": HttpxSSEAsync,
    "openai": OpenAIAsync,
    "wandb_inference": WIAsync,
    "wandb_inference-traced": _traced(WIAsync),
    "aiohttp": RawAiohttp,
    "httpx-aiohttp": RawHttpxAiohttp,
    "openai-aiohttp": OpenAIAiohttp,
    "wandb_inference-aiohttp": WIAiohttp,
}
SYNC_PEERS: dict[str, Callable[[str], Any]] = {
    "httpx-sync": RawSync,
    "openai-sync": OpenAISync,
    "wandb_inference-sync": WISync,
    "wandb_inference-sync-traced": _traced(WISync),
}
IMPORTS = {
    "httpx": "import httpx; c = httpx.AsyncClient()",
    "httpx-sync": "import httpx; c = httpx.Client()",
    "httpx-sse": "import httpx, httpx_sse; c = httpx.AsyncClient()",
    "openai": "import openai; c = openai.AsyncOpenAI(api_key='k')",
    "openai-sync": "import openai; c = openai.OpenAI(api_key='k')",
    "wandb_inference": "import wandb_inference; c = wandb_inference.AsyncClient(api_key='k')",
    "wandb_inference-sync": "import wandb_inference; c = wandb_inference.Client(api_key='k')",
    "aiohttp": "import aiohttp",
    "httpx-aiohttp": "import httpx, httpx_aiohttp; c = httpx_aiohttp.HttpxAiohttpClient()",
    "openai-aiohttp": "import openai; c = openai.AsyncOpenAI(api_key='k', http_client=openai.DefaultAioHttpClient())",
    "wandb_inference-aiohttp": "import wandb_inference; c = wandb_inference.AsyncClient(api_key='k', transport='aiohttp')",
    "litellm": "import litellm",
}

TEXTS = [f"benchmark sentence number {i} about embeddings" for i in range(16)]


async def _run_async(peer: str, scenario: str, url: str, n: int) -> dict[str, Any]:
    client = ASYNC_PEERS[peer](url)
    try:
        if scenario == "nonstream":
            for _ in range(min(20, n)):
                await client.chat()
            cpu = time.process_time()
            for _ in range(n):
                await client.chat()
            return {"cpu_per_call_us": (time.process_time() - cpu) / n * 1e6}
        if scenario == "stream":
            await client.stream(50)
            cpu = time.process_time()
            chunks = await client.stream(n)
            return {"cpu_per_chunk_us": (time.process_time() - cpu) / chunks * 1e6, "chunks": chunks}
        if scenario == "concurrent":
            errors = 0
            await client.stream(20)  # warm: what the client loads for a stream is loaded
            before = _rss_now_mb()
            wall = time.perf_counter()

            async def one() -> int:
                nonlocal errors
                try:
                    return int(await client.stream(20))
                except Exception:
                    errors += 1
                    return 0

            counts = await asyncio.gather(*(one() for _ in range(n)))
            wall = time.perf_counter() - wall
            return {
                "wall_s": wall,
                "errors": errors,
                "chunks": sum(counts),
                "peak_rss_mb": _rss_mb(),
                "rss_before_mb": before,
                "peak_live": _Live.peak or None,  # None: a peer the counter is not wired into
            }
        if scenario == "embeddings":
            for _ in range(3):
                await client.embed(TEXTS)
            cpu = time.process_time()
            for _ in range(n):
                await client.embed(TEXTS)
            return {"cpu_per_call_us": (time.process_time() - cpu) / n * 1e6}
        raise SystemExit(f"unknown scenario {scenario}")
    finally:
        await client.close()


def _run_sync(peer: str, scenario: str, url: str, n: int) -> dict[str, Any]:
    client = SYNC_PEERS[peer](url)
    try:
        if scenario == "nonstream":
            for _ in range(min(20, n)):
                client.chat()
            cpu = time.process_time()
            for _ in range(n):
                client.chat()
            return {"cpu_per_call_us": (time.process_time() - cpu) / n * 1e6}
        if scenario == "stream":
            client.stream(50)
            cpu = time.process_time()
            chunks = client.stream(n)
            return {"cpu_per_chunk_us": (time.process_time() - cpu) / chunks * 1e6, "chunks": chunks}
        if scenario == "embeddings":
            for _ in range(3):
                client.embed(TEXTS)
            cpu = time.process_time()
            for _ in range(n):
                client.embed(TEXTS)
            return {"cpu_per_call_us": (time.process_time() - cpu) / n * 1e6}
        raise SystemExit(f"unknown scenario {scenario} for a sync peer")
    finally:
        client.close()


def _run_retry(peer: str, url: str, header: dict[str, str]) -> dict[str, Any]:
    """429 with Retry-After: 1 twice, then 200: attempts and the gaps between them.

    Each attempt is timed as it leaves the client, by an httpx request hook on the
    client's own httpx client (both SDKs accept one).
    """
    import httpx

    sent: list[float] = []

    def hook(_request: httpx.Request) -> None:
        sent.append(time.perf_counter())

    async def ahook(_request: httpx.Request) -> None:
        sent.append(time.perf_counter())

    start = time.perf_counter()
    if peer == "openai-sync":
        import openai

        with openai.OpenAI(
            api_key=KEY, base_url=url, max_retries=3, default_headers=header,
            http_client=httpx.Client(event_hooks={"request": [hook]}),
        ) as oc:  # fmt: skip
            oc.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)  # type: ignore[arg-type]
    elif peer == "openai":
        import openai

        async def run_openai() -> None:
            async with openai.AsyncOpenAI(
                api_key=KEY, base_url=url, max_retries=3, default_headers=header,
                http_client=httpx.AsyncClient(event_hooks={"request": [ahook]}),
            ) as oc:  # fmt: skip
                await oc.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=4)  # type: ignore[arg-type]

        asyncio.run(run_openai())
    elif peer == "wandb_inference-sync":
        import wandb_inference

        http = httpx.Client(event_hooks={"request": [hook]})
        with wandb_inference.Client(api_key=KEY, base_url=url, default_headers=header, http_client=http) as wc:
            wc.chat.create(model=MODEL, messages=MESSAGES, max_tokens=4)
        http.close()
    elif peer == "wandb_inference":
        import wandb_inference

        async def run_wi() -> None:
            http = httpx.AsyncClient(event_hooks={"request": [ahook]})
            async with (
                http,
                wandb_inference.AsyncClient(api_key=KEY, base_url=url, default_headers=header, http_client=http) as wc,
            ):
                await wc.chat.create(model=MODEL, messages=MESSAGES, max_tokens=4)

        asyncio.run(run_wi())
    else:
        raise SystemExit(f"no retry scenario for {peer}")
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(sent)]
    return {"wall_s": round(time.perf_counter() - start, 3), "attempts": len(sent), "gaps_s": gaps}


def main(argv: list[str]) -> None:
    peer, scenario, url, n = argv[1], argv[2], argv[3], int(argv[4])
    cpus = os.environ.get("BENCH_CPUS")
    if cpus and hasattr(os, "sched_setaffinity"):  # off the fast server's core (run.py)
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    if scenario == "import":
        start = time.perf_counter()
        exec(IMPORTS[peer], {})
        result: dict[str, Any] = {"seconds": time.perf_counter() - start}
    elif scenario == "retry":
        result = _run_retry(peer, url, json.loads(argv[5]))
    elif peer in ASYNC_PEERS:
        result = asyncio.run(_run_async(peer, scenario, url, n))
    else:
        result = _run_sync(peer, scenario, url, n)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
