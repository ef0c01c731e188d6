"""The clients' tracing hook: whether a call is traced, decided almost for free.

A call is traced when OpenTelemetry's API is loaded and the application has set a tracer
provider or a meter provider (and the client was not made with `tracing=False`). An
application that sets a provider has imported `opentelemetry.trace` or
`opentelemetry.metrics`, so when neither is in `sys.modules` nothing is traced and nothing
is imported: `begin` costs two dictionary lookups.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._providers import enabled

if TYPE_CHECKING:
    from wandb_inference._options import ClientOptions

    from ._providers import SpecLike

__all__ = ["begin"]


def begin(options: ClientOptions, spec: SpecLike, inputs: object, params: Mapping[str, Any]) -> None:
    """Start the call's span (and make it current) when calls are traced; set `spec.trace`.

    The span covers every attempt, wait and retry; the client ends it (`Operation.finish`,
    `.fail`), or the stream it returns does. Tracing never fails a call: an error inside
    OpenTelemetry is logged and the call goes on untraced.
    """
    if not options.tracing or not enabled():
        return
    from ._operation import start_operation

    spec.trace = start_operation(options, spec, inputs, params)
