"""What tracing costs a call and a stream chunk, on the client's CPU alone.

    python benchmarks/micro_tracing.py [--rounds 7]

Each variant runs in its own interpreter (OpenTelemetry's providers are global, set once),
alternating over the rounds; a `MockTransport` answers, so only the client's CPU is
measured (no sockets, no server). Variants:

- `off`: OpenTelemetry not imported (an application that does not trace)
- `off-imported`: OpenTelemetry imported, no provider set
- `on`: SDK tracer provider (batching, no-op exporter) and meter provider set
- `on-tracing=False`: providers set, the client made with `tracing=False`

Prints the median CPU per non-streamed call and per stream chunk, the ratios to `off`,
and the cost of the hook itself when nothing is traced.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("off", "off-imported", "on", "on-tracing=False")

_CHILD = r"""
import json, sys, time
import httpx
VARIANT = sys.argv[1]
if VARIANT != "off":
    import opentelemetry.trace, opentelemetry.metrics
if VARIANT.startswith("on"):
    from collections.abc import Sequence
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class NoOp(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoOp()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
import wandb_inference

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
MESSAGES = [{"role": "user", "content": "Tell me about benchmarks."}]
COMPLETION = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Benchmarks measure."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}}).encode()
CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
         "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}]}
N_CHUNKS = 2000
STREAM = (("data: " + json.dumps(CHUNK) + "\n\n") * N_CHUNKS + "data: [DONE]\n\n").encode()

def reply(request):
    if b'"stream":true' in request.content:
        return httpx.Response(200, content=STREAM, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, content=COMPLETION, headers={"content-type": "application/json"})

client = wandb_inference.Client(api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(reply)),
                                tracing=VARIANT != "on-tracing=False")
for _ in range(50):
    client.chat.create(model=MODEL, messages=MESSAGES)
calls = 1500
start = time.process_time()
for _ in range(calls):
    client.chat.create(model=MODEL, messages=MESSAGES)
per_call = (time.process_time() - start) / calls
streams = 6
start = time.process_time()
for _ in range(streams):
    for _ in client.chat.create(model=MODEL, messages=MESSAGES, stream=True):
        pass
per_chunk = (time.process_time() - start) / (streams * N_CHUNKS)
hook = None
if VARIANT.startswith("off"):
    from wandb_inference._prepare import prepare_chat
    from wandb_inference._tracing._hooks import begin
    spec = prepare_chat(client._pool.get(), client._options, MODEL, MESSAGES, False, {})
    n = 200_000
    start = time.perf_counter()
    for _ in range(n):
        begin(client._options, spec, MESSAGES, {})
    hook = (time.perf_counter() - start) / n
print(json.dumps({"per_call": per_call, "per_chunk": per_chunk, "hook": hook,
                  "otel_loaded": any(m.startswith("opentelemetry") for m in sys.modules)}))
"""


def _run(variant: str) -> dict[str, float]:
    env_path = f"{ROOT}:{ROOT / 'generated'}"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, variant],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):  # alternate: drift on a shared machine hits every variant alike
        for variant in VARIANTS:
            rows[variant].append(_run(variant))
    base_call = statistics.median(r["per_call"] for r in rows["off"])
    base_chunk = statistics.median(r["per_chunk"] for r in rows["off"])
    print(f"{'variant':18} {'us/call':>9} {'ratio':>6} {'us/chunk':>9} {'ratio':>6}  otel loaded")
    for variant, results in rows.items():
        call = statistics.median(r["per_call"] for r in results)
        chunk = statistics.median(r["per_chunk"] for r in results)
        loaded = results[0]["otel_loaded"]
        print(
            f"{variant:18} {call * 1e6:9.1f} {call / base_call:6.2f} {chunk * 1e6:9.2f} {chunk / base_chunk:6.2f}  {loaded}"
        )
    for variant in ("off", "off-imported"):
        hook = statistics.median(r["hook"] for r in rows[variant])
        print(f"the tracing hook, {variant}: {hook * 1e9:.0f} ns per call ({hook / base_call:.2%} of a call)")


if __name__ == "__main__":
    main()
