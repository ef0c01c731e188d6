"""`_prepare.build_request` builds the very request `http.build_request` builds.

The SDK merges its headers into the client's and adds `Host` and `Content-Length` itself
(one pass instead of httpx's per-name scans, on every call's path): these tests hold the
result equal to httpx's own, header order included, for both clients' pools, a user's
client with headers of its own, streams, per-call headers, bodies and none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from wandb_inference._options import resolve_options
from wandb_inference._prepare import build_request

_OPTIONS: dict[str, Any] = {
    "api_key": "sk-test",
    "project": None,
    "base_url": "http://127.0.0.1:9/v1",
    "timeout": None,
    "max_retries": None,
    "retry_policy": None,
    "default_headers": None,
    "check_capabilities": True,
    "max_concurrency": None,
    "adaptive_concurrency": True,
    "max_event_size": None,
    "tracing": True,
    "capture_message_content": None,
}

_HTTP: dict[str, Callable[[], httpx.Client | httpx.AsyncClient]] = {
    "async": httpx.AsyncClient,
    "sync": httpx.Client,
    "user headers": lambda: httpx.Client(
        headers={"X-Team": "a", "authorization": "Bearer theirs", "Accept": "text/plain", "accept-encoding": "br"}
    ),
    "cookies": lambda: httpx.Client(cookies={"session": "s1"}),
    "client params": lambda: httpx.Client(params={"v": "2"}),
}

_CASES: dict[str, dict[str, Any]] = {
    "chat": {"method": "POST", "path": "/chat/completions", "body": {"model": "m", "messages": []}},
    "stream": {"method": "POST", "path": "/chat/completions", "body": {"model": "m"}, "stream": True},
    "per-call headers": {
        "method": "POST",
        "path": "/chat/completions",
        "body": {"model": "m"},
        "params": {"extra_headers": {"ACCEPT": "a/b", "X-Call": "1", "Host": "example.org", "connection": "close"}},
    },
    "own length": {
        "method": "POST",
        "path": "/embeddings",
        "body": {"model": "m"},
        "params": {"extra_headers": {"content-length": "13"}},
    },
    "per-call timeout": {"method": "POST", "path": "/embeddings", "body": {"x": 1}, "params": {"timeout": 3.0}},
    "query": {"method": "GET", "path": "/models", "body": None, "params": {"extra_query": {"a": "b"}}},
    "get": {"method": "GET", "path": "/models", "body": None},
    "empty post": {"method": "POST", "path": "/files", "body": None},
}


def _httpx_request(http: httpx.Client | httpx.AsyncClient, built: httpx.Request, case: dict[str, Any]) -> httpx.Request:
    """What httpx itself builds for the SDK's headers (those of `built` the client lacks)."""
    options = resolve_options(**{**_OPTIONS, "project": "team/p", "default_headers": {"X-Default": "d"}})
    headers = options.headers()
    if case.get("stream"):
        headers["Accept"] = "text/event-stream"
    headers.update(case.get("params", {}).get("extra_headers", {}))
    if case["body"] is not None:
        headers["Content-Type"] = "application/json"
    timeout = case.get("params", {}).get("timeout", options.timeout)
    return http.build_request(
        case["method"],
        options.base_url + case["path"],
        headers=headers,
        params=case.get("params", {}).get("extra_query"),
        content=built.content if case["body"] is not None else None,
        timeout=timeout,
    )


@pytest.mark.parametrize("pool", sorted(_HTTP))
@pytest.mark.parametrize("name", sorted(_CASES))
def test_request_is_what_httpx_builds(pool: str, name: str) -> None:
    case = _CASES[name]
    http = _HTTP[pool]()
    options = resolve_options(**{**_OPTIONS, "project": "team/p", "default_headers": {"X-Default": "d"}})
    spec = build_request(
        http,
        options,
        case["method"],
        case["path"],
        body=case["body"],
        params=case.get("params", {}),
        endpoint="other",
        stream=case.get("stream", False),
    )
    ours, theirs = spec.request, _httpx_request(http, spec.request, case)
    assert ours.method == theirs.method
    assert ours.url == theirs.url
    assert ours.headers.raw == theirs.headers.raw
    assert ours.extensions == theirs.extensions
    assert ours.content == theirs.content
    assert list(ours.stream) == list(theirs.stream)  # type: ignore[arg-type]
    assert isinstance(ours.stream, httpx.SyncByteStream)
    assert isinstance(ours.stream, httpx.AsyncByteStream)
    if isinstance(http, httpx.Client):
        http.close()
