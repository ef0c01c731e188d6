"""Micro-benchmark of the streaming hot path: SSE decoding and chunk accumulation.

Run: `.venv/bin/python benchmarks/micro_sse.py` (add `--quick` for a fast smoke run).

Prints microseconds per event for:
- `wandb_inference._streaming._sse.SSEDecoder` (byte-level WHATWG decoder);
- a naive hand-written loop (`bytes.decode` + `str.splitlines()` per read, only `data:`
  lines, no state across reads): a floor that is *wrong* on split reads, shown for scale;
- httpx-sse's decoders (incremental UTF-8 decoder + `SSELineDecoder` + `SSEDecoder`, the
  pipeline `httpx_sse.EventSource` runs), when httpx-sse is installed;
and microseconds per `ChatCompletionAccumulator.add` on realistic chunk dicts.

Workloads: one ~200-byte `data: {...}\\n\\n` event per read (the common case: one token
per network read), four events per read (a busy connection), and the same bytes cut
into 37-byte reads (events split across reads, inside lines and characters).
"""

from __future__ import annotations

import codecs
import json
import sys
import time
from collections.abc import Callable, Iterable

from wandb_inference._streaming._accumulate import ChatCompletionAccumulator
from wandb_inference._streaming._sse import SSEDecoder

N_EVENTS = 20_000


def _chunk(i: int) -> dict[str, object]:
    return {
        "id": "chatcmpl-8f2c4b1e9a7d4c3b",
        "object": "chat.completion.chunk",
        "created": 1_760_000_000,
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "choices": [{"index": 0, "delta": {"content": f" token{i % 97}é"}, "finish_reason": None}],
    }


def _events(n: int) -> list[bytes]:
    return [f"data: {json.dumps(_chunk(i))}\n\n".encode() for i in range(n)]


def _reads(events: list[bytes], per_read: int) -> list[bytes]:
    return [b"".join(events[i : i + per_read]) for i in range(0, len(events), per_read)]


def _cut(events: list[bytes], size: int) -> list[bytes]:
    body = b"".join(events)
    return [body[i : i + size] for i in range(0, len(body), size)]


def run_ours(reads: Iterable[bytes]) -> int:
    decoder = SSEDecoder()
    count = 0
    for read in reads:
        count += len(decoder.feed(read))
    return count + len(decoder.close())


def run_naive(reads: Iterable[bytes]) -> int:
    # What people write by hand: correct only when every read holds whole events.
    count = 0
    data: list[str] = []
    for read in reads:
        for line in read.decode("utf-8").splitlines():
            if line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
            elif not line and data:
                "\n".join(data)
                data = []
                count += 1
    return count


def make_run_httpx_sse() -> Callable[[Iterable[bytes]], int] | None:
    try:
        from httpx_sse._decoders import SSEDecoder as HSSEDecoder
        from httpx_sse._decoders import SSELineDecoder
    except ImportError:
        return None

    def run_httpx_sse(reads: Iterable[bytes]) -> int:
        # httpx's `aiter_text()` (an incremental UTF-8 decoder), then httpx-sse's line
        # splitter and event decoder, as `EventSource.aiter_sse()` does.
        text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines = SSELineDecoder()
        sse = HSSEDecoder()
        count = 0
        for read in reads:
            for line in lines.decode(text_decoder.decode(read)):
                if sse.decode(line) is not None:
                    count += 1
        for line in lines.flush():
            if sse.decode(line) is not None:
                count += 1
        return count

    return run_httpx_sse


def best_of(fn: Callable[[list[bytes]], int], reads: list[bytes], n_events: int, rounds: int) -> float:
    """Best microseconds per event over `rounds` runs (the least disturbed run)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        got = fn(reads)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
    del got
    return best / n_events * 1e6


def bench_accumulator(n: int, rounds: int) -> dict[str, float]:
    plain = [_chunk(i) for i in range(n)]
    first = {**plain[0], "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    plain[0] = first
    reasoning = [
        {
            **c,
            "choices": [{"index": 0, "delta": {"reasoning_content": f"think{i}", "content": None}}],
        }
        for i, c in enumerate(plain)
    ]
    tools = [
        {
            **c,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": i % 2,
                                "id": f"call_{i % 2}",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        }
        for i, c in enumerate(plain)
    ]
    out: dict[str, float] = {}
    cases = (("content delta", plain), ("reasoning delta", reasoning), ("tool-call delta", tools))
    for name, chunks in cases:
        best = float("inf")
        for _ in range(rounds):
            acc = ChatCompletionAccumulator()
            add = acc.add
            start = time.perf_counter()
            for c in chunks:
                add(c)
            best = min(best, time.perf_counter() - start)
        out[name] = best / n * 1e6
    acc = ChatCompletionAccumulator()
    for c in plain:
        acc.add(c)
    ChatCompletionAccumulator().completion()  # import the generated models first
    start = time.perf_counter()
    acc.completion()
    out[f"completion() of {n} (total)"] = (time.perf_counter() - start) * 1e6
    return out


def main() -> None:
    quick = "--quick" in sys.argv
    n = 2_000 if quick else N_EVENTS
    rounds = 2 if quick else 7
    events = _events(n)
    avg = sum(map(len, events)) / n
    workloads = {
        "1 event/read": _reads(events, 1),
        "4 events/read": _reads(events, 4),
        "37-byte reads": _cut(events, 37),
    }
    decoders: dict[str, Callable[[list[bytes]], int]] = {"wandb_inference": run_ours}
    decoders["naive splitlines"] = run_naive
    httpx_sse = make_run_httpx_sse()
    if httpx_sse is not None:
        decoders["httpx-sse 0.4"] = httpx_sse
    print(f"SSE decode, us per event ({n} events of ~{avg:.0f} bytes, best of {rounds})")
    print(f"{'':18}" + "".join(f"{name:>18}" for name in workloads))
    for name, fn in decoders.items():
        cells = []
        for label, reads in workloads.items():
            if name == "naive splitlines" and label == "37-byte reads":
                cells.append(f"{'(wrong: split)':>18}")
                continue
            cells.append(f"{best_of(fn, reads, n, rounds):>18.3f}")
        print(f"{name:18}" + "".join(cells))
    if httpx_sse is None:
        print("(httpx-sse not installed: `.venv/bin/pip install httpx-sse` to compare)")
    print()
    print(f"ChatCompletionAccumulator.add, us per chunk ({n} chunks, best of {rounds})")
    for label, value in bench_accumulator(n, rounds).items():
        print(f"  {label:30}{value:>10.3f}")


if __name__ == "__main__":
    main()
