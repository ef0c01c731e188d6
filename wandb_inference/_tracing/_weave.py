"""`to_weave`: send this process's spans to W&B Weave over OTLP/HTTP (protobuf).

Weave ingests OTLP/HTTP protobuf at `https://trace.wandb.ai/otel/v1/traces` (its traces
view; a dedicated instance serves `https://<host>/traces/otel/v1/traces`), authenticated by
`Authorization: Basic base64("api:<key>")` (what the `weave` package itself sends), and
routes spans to a project by the `wandb.entity` / `wandb.project` resource attributes or
the `project_id` header. Both are sent, so routing holds when the spans go through a
provider the application made (whose resource cannot be changed).
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING, Any

from wandb_inference._config import resolve_api_key, resolve_project
from wandb_inference._exceptions import ConfigurationError
from wandb_inference._version import __version__

from ._providers import tracer_provider_set

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["DEFAULT_WEAVE_ENDPOINT", "WEAVE_SERVER_ENV", "to_weave"]

DEFAULT_WEAVE_ENDPOINT = "https://trace.wandb.ai/otel/v1/traces"
# The `weave` package's variable for its trace server (a dedicated instance's
# `https://<host>/traces`): honoured the same way.
WEAVE_SERVER_ENV = "WF_TRACE_SERVER_URL"
_OTLP_PATH = "/otel/v1/traces"
# (id of provider, endpoint, project) already exporting: a second call adds nothing.
_installed: set[tuple[int, str, str]] = set()


def _endpoint(endpoint: str | None) -> str:
    if endpoint is None:
        server = os.environ.get(WEAVE_SERVER_ENV, "").strip()
        endpoint = server.rstrip("/") + _OTLP_PATH if server else DEFAULT_WEAVE_ENDPOINT
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        raise ConfigurationError(f"endpoint must be an http(s) URL like {DEFAULT_WEAVE_ENDPOINT!r}, got {endpoint!r}")
    return endpoint


def to_weave(
    project: str | None = None,
    *,
    api_key: str | None = None,
    endpoint: str | None = None,
) -> TracerProvider:
    """Send OpenTelemetry spans (this SDK's, and any other library's) to a W&B Weave project.

    ```python
    provider = wandb_inference.tracing.to_weave("my-team/my-project")
    ...  # every call is now a span in the project's Weave traces
    provider.force_flush()  # before a short script exits (shutdown() also flushes)
    ```

    Without a global tracer provider it installs one (resource `service.name`
    `wandb-inference`, `wandb.entity`, `wandb.project`) with a batching OTLP/HTTP
    exporter; if the application already set an SDK provider, the exporter is added to it
    (routing then relies on the `project_id` header). Calling it again for the same
    project and endpoint adds nothing.

    Args:
        project: `team/project` (the W&B entity and project); default as for the client:
            `WANDB_INFERENCE_PROJECT`, or `WANDB_ENTITY` + `WANDB_PROJECT`.
        api_key: the W&B API key; default `WANDB_API_KEY`, then `~/.netrc` (`wandb login`).
        endpoint: the OTLP traces URL; default `$WF_TRACE_SERVER_URL/otel/v1/traces` when
            that is set (as `weave` does), else `https://trace.wandb.ai/otel/v1/traces`.

    Returns:
        The tracer provider the exporter is on: flush or shut it down.

    Raises:
        ConfigurationError: no project or key, a bad endpoint, the `otel` extra missing, or
            a global tracer provider that is not the OpenTelemetry SDK's.
    """
    team_project = resolve_project(project)
    if team_project is None:
        raise ConfigurationError(
            "to_weave() needs the W&B project as 'team/project' (argument, WANDB_INFERENCE_PROJECT, "
            "or WANDB_ENTITY + WANDB_PROJECT)."
        )
    key = resolve_api_key(api_key)
    url = _endpoint(endpoint)
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            f"to_weave() needs OpenTelemetry's SDK and OTLP exporter ({exc.name} is missing): "
            "pip install 'wandb-inference[otel]'"
        ) from exc
    entity, name = team_project.split("/")
    provider: Any
    if tracer_provider_set():
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            raise ConfigurationError(
                f"The global tracer provider is a {type(provider).__name__}, not the OpenTelemetry SDK's "
                "TracerProvider: add an OTLPSpanExporter for Weave to it yourself."
            )
    else:
        resource = Resource.create(
            {
                "service.name": "wandb-inference",
                "service.version": __version__,
                "wandb.entity": entity,
                "wandb.project": name,
            }
        )
        provider = TracerProvider(resource=resource)
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()  # another thread may have won the set-once race
    marker = (id(provider), url, team_project)
    if marker in _installed:
        return provider  # type: ignore[no-any-return]
    token = base64.b64encode(f"api:{key.get()}".encode()).decode()
    exporter = OTLPSpanExporter(
        endpoint=url,
        headers={"Authorization": f"Basic {token}", "project_id": team_project},
        compression=Compression.Gzip,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _installed.add(marker)
    return provider  # type: ignore[no-any-return]
