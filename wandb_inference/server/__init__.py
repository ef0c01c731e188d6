"""A local OpenAI-compatible W&B Inference server: demo backend, test peer, test fixture.

Needs the `server` extra (`pip install 'wandb-inference[server]'`: starlette, uvicorn);
`import wandb_inference` never imports it.

```python
from wandb_inference.server import Fault, LocalServer

with LocalServer(api_key="test-key") as server:          # a thread; `async with` also works
    server.faults.push(Fault.status(429, kind="concurrency", retry_after=1), times=2)
    client = wandb_inference.Client(api_key="test-key", base_url=server.base_url)
    reply = client.chat.create(model="meta-llama/Llama-3.3-70B-Instruct", messages=[...])
    assert [r.status for r in server.requests] == [429, 429, 200]
```

It serves `GET /v1/models` (the catalog without retired models, plus `models=`),
`POST /v1/chat/completions` (JSON, or SSE with `stream: true`) and `POST /v1/embeddings`,
with deterministic replies (same request and seed, same words), the service's errors
(401, 404, 422, 429 ...), and faults injected in Python (`server.faults`) or by the client
with the `X-Wandb-Fault` header (the language is described in `_fault_header`). Users'
tests get a `wandb_inference_server` fixture with
`pytest_plugins = ["wandb_inference.server.pytest_plugin"]`.
"""

from __future__ import annotations

from ._fault_header import FAULT_HEADER
from ._faults import Fault, StreamFault
from ._log import RecordedRequest, RequestLog
from ._queue import FaultQueue
from ._run import LocalServer, serve

__all__ = [
    "FAULT_HEADER",
    "Fault",
    "FaultQueue",
    "LocalServer",
    "RecordedRequest",
    "RequestLog",
    "StreamFault",
    "serve",
]
