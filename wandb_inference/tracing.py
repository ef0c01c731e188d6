"""Tracing: OpenTelemetry GenAI spans and metrics for every call, and W&B Weave in one line.

The clients trace every chat and embeddings call on their own once the application has
set an OpenTelemetry tracer provider (or meter provider): no switch, and nothing at all
(not even an import of OpenTelemetry) when it has not. `Client(tracing=False)` turns it
off; `capture_message_content=True` (or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`)
puts the messages on the spans.

```python
import wandb_inference

wandb_inference.tracing.to_weave("my-team/my-project")  # needs the `otel` extra
client = wandb_inference.Client()
client.chat.create(model=..., messages=...)  # a span in the project's Weave traces
```
"""

from __future__ import annotations

from ._tracing._attributes import CAPTURE_CONTENT_ENV, PROVIDER_NAME
from ._tracing._weave import DEFAULT_WEAVE_ENDPOINT, to_weave

__all__ = ["CAPTURE_CONTENT_ENV", "DEFAULT_WEAVE_ENDPOINT", "PROVIDER_NAME", "to_weave"]
