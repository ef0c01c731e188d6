"""Whether the application has set an OpenTelemetry provider: never imports OpenTelemetry.

An application that sets a provider has imported `opentelemetry.trace` (or
`opentelemetry.metrics`); when neither is in `sys.modules`, no provider is set.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from types import ModuleType

    import httpx

__all__ = ["SpecLike", "enabled", "meter_provider_set", "tracer_provider_set"]

_modules = sys.modules
# Providers named by environment variables are loaded by the API on first use. Read once:
# they are set before the process starts, and `os.environ` costs about 1 us a lookup.
_TRACER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_METER_FROM_ENV = "OTEL_PYTHON_METER_PROVIDER" in os.environ


class SpecLike(Protocol):
    """What `begin` needs of a request spec (`_prepare.RequestSpec`)."""

    trace: Any  # an `Operation` once started

    @property
    def request(self) -> httpx.Request: ...
    @property
    def endpoint(self) -> str: ...
    @property
    def model(self) -> str | None: ...
    @property
    def stream(self) -> bool: ...


def tracer_provider_set(api: ModuleType | None = None) -> bool:
    """Whether the application has set a global tracer provider (never imports OpenTelemetry)."""
    api = api if api is not None else _modules.get("opentelemetry.trace")
    if api is None:
        return False
    try:
        return api._TRACER_PROVIDER is not None or _TRACER_FROM_ENV
    except AttributeError:  # pragma: no cover - a future API without the global: ask it
        return not isinstance(api.get_tracer_provider(), api.ProxyTracerProvider | api.NoOpTracerProvider)


def meter_provider_set(internal: ModuleType | None = None) -> bool:
    """Whether the application has set a global meter provider (never imports OpenTelemetry)."""
    internal = internal if internal is not None else _modules.get("opentelemetry.metrics._internal")
    if internal is None:
        return False
    try:
        return internal._METER_PROVIDER is not None or _METER_FROM_ENV
    except AttributeError:  # pragma: no cover - a future API without the global: ask it
        return type(internal.get_meter_provider()).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider")


def enabled() -> bool:
    """Whether calls are traced now: a tracer or a meter provider is set.

    On the path of every call: two dictionary lookups when OpenTelemetry is not imported,
    two attribute reads more when it is.
    """
    api = _modules.get("opentelemetry.trace")
    if api is not None and (getattr(api, "_TRACER_PROVIDER", None) is not None or _TRACER_FROM_ENV):
        return True
    internal = _modules.get("opentelemetry.metrics._internal")
    return internal is not None and (getattr(internal, "_METER_PROVIDER", None) is not None or _METER_FROM_ENV)
