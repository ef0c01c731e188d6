"""Sending spans to W&B Weave: what `to_weave`, `weave.init`'s provider and the CLI send.

A local OTLP/HTTP receiver on 127.0.0.1 stands in for Weave: it decodes the protobuf
payload (gunzipped) and keeps the path, headers and resource attributes of every export.
Each scenario runs in its own interpreter, as an application would (OpenTelemetry's
global provider is set once per process).
"""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from wandb_inference.server import LocalServer

KEY = "wk-weave-secret-key-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]
MODEL = "meta-llama/Llama-3.3-70B-Instruct"


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


class Export:
    def __init__(self, path: str, headers: dict[str, str], raw: bytes, body: bytes) -> None:
        self.path = path
        self.headers = headers
        self.raw = raw
        self.body = body
        self.request = ExportTraceServiceRequest.FromString(body)

    def resources(self) -> list[dict[str, Any]]:
        return [{a.key: _value(a.value) for a in rs.resource.attributes} for rs in self.request.resource_spans]

    def spans(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (span.name, {a.key: _value(a.value) for a in span.attributes})
            for rs in self.request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]


class Receiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.exports: list[Export] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                receiver.exports.append(Export(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def spans(self) -> list[tuple[str, dict[str, Any]]]:
        return [span for export in self.exports for span in export.spans()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(api_key=KEY) as running:
        yield running


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB", "OTEL", "WF_"))}
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "generated")])
    environ["HOME"] = env.pop("HOME", environ.get("HOME", "/nonexistent"))
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


_APP = """
import wandb_inference
provider = wandb_inference.tracing.to_weave({project!r}, endpoint={endpoint!r})
client = wandb_inference.Client(api_key={key!r}, base_url={base_url!r}, capture_message_content=True)
client.chat.create(model={model!r}, messages=[{{"role": "user", "content": "hello weave"}}])
stream = client.chat.create(model={model!r}, messages=[{{"role": "user", "content": "stream"}}], stream=True)
for _ in stream:
    break
assert wandb_inference.tracing.to_weave({project!r}, endpoint={endpoint!r}) is provider  # idempotent
provider.shutdown()
"""


def test_to_weave_sends_protobuf_with_key_header_and_routing_attributes(
    receiver: Receiver, server: LocalServer
) -> None:
    code = _APP.format(
        project="my-team/my-project",
        endpoint=receiver.url + "/otel/v1/traces",
        key=KEY,
        base_url=server.base_url,
        model=MODEL,
    )
    _run(code, WANDB_API_KEY=KEY)
    assert receiver.exports, "nothing was exported"
    for export in receiver.exports:
        assert export.path == "/otel/v1/traces"
        assert export.headers["content-type"] == "application/x-protobuf"
        assert export.headers["content-encoding"] == "gzip"
        assert export.headers["authorization"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
        assert export.headers["project_id"] == "my-team/my-project"
        for resource in export.resources():
            assert resource["wandb.entity"] == "my-team"
            assert resource["wandb.project"] == "my-project"
            assert resource["service.name"] == "wandb-inference"
        assert KEY.encode() not in export.body  # the key is in the header only: no span, event or resource
    spans = receiver.spans()
    names = [name for name, _ in spans]
    assert names == [f"chat {MODEL}", f"chat {MODEL}"]
    chat, stream = (attrs for _, attrs in spans)
    # What Weave's trace view reads: the kind, the model, usage, inputs and outputs.
    assert chat["openinference.span.kind"] == "LLM"
    assert chat["gen_ai.request.model"] == MODEL and chat["gen_ai.response.model"]
    assert chat["gen_ai.usage.input_tokens"] > 0 and chat["gen_ai.usage.output_tokens"] > 0
    assert json.loads(chat["gen_ai.input.messages"])[0]["parts"][0]["content"] == "hello weave"
    assert json.loads(chat["gen_ai.output.messages"])[0]["role"] == "assistant"
    assert stream["wandb_inference.stream.end"] == "left"


def test_to_weave_reads_the_key_like_the_client_and_weaves_server_variable(
    receiver: Receiver, server: LocalServer, tmp_path: Path
) -> None:
    (tmp_path / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    (tmp_path / ".netrc").chmod(0o600)
    code = (
        "import wandb_inference\n"
        "provider = wandb_inference.tracing.to_weave()\n"  # project and endpoint from the environment too
        f"wandb_inference.Client(api_key={KEY!r}, base_url={server.base_url!r}).chat.create(model={MODEL!r}, messages=[{{'role': 'user', 'content': 'x'}}])\n"
        "provider.shutdown()\n"
    )
    _run(
        code, HOME=str(tmp_path), WF_TRACE_SERVER_URL=receiver.url + "/traces", WANDB_ENTITY="ent", WANDB_PROJECT="proj"
    )
    (export,) = receiver.exports
    assert export.path == "/traces/otel/v1/traces"  # a dedicated instance's shape
    assert export.headers["authorization"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert export.headers["project_id"] == "ent/proj"


def test_to_weave_adds_to_the_applications_own_provider(receiver: Receiver, server: LocalServer) -> None:
    code = f"""
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import wandb_inference
mine = InMemorySpanExporter()
app = TracerProvider(resource=Resource.create({{"service.name": "my-app"}}))
app.add_span_processor(SimpleSpanProcessor(mine))
trace.set_tracer_provider(app)
assert wandb_inference.tracing.to_weave("t/p", api_key={KEY!r}, endpoint={receiver.url + "/otel/v1/traces"!r}) is app
wandb_inference.Client(api_key={KEY!r}, base_url={server.base_url!r}).chat.create(model={MODEL!r}, messages=[{{"role": "user", "content": "x"}}])
app.shutdown()
print(len(mine.get_finished_spans()))
"""
    assert _run(code).strip() == "1"  # the application's exporter still gets it
    (export,) = receiver.exports
    assert export.headers["project_id"] == "t/p"  # routing without the resource attributes
    assert export.resources()[0]["service.name"] == "my-app"


def test_to_weave_refuses_bad_input() -> None:
    code = """
import wandb_inference
from wandb_inference import ConfigurationError
for kwargs in ({"api_key": "k"}, {"project": "no-slash", "api_key": "k"}, {"project": "t/p"},
               {"project": "t/p", "api_key": "k", "endpoint": "ftp://x"}):
    try:
        wandb_inference.tracing.to_weave(**kwargs)
    except ConfigurationError as exc:
        print(type(exc).__name__)
"""
    assert _run(code).split() == ["ConfigurationError"] * 4


def test_weave_init_provider_exports_this_sdks_spans(receiver: Receiver, server: LocalServer) -> None:
    """`weave.init` (weave 0.54) installs, when the application has no tracer provider, a
    global one that exports to Weave; the SDK's spans go through it with no other code.
    `weave.init` itself needs the W&B server, so this calls the function it calls to install
    the provider (`_setup_conversation_tracing`), pointed at the receiver."""
    pytest.importorskip("weave")
    code = f"""
from weave.trace.weave_init import _setup_conversation_tracing
from weave.wandb_interface.auth import ApiKeyCredentials
import wandb_inference
_setup_conversation_tracing("team", "proj", ApiKeyCredentials({KEY!r}))
from opentelemetry import trace
wandb_inference.Client(api_key={KEY!r}, base_url={server.base_url!r}).chat.create(model={MODEL!r}, messages=[{{"role": "user", "content": "x"}}])
trace.get_tracer_provider().force_flush()
"""
    _run(code, WF_TRACE_SERVER_URL=receiver.url)
    paths = {export.path for export in receiver.exports}
    assert paths == {"/agents/otel/v1/traces"}  # weave's agents view
    export = receiver.exports[0]
    assert export.headers["project_id"] == "team/proj"
    assert [name for name, _ in receiver.spans()] == [f"chat {MODEL}"]


def test_cli_trace_weave_flag_and_variable(receiver: Receiver, server: LocalServer) -> None:
    common = ["--api-key", KEY, "--base-url", server.base_url, "-m", MODEL]
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['wandb-inference', 'chat', *{common!r}, '--trace-weave', 'cli/proj', 'hi']\n"
        "runpy.run_module('wandb_inference', run_name='__main__')\n"
    )
    _run(code, WF_TRACE_SERVER_URL=receiver.url)
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['wandb-inference', 'embed', '--api-key', {KEY!r}, '--base-url', {server.base_url!r}, '-m', 'BAAI/bge-m3', 'text']\n"
        "runpy.run_module('wandb_inference', run_name='__main__')\n"
    )
    _run(code, WF_TRACE_SERVER_URL=receiver.url, WANDB_INFERENCE_TRACE_WEAVE="cli/env")
    assert [export.headers["project_id"] for export in receiver.exports] == ["cli/proj", "cli/env"]
    assert [name for name, _ in receiver.spans()] == [f"chat {MODEL}", "embeddings BAAI/bge-m3"]


def test_cli_batch_trace_weave(receiver: Receiver, server: LocalServer, tmp_path: Path) -> None:
    """`wandb-inference batch --trace-weave`: a span per line's call reaches the receiver."""
    lines = [
        {
            "custom_id": f"r{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": f"hi {i}"}], "max_tokens": 3},
        }
        for i in range(2)
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    argv = [
        "wandb-inference",
        "batch",
        str(source),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--quiet",
        "--api-key",
        KEY,
        "--base-url",
        server.base_url,
        "--trace-weave",
        "cli/batch",
    ]
    code = f"import sys, runpy\nsys.argv = {argv!r}\nrunpy.run_module('wandb_inference', run_name='__main__')\n"
    _run(code, WF_TRACE_SERVER_URL=receiver.url)
    assert {export.headers["project_id"] for export in receiver.exports} == {"cli/batch"}
    assert sorted(name for name, _ in receiver.spans()) == [f"chat {MODEL}"] * 2
