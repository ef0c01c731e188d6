"""Typed stream chunks from decoded JSON, on the per-token hot path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._types import ChatCompletionChunk

__all__ = ["parse_chunk"]


def parse_chunk(data: Mapping[str, Any]) -> ChatCompletionChunk:
    """Build a typed chunk; tolerate servers that omit `id`, `created` or `model`."""
    if "id" not in data or "created" not in data or "model" not in data or "choices" not in data:
        data = {"id": "", "created": 0, "model": "", "choices": [], **data}
    return ChatCompletionChunk.from_dict(data)
