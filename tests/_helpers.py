"""Test helpers: canned bodies and SSE streams."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml

API_KEY = "sk-test-SECRET-0123456789"
BASE_URL = "https://inference.test/v1"
MESSAGES = [{"role": "user", "content": "Hi"}]
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi" / "openapi.yaml"


@functools.cache
def load_spec() -> dict[str, Any]:
    """The OpenAPI document, parsed once per test session (do not mutate it)."""
    loaded: dict[str, Any] = yaml.load(SPEC_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return loaded


def written(value: Any, schema: str | dict[str, Any]) -> Any:
    """What a result's `to_dict()` writes for the JSON `value`, read off the document.

    The rule the README promises: a property the document names but does not require is
    left out when it is null (null and absent both read as None); required properties,
    and keys the document does not name (`additional_properties`), are written as sent.
    """
    schemas = load_spec()["components"]["schemas"]
    node = schemas[schema] if isinstance(schema, str) else schema
    if "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[1]]
    for branch in node.get("anyOf", ()):  # the branch this value is an instance of
        if branch.get("type") == "array" and isinstance(value, list):
            return written(value, branch)
        if "$ref" in branch and isinstance(value, dict):
            target = schemas[branch["$ref"].rsplit("/", 1)[1]]
            consts = {k: p["const"] for k, p in target.get("properties", {}).items() if "const" in p}
            if all(value.get(k) == c for k, c in consts.items()):  # e.g. a message's `role`
                return written(value, target)
    if isinstance(value, dict) and "properties" in node:
        properties, required = node["properties"], set(node.get("required", ()))
        return {
            key: written(item, properties[key]) if key in properties else item
            for key, item in value.items()
            if not (item is None and key in properties and key not in required)
        }
    if isinstance(value, list) and "items" in node:
        return [written(item, node["items"]) for item in value]
    return value


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) pairs of a whole body, decoded the WHATWG way (any line ending,
    comments skipped): an independent reference for the SDK's and the server's SSE."""
    events: list[tuple[str | None, str]] = []
    data: list[str] = []
    event: str | None = None
    for line in re.split(r"\r\n|\r|\n", raw.decode("utf-8")):
        if line == "":
            if data:
                events.append((event, "\n".join(data)))
            data, event = [], None
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    return events


def completion_body(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    body.update(extra)
    return body


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"content-type": "application/json", **headers}
    )


def error_body(message: str, code: str | None = None, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def sse(*events: Any, done: bool = True) -> bytes:
    out = []
    for event in events:
        out.append(f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


def chunk(content: str | None = None, **delta: Any) -> dict[str, Any]:
    d: dict[str, Any] = dict(delta)
    if content is not None:
        d["content"] = content
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": d, "finish_reason": None}],
    }
