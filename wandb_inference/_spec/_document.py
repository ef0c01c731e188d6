"""The API document shipped in the package (`openapi.json`, written by scripts/regen.sh).

Loaded once, on first use (the first call's checks, or the local server's first request);
never by `import wandb_inference`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

__all__ = ["document", "request_properties", "schemas"]

_PATH = Path(__file__).with_name("openapi.json")


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    loaded: dict[str, Any] = json.loads(_PATH.read_text(encoding="utf-8"))
    return loaded


@functools.cache
def schemas() -> dict[str, Any]:
    """`components/schemas`."""
    found: dict[str, Any] = document().get("components", {}).get("schemas", {})
    return found


@functools.cache
def request_properties(schema_name: str) -> dict[str, Any]:
    """The property schemas of a request body schema (e.g. `ChatCompletionRequest`)."""
    found: dict[str, Any] = schemas()[schema_name].get("properties", {})
    return found
