"""The gateway step every request passes first, in the order the service's front door works.

Record the request; apply a fault if one matches (faults stand for the gateway or a proxy
failing, so they come before authentication); check the API key; check the project.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import Receive, Scope, Send

from ._errors import spec_for
from ._exchange import Exchange, read_body
from ._fault_header import FAULT_HEADER, parse_fault_header
from ._faults import Fault
from ._log import RecordedRequest
from ._queue import is_chat_path
from ._state import ServerState

__all__ = ["Call", "Gateway", "bearer", "parse_json"]


class Call:
    """One admitted request: the exchange plus what the gateway learnt."""

    def __init__(self, exchange: Exchange, record: RecordedRequest, fault: Fault | None) -> None:
        self.exchange = exchange
        self.record = record
        self.fault = fault


def bearer(headers: Iterable[tuple[str, str]]) -> str | None:
    """The bearer token of the `Authorization` header, if any."""
    for name, value in headers:
        if name == "authorization":
            scheme, _, token = value.strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def parse_json(content: bytes) -> tuple[Any, str | None]:
    """(value, None), or (None, why the body is not JSON). NaN and Infinity are refused."""
    if not content.strip():
        return None, "the request body is empty"

    def reject(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(content, parse_constant=reject), None
    except UnicodeDecodeError:
        return None, "the request body is not UTF-8"
    except ValueError as exc:
        return None, str(exc)


class Gateway:
    """Admits requests: see the module docstring.

    Args:
        state: the server's options and state.
    """

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._options = state.options

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Call | None:
        """Pass a request through the gateway.

        Args:
            scope: the ASGI scope.
            receive: the ASGI receive callable.
            send: the ASGI send callable.

        Returns:
            The admitted call, or None when the gateway already answered (or dropped) it.
        """
        content = await read_body(receive)
        if content is None:
            return None
        body, _ = parse_json(content) if content else (None, None)
        request_id = f"req_{uuid.uuid4().hex[:24]}"
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        record = RecordedRequest(
            request_id=request_id,
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            content=content,
            body=body,
            received_at=time.time(),
        )
        self._state.requests.append(record)
        exchange = Exchange(scope, receive, self._tracking(send, request_id), self._state.connections)
        try:
            fault = self._pick_fault(record)
        except ValueError as exc:
            await exchange.error(
                400, f"Invalid {FAULT_HEADER} header: {exc}", "invalid_request_error", param=FAULT_HEADER
            )
            return None
        if fault is not None:
            self._state.requests.update(request_id, fault=fault)
            if not await self._apply(exchange, fault, record):
                return None
        if not await self._authorised(exchange, record):
            return None
        return Call(exchange, record, fault)

    def _tracking(self, send: Send, request_id: str) -> Send:
        requests = self._state.requests

        async def tracking_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                requests.update(request_id, status=message["status"])
            await send(message)

        return tracking_send

    def _pick_fault(self, record: RecordedRequest) -> Fault | None:
        """The fault for this request, if any.

        Raises:
            ValueError: the request's fault header is malformed.
        """
        body = record.body if isinstance(record.body, dict) else {}
        streamed_chat = is_chat_path(record.path) and body.get("stream") is True
        scripted_header = record.header(FAULT_HEADER)
        if scripted_header is not None and self._options.header_faults:
            scripted = parse_fault_header(scripted_header)
            if self._state.faults.take_scripted(scripted.fault, scripted.id, scripted.times, streamed_chat):
                return scripted.fault
        return self._state.faults.take(
            path=record.path, model=record.model, key=bearer(record.headers), streamed_chat=streamed_chat
        )

    async def _apply(self, exchange: Exchange, fault: Fault, record: RecordedRequest) -> bool:
        """Do what the fault says before the reply; True when the reply should follow."""
        if fault.delay and not await exchange.sleep(fault.delay):
            return False
        if fault.disconnect is not None:
            await exchange.drop(reset=fault.disconnect == "reset")
            return False
        if fault.status_code is None:
            return True
        if fault.message is not None:
            message = fault.message.replace("{model}", record.model or "model")
            await exchange.error(
                fault.status_code, message, fault.error_type or "server_error", fault.code, None, fault.headers
            )
        else:
            await exchange.respond(fault.status_code, fault.body or b"", fault.content_type, fault.headers)
        return False

    async def _authorised(self, exchange: Exchange, record: RecordedRequest) -> bool:
        expected = self._options.api_key
        if expected is not None:
            key = bearer(record.headers)
            if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
                spec = spec_for(401)
                await exchange.error(401, spec.message, spec.type, spec.code)
                return False
        projects = self._options.projects
        if projects is not None:
            project = record.header("openai-project")
            if project is None:
                spec = spec_for(429, "personal")
                await exchange.error(429, spec.message, spec.type, spec.code)
                return False
            if project not in projects:
                spec = spec_for(401)
                await exchange.error(401, f"{spec.message}: unknown project {project!r}", spec.type, spec.code)
                return False
        return True
