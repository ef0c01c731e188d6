"""What the app and the `LocalServer` driving it share: options and live state."""

from __future__ import annotations

import attrs

from wandb_inference._catalog._table import ModelInfo

from ._chat import ReasoningField
from ._exchange import Connections
from ._log import RequestLog
from ._queue import FaultQueue

__all__ = ["ServerOptions", "ServerState", "as_info"]


def as_info(model: str | ModelInfo) -> tuple[str, ModelInfo | None]:
    """(id, catalog row or None) of a `models=` entry."""
    return (model.id, model) if isinstance(model, ModelInfo) else (model, None)


@attrs.frozen(kw_only=True)
class ServerOptions:
    """How the server behaves (see `LocalServer` for each option)."""

    api_key: str | None = None
    pace: float = 0.0
    service_time: float = 0.0
    seed: int = 0
    models: tuple[str | ModelInfo, ...] = ()
    concurrency_limits: tuple[tuple[str, int], ...] = ()
    reasoning_field: ReasoningField = "reasoning"
    projects: frozenset[str] | None = None
    header_faults: bool = True


@attrs.define
class ServerState:
    """What the app shares with the `LocalServer` driving it.

    Attributes:
        options: the behaviour.
        faults: the faults to inject.
        requests: every request received.
        connections: open connections' transports (for dropping them).
        limits: the live per-model concurrency limits (from `options`, changeable while
            serving).
        in_flight: requests holding a concurrency slot, per model.
    """

    options: ServerOptions
    faults: FaultQueue = attrs.field(factory=FaultQueue)
    requests: RequestLog = attrs.field(factory=RequestLog)
    connections: Connections = attrs.field(factory=Connections)
    limits: dict[str, int] = attrs.field(init=False)
    in_flight: dict[str, int] = attrs.field(factory=dict)

    @limits.default
    def _limits(self) -> dict[str, int]:
        return dict(self.options.concurrency_limits)
