"""The Starlette application: `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.

Every request, on any path, first passes the gateway (`_gateway`: record, fault, key,
project). Then the route's handler validates the body against the OpenAPI schemas (422),
finds the model (404), checks what the model can do (400), takes a concurrency slot
(429: more than the model's limit in flight, as the service does), holds it for the
service time and answers.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from wandb_inference._catalog._table import CATALOG, ModelInfo
from wandb_inference._spec._validate import validate_request

from ._chat import plan_chat, semantic_problem
from ._embed import embed, encode_base64, truncate
from ._errors import spec_for
from ._gateway import Call, Gateway, parse_json
from ._queue import normalise_path
from ._render import chunks, completion
from ._state import ServerState, as_info
from ._stream import write_stream

__all__ = ["create_app"]

_ARTIFACT_PREFIX: Final = "wandb-artifact:///"
_DEFAULT_DIMENSIONS: Final = 1024
_ROUTES: Final = {"/models": "GET", "/chat/completions": "POST", "/embeddings": "POST"}


def create_app(state: ServerState) -> Starlette:
    """The ASGI application.

    Args:
        state: options, fault queue, request log and connection registry.

    Returns:
        A Starlette app serving `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`.
    """
    backend = _Backend(state)
    return Starlette(
        routes=[
            Route("/v1/models", _Endpoint(backend, backend.models), methods=["GET"]),
            Route("/v1/chat/completions", _Endpoint(backend, backend.chat), methods=["POST"]),
            Route("/v1/embeddings", _Endpoint(backend, backend.embeddings), methods=["POST"]),
            Route("/{path:path}", _Endpoint(backend, backend.not_found)),
        ]
    )


class _Endpoint:
    """A route endpoint: the gateway first, then the handler (an ASGI app for Starlette)."""

    def __init__(self, backend: _Backend, handler: Callable[[Call], Awaitable[None]]) -> None:
        self._backend = backend
        self._handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = await self._backend.gateway.admit(scope, receive, send)
        if call is not None:
            await self._handler(call)


class _Backend:
    def __init__(self, state: ServerState) -> None:
        self.gateway = Gateway(state)
        self._options = state.options
        self._served: dict[str, ModelInfo | None] = {m.id: m for m in CATALOG}
        for model in self._options.models:
            model_id, info = as_info(model)
            self._served[model_id] = info
        # Live: `LocalServer.set_concurrency_limit` changes them while serving.
        self._limits = state.limits
        self._in_flight = state.in_flight

    # ------------------------------------------------------------------ helpers
    async def _valid_body(self, call: Call, schema: str) -> dict[str, Any] | None:
        body, problem = parse_json(call.record.content)
        if problem is not None:
            await call.exchange.error(400, f"Invalid JSON body: {problem}", "invalid_request_error", "invalid_json")
            return None
        invalid = validate_request(body, schema)
        if invalid is not None:
            await call.exchange.error(422, invalid.message, "invalid_request_error", "invalid_parameter", invalid.param)
            return None
        assert isinstance(body, dict)  # the schemas require an object
        return body

    async def _model(self, call: Call, model: str) -> tuple[bool, ModelInfo | None]:
        """(served?, catalog row); answers 404 for unknown and retired models."""
        if model in self._served:
            info = self._served[model]
            if info is None or info.lifecycle.stage != "retired":
                return True, info
            when = f" on {info.lifecycle.retired_on.isoformat()}" if info.lifecycle.retired_on else ""
            instead = f"; use {info.lifecycle.replacement!r} instead" if info.lifecycle.replacement else ""
            message = f"model not found: {model!r} was retired{when}{instead}"
        elif model.startswith(_ARTIFACT_PREFIX) and model.count("/") >= 5:
            return True, None  # a LoRA adapter: any well-formed artifact id is served
        else:
            message = f"model not found: {model!r} (list the served models with GET /v1/models)"
        spec = spec_for(404)
        await call.exchange.error(404, message, spec.type, spec.code, "model")
        return False, None

    def _acquire(self, model: str) -> bool:
        limit = self._limits.get(model)
        count = self._in_flight.get(model, 0)
        if limit is not None and count >= limit:
            return False
        self._in_flight[model] = count + 1
        return True

    def _release(self, model: str) -> None:
        self._in_flight[model] -= 1

    async def _limited(self, call: Call, model: str, work: Callable[[], Awaitable[None]]) -> None:
        if not self._acquire(model):
            spec = spec_for(429, "concurrency")
            await call.exchange.error(429, spec.message.replace("{model}", model), spec.type, spec.code)
            return
        try:
            # The slot is held for the service time, then for the reply itself.
            service_time = self._options.service_time
            if not service_time or await call.exchange.sleep(service_time):
                await work()
        finally:
            self._release(model)

    # ------------------------------------------------------------------ routes
    async def models(self, call: Call) -> None:
        data = [
            {
                "id": model_id,
                "object": "model",
                "created": 0,
                "owned_by": model_id.split("/")[0] if "/" in model_id else "wandb",
                "root": model_id,
            }
            for model_id, info in self._served.items()
            if info is None or info.lifecycle.stage != "retired"
        ]
        await call.exchange.json(200, {"object": "list", "data": data})

    async def chat(self, call: Call) -> None:
        body = await self._valid_body(call, "ChatCompletionRequest")
        if body is None:
            return
        model = body["model"]
        served, info = await self._model(call, model)
        if not served:
            return
        if info is not None and not info.capabilities.chat:
            await call.exchange.error(
                400,
                f"{model!r} is an embedding model: it serves POST /v1/embeddings, not chat completions",
                "invalid_request_error",
                "model_not_supported",
                "model",
            )
            return
        problem = semantic_problem(body)
        if problem is not None:
            await call.exchange.error(400, problem[0], "invalid_request_error", None, problem[1])
            return
        await self._limited(call, model, lambda: self._answer_chat(call, body, info))

    async def _answer_chat(self, call: Call, body: dict[str, Any], info: ModelInfo | None) -> None:
        stream_fault = call.fault.stream if call.fault is not None else None
        plan = plan_chat(
            body,
            info,
            completion_id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
            created=int(time.time()),
            server_seed=self._options.seed,
            non_ascii=stream_fault is not None and stream_fault.wants_non_ascii,
        )
        field = self._options.reasoning_field
        exchange = call.exchange
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = chunks(plan, include_usage=include_usage, reasoning_field=field)
            pace = self._options.pace
            await exchange.unless_disconnected(
                lambda: write_stream(exchange.send, events, shape=stream_fault, pace=pace, drop=exchange.drop)
            )
            return
        # A real server takes the generation time before a non-streamed answer, too.
        longest = max(c.completion_tokens for c in plan.choices)
        if self._options.pace and not await exchange.sleep(self._options.pace * longest):
            return
        await exchange.json(200, completion(plan, field))

    async def embeddings(self, call: Call) -> None:
        body = await self._valid_body(call, "EmbeddingRequest")
        if body is None:
            return
        model = body["model"]
        served, info = await self._model(call, model)
        if not served:
            return
        if info is None or not info.capabilities.embeddings:
            await call.exchange.error(
                400,
                f"{model!r} is not an embedding model: it does not serve POST /v1/embeddings",
                "invalid_request_error",
                "model_not_supported",
                "model",
            )
            return
        native = info.embedding_dimensions or _DEFAULT_DIMENSIONS
        wanted = body.get("dimensions")
        if wanted is not None and wanted > native:
            await call.exchange.error(
                400,
                f"dimensions must be at most {native} for {model!r} (got {wanted})",
                "invalid_request_error",
                "invalid_parameter",
                "dimensions",
            )
            return
        await self._limited(call, model, lambda: self._answer_embeddings(call, body, native, wanted))

    async def _answer_embeddings(self, call: Call, body: dict[str, Any], native: int, wanted: int | None) -> None:
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        base64 = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector = embed(text, native)
            if wanted is not None and wanted != native:
                vector = truncate(vector, wanted)
            data.append(
                {"object": "embedding", "index": index, "embedding": encode_base64(vector) if base64 else vector}
            )
        tokens = sum(max(1, math.ceil(len(t) / 4)) for t in texts)
        if self._options.pace and not await call.exchange.sleep(self._options.pace):
            return
        await call.exchange.json(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def not_found(self, call: Call) -> None:
        path = call.record.path
        method = call.record.method
        bare = normalise_path(path)
        if path.startswith("/v1/") and bare in _ROUTES:
            allowed = _ROUTES[bare]
            await call.exchange.error(
                405,
                f"Method {method} is not allowed on {path}: use {allowed}",
                "invalid_request_error",
                "method_not_allowed",
                headers=[("allow", allowed)],
            )
            return
        hint = " (the API lives under /v1: does the base URL end in /v1?)" if bare in _ROUTES else ""
        await call.exchange.error(404, f"Not found: {method} {path}{hint}", "not_found_error", "not_found")
